"""Templates and warm pools against a real server: ``Template.build`` with progress and logs, the
content cache, ``follow`` (sync and async), list/get/delete, a failing build; ``WarmPool``
create/list/get/delete and a checkout. Templates have names of their own per test."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Dict, List

import pytest

from conftest import TestServer, until
from nullspace import (
    AsyncTemplate,
    AsyncWarmPool,
    InvalidArgumentError,
    Machine,
    NullspaceError,
    Template,
    TemplateNotFoundError,
    WarmPool,
)


def fresh_name() -> str:
    return f"py/t-{secrets.token_hex(4)}"


def test_build_with_progress_then_cached_followed_listed_used_and_deleted(server: TestServer) -> None:
    name = fresh_name()
    progress: List[Dict[str, Any]] = []
    logs: List[str] = []
    spec: Dict[str, Any] = {
        "files": [{"path": "/srv/py/blob.bin", "content": b"\x00\x01\xff", "mode": 0o600}],
        "run": ["echo from-the-build-step", "echo built > /etc/py-marker"],
        "env": {"PY_GREETING": "hello"},
        "workdir": "/srv/py",
    }
    first = Template.build(name, on_progress=progress.append, on_log=logs.append, **spec)
    assert first.cached is False and first.template.status == "ready"
    assert first.template.names == [f"{name}:latest"]
    names = [p["name"] for p in progress]
    assert names == [
        "start a build machine",
        "copy files",
        "run: echo from-the-build-step",
        "run: echo built > /etc/py-marker",
        "capture the filesystem",
    ]
    assert [p["step"] for p in progress] == list(range(1, len(progress) + 1))
    assert {p["total"] for p in progress} == {len(progress)}
    assert "from-the-build-step" in logs

    again_progress: List[Dict[str, Any]] = []
    again = Template.build(name, on_progress=again_progress.append, **spec)
    assert again.cached is True and again.template.id == first.template.id and again_progress == []

    # The finished build's events, as the wire sends them: the same steps, then done.
    events = list(Template.follow(first.template.id))
    assert [e["name"] for e in events if e["type"] == "step"] == names
    assert events[-1]["type"] == "done" and events[-1]["template"]["id"] == first.template.id
    assert list(Template.follow(name, follow=False)) == events

    async def follow_async() -> List[str]:
        return [e["type"] async for e in AsyncTemplate.follow(name)]

    assert asyncio.run(follow_async()) == [e["type"] for e in events]
    assert first.template.id in [t.id for t in Template.list()]
    got = Template.get(name)
    assert got.id == first.template.id and got.workdir == "/srv/py" and got.env == ["PY_GREETING"]

    with Machine.create(template=name) as m:
        server.machine_ids.add(m.id)
        r = m.commands.run('pwd; echo "$PY_GREETING"; cat /etc/py-marker; od -An -tx1 blob.bin; stat -c %a blob.bin')
        assert r.stdout.split() == ["/srv/py", "hello", "built", "00", "01", "ff", "600"]
    deleted = Template.delete(name)
    assert deleted.id == first.template.id
    with pytest.raises(TemplateNotFoundError):
        Template.get(name)


def test_async_build_with_coroutine_callbacks(server: TestServer) -> None:
    name = fresh_name()
    steps: List[int] = []
    logs: List[str] = []

    async def on_progress(p: Dict[str, Any]) -> None:
        await asyncio.sleep(0)
        steps.append(p["step"])

    async def main() -> Any:
        built = await AsyncTemplate.build(name, run=["echo async-build-log"], on_progress=on_progress, on_log=logs.append)
        listed = [t.id for t in await AsyncTemplate.list()]
        got = await AsyncTemplate.get(name)
        deleted = await AsyncTemplate.delete(name)
        return built, listed, got, deleted

    built, listed, got, deleted = asyncio.run(main())
    assert built.cached is False and built.template.id in listed
    assert got.id == deleted.id == built.template.id
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 3
    assert "async-build-log" in logs


def test_a_failing_build_raises_with_its_output(server: TestServer) -> None:
    name = fresh_name()
    logs: List[str] = []
    with pytest.raises(NullspaceError) as failed:
        Template.build(name, run=["echo about to fail", "exit 3"], on_log=logs.append)
    assert "run step 2 failed (exit 3)" in str(failed.value)
    assert "about to fail" in logs
    with pytest.raises(TemplateNotFoundError):
        Template.get(name)
    with pytest.raises(InvalidArgumentError):
        Template.build("Bad Name")


def test_warm_pool_create_checkout_list_get_delete(server: TestServer) -> None:
    pool = WarmPool.create(template="base", size=1)
    try:
        assert pool.id.startswith("twp_") and (pool.template, pool.size) == ("base", 1)
        assert pool.id in [p.id for p in WarmPool.list()]
        until(lambda: WarmPool.get(pool.id).ready == 1, "the pool to have a ready machine", timeout=120)
        m = Machine.create(template="base", warm_pool=pool.id, warm_pool_mode="require", warm_pool_wait_ms=30_000)
        server.machine_ids.add(m.id)
        try:
            checkout = m.get_info().warm_pool_checkout
            assert (checkout.pool_id, checkout.hit) == (pool.id, True)
            assert m.commands.run("echo from-the-pool").stdout == "from-the-pool\n"
        finally:
            m.kill()
        assert WarmPool.get(pool.id).hits == 1

        async def async_view() -> Any:
            return [p.id for p in await AsyncWarmPool.list()], await AsyncWarmPool.get(pool.id)

        listed, got = asyncio.run(async_view())
        assert pool.id in listed and got.id == pool.id and got.size == 1
    finally:
        deleted = WarmPool.delete(pool.id)
    assert deleted.id == pool.id
    assert pool.id not in [p.id for p in WarmPool.list()]
