"""The SDK against a real server and real machines: lifecycle, streams across a server restart,
background output while it runs, file watches, typed errors, context managers, concurrency."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any, List

import pytest

from conftest import TestServer
from nullspace import (
    AsyncMachine,
    ConflictError,
    InvalidArgumentError,
    LifecycleEvent,
    Machine,
    MachineNotFoundError,
    NullspaceError,
)


def test_memory_state_survives_pause_and_connect(server: TestServer, machine: Machine) -> None:
    # A process holds a value only in its memory; after pause → connect the same process answers.
    proc = machine.commands.run(
        "v=$(od -An -N8 -tx8 /dev/urandom | tr -d ' '); echo \"$v\"; while read l; do echo \"$v $l\"; done",
        background=True,
        tag="mem",
    )
    first = next(iter(proc)).text.strip()
    assert len(first) == 16
    info = machine.pause()
    assert info.status == "paused" and info.snapshot_id
    again = Machine.connect(machine.id)
    assert again.get_info().status == "running"
    handle = again.commands.connect("mem", offset=len(first) + 1)
    handle.send_stdin("ping\n")
    seen = ""
    for chunk in handle:
        seen += chunk.text
        if "ping" in seen:
            break
    assert seen.strip() == f"{first} ping"
    handle.kill()


def test_get_info_by_id_keeps_a_paused_machine_paused(server: TestServer, machine: Machine) -> None:
    machine.pause()
    for _ in range(3):
        assert Machine.get_info_by_id(machine.id).status == "paused"
        assert Machine.get_info_by_id(machine.id, fields=["id", "status"]) == {"id": machine.id, "status": "paused"}
    assert machine.is_running() is False
    assert Machine.connect(machine.id).get_info().status == "running"


def test_stream_events_survives_a_server_restart_without_gaps_or_duplicates(server: TestServer) -> None:
    m = Machine.create(template="base")
    server.machine_ids.add(m.id)
    seen: List[LifecycleEvent] = []
    failure: List[BaseException] = []
    first = threading.Event()

    def follow() -> None:
        try:
            for event in Machine(m.id).stream_events():
                seen.append(event)
                first.set()
                if event.status == "killed":
                    return
        except BaseException as err:  # reported by the test below
            failure.append(err)
            first.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert first.wait(60), "no event arrived"
    m.set_timeout(600)
    server.restart(signal.SIGKILL)  # a crash: the stream's socket dies without a close frame
    m.set_timeout(900)
    m.pause()
    Machine.connect(m.id)
    server.restart(signal.SIGTERM)  # a clean stop: the server closes the socket (1001)
    m.kill()
    t.join(120)
    assert not t.is_alive(), "the stream did not end at the kill"
    assert failure == []
    ids = [e.id for e in seen]
    assert ids == sorted(set(ids)), "duplicates or disorder"
    polled = m.list_events(after_event_id=0, limit=1000).events
    assert ids == [e.id for e in polled], "the stream missed events the server has"
    types = [e.type for e in seen]
    assert types.count("timeout_set") >= 2 and seen[-1].status == "killed"


def test_background_output_streams_while_it_runs(server: TestServer, machine: Machine) -> None:
    # The command prints, then blocks on stdin: the first line can only arrive while it runs.
    handle = machine.commands.run("echo first; read x; echo second $x", background=True)
    got: List[str] = []
    for chunk in handle:
        got.append(chunk.text)
        if chunk.text == "first\n":
            assert handle.exit_code is None
            handle.send_stdin("go\n")
    assert "".join(got) == "first\nsecond go\n"
    result = handle.wait()
    assert result.exit_code == 0 and result.stdout == "first\nsecond go\n"


def test_foreground_callbacks_and_result(server: TestServer, machine: Machine) -> None:
    out: List[str] = []
    err: List[str] = []
    r = machine.commands.run("echo a; echo b >&2; exit 3", shell=True, on_stdout=out.append, on_stderr=err.append)
    assert (r.exit_code, r.stdout, r.stderr) == (3, "a\n", "b\n")
    assert "".join(out) == "a\n" and "".join(err) == "b\n"
    assert machine.commands.run("cat", args=[], stdin="piped").stdout == "piped"


def test_files_watch_sees_a_write(server: TestServer, machine: Machine) -> None:
    machine.files.make_dir("/workspace/w")
    # A writer that keeps writing, so the watch (made when iteration starts) sees one for sure.
    writer = machine.commands.run(
        "for i in $(seq 100); do echo $i > /workspace/w/f$i; sleep 0.2; done", background=True
    )
    try:
        for event in machine.files.watch_dir("/workspace/w"):
            if event.path.startswith("/workspace/w/f") and event.type in ("create", "write"):
                break
    finally:
        writer.kill()
    machine.files.write("/workspace/w/x.txt", "hello")
    assert machine.files.read("/workspace/w/x.txt") == "hello"
    assert machine.files.read("/workspace/w/x.txt", format="bytes") == b"hello"
    assert b"".join(machine.files.read_stream("/workspace/w/x.txt")) == b"hello"
    assert machine.files.exists("/workspace/w/x.txt")
    assert any(e.name == "x.txt" for e in machine.files.list("/workspace/w"))


def test_typed_errors(server: TestServer, machine: Machine) -> None:
    with pytest.raises(MachineNotFoundError) as missing:
        Machine.get_info_by_id("mch_aaaaaaaaaaaaaaaaaaaa")
    assert (missing.value.code, missing.value.status) == ("machine_not_found", 404)
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    with pytest.raises(InvalidArgumentError) as bad:
        Machine.create(vcpus=1000)
    assert (bad.value.code, bad.value.status, bad.value.details["field"]) == ("invalid_argument", 400, "vcpus")
    machine.commands.run("sleep 60", background=True, tag="only-one")
    with pytest.raises(ConflictError) as conflict:
        machine.commands.run("sleep 60", background=True, tag="only-one")
    assert (conflict.value.code, conflict.value.status) == ("conflict", 409)
    with pytest.raises(NullspaceError) as unreachable:
        Machine.list(api_url="http://127.0.0.1:9")
    assert unreachable.value.code == "unavailable"


def test_with_kills_the_machine_even_on_an_exception(server: TestServer) -> None:
    made: List[Machine] = []
    with pytest.raises(ValueError):
        with Machine.create(template="base") as m:
            made.append(m)
            server.machine_ids.add(m.id)
            raise ValueError("boom")
    assert Machine.get_info_by_id(made[0].id).status == "killed"


def test_twenty_concurrent_async_creates_in_one_loop(server: TestServer) -> None:
    async def main() -> List[str]:
        machines = await asyncio.gather(*[AsyncMachine.create(template="base") for _ in range(20)])
        for m in machines:
            server.machine_ids.add(m.id)
        try:
            outs = await asyncio.gather(*[m.commands.run(f"echo {i}", shell=True) for i, m in enumerate(machines)])
            assert [o.stdout for o in outs] == [f"{i}\n" for i in range(20)]
            return [m.id for m in machines]
        finally:
            await asyncio.gather(*[m.kill() for m in machines])

    ids = asyncio.run(main())
    assert len(set(ids)) == 20


def test_async_machine_end_to_end(server: TestServer) -> None:
    async def main() -> Any:
        async with await AsyncMachine.create(template="base") as m:
            events: List[str] = []

            async def follow() -> None:
                async for e in m.stream_events(live_only=True):
                    events.append(e.type)
                    if e.status == "paused":
                        return

            follower = asyncio.ensure_future(follow())
            h = await m.commands.run("echo one; read x; echo two", background=True)
            chunks = []
            async for c in h:
                chunks.append(c.text)
                if c.text == "one\n":
                    await h.send_stdin("\n")
            assert "".join(chunks) == "one\ntwo\n"
            await m.files.write("/workspace/a.txt", b"\x00\x01")
            assert await m.files.read("/workspace/a.txt", format="bytes") == b"\x00\x01"
            page = await AsyncMachine.list(limit=1)
            listed = [i.id async for i in page]
            assert m.id in listed
            await m.pause()
            await asyncio.wait_for(follower, 60)
            assert "status_changed" in events
            await AsyncMachine.connect(m.id)
            return m.id

    mid = asyncio.run(main())
    server.machine_ids.add(mid)
    assert Machine.get_info_by_id(mid).status == "killed"


def test_fork_snapshot_and_git(server: TestServer, machine: Machine) -> None:
    machine.files.write("/workspace/repo/README", "hello\n")
    machine.git.config.set("user.email", "ada@example.com")
    machine.git.config.set("user.name", "Ada")
    machine.commands.run("git init -q -b main /workspace/repo", shell=True)
    machine.git.add("/workspace/repo", all=True)
    sha = machine.git.commit("/workspace/repo", "first")["sha"]
    status = machine.git.status("/workspace/repo")
    assert status.branch == "main" and status.clean and status.commit == sha
    children = machine.fork(count=1)
    assert len(children) == 1 and children[0].error is None
    child = children[0].machine
    server.machine_ids.add(child.id)
    try:
        assert child.files.read("/workspace/repo/README") == "hello\n"
    finally:
        child.kill()
    snap = machine.create_snapshot()
    assert snap.kind == "reusable"
    started = time.monotonic()
    copy = Machine.create(snapshot_id=snap.id)
    server.machine_ids.add(copy.id)
    print(f"create from a snapshot: {time.monotonic() - started:.2f} s")
    try:
        assert copy.git.status("/workspace/repo").commit == sha
    finally:
        copy.kill()
