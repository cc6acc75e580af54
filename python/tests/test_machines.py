"""Machine calls against a real server that the behaviour tests leave out: ``run_once`` (the
machine is killed after the command, also when the command could not run), lifecycle events by
polling (``list_events`` with a long poll answered by a later event), metrics, the by-id lifecycle
calls, ``resume`` and ``Snapshot``; sync and async.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from typing import Any, List

import pytest

from conftest import TestServer
from nullspace import (
    AsyncMachine,
    AsyncSnapshot,
    InvalidArgumentError,
    InvalidStateError,
    Machine,
    MachineQuery,
    Snapshot,
    SnapshotNotFoundError,
)
from nullspace.models import LifecycleEventsPage


def machines_tagged(tag: str) -> List[Any]:
    return Machine.list(query=MachineQuery(metadata={"run_once": tag}, state=["running", "killed"])).items


def test_run_once_kills_its_machine_also_when_the_command_cannot_run(server: TestServer) -> None:
    tag = secrets.token_hex(4)
    shell = Machine.run_once("echo $((6*7)); echo err >&2; exit 3", metadata={"run_once": tag})
    assert (shell.exit_code, shell.stdout, shell.stderr) == (3, "42\n", "err\n")
    argv = Machine.run_once("python3", ["-c", "import sys; print(sys.stdin.read().upper())"], stdin="piped", metadata={"run_once": tag})
    assert (argv.exit_code, argv.stdout) == (0, "PIPED\n")
    # A timeout the server refuses: the error comes back, the machine is killed anyway.
    with pytest.raises(InvalidArgumentError):
        Machine.run_once("true", command_timeout=-1, metadata={"run_once": tag})
    made = machines_tagged(tag)
    for m in made:
        server.machine_ids.add(m.id)
    assert [m.status for m in made] == ["killed"] * 3


def test_async_run_once(server: TestServer) -> None:
    tag = secrets.token_hex(4)
    result = asyncio.run(AsyncMachine.run_once("echo async-once", metadata={"run_once": tag}, command_timeout=30))
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "async-once\n", False)
    made = machines_tagged(tag)
    for m in made:
        server.machine_ids.add(m.id)
    assert [(m.status, m.timeout) for m in made] == [("killed", 300)]


def test_list_events_pages_and_long_polls(server: TestServer, machine: Machine) -> None:
    page = machine.list_events(after_event_id=0, limit=1000)
    assert isinstance(page, LifecycleEventsPage) and page.events
    ids = [e.id for e in page.events]
    assert ids == sorted(set(ids)) and page.last_event_id == ids[-1]
    assert all(e.machine_id == machine.id for e in page.events)
    assert page.events[-1].status == "running"
    first_two = machine.list_events(after_event_id=0, limit=2).events
    assert [e.id for e in first_two] == ids[:2]
    nothing = machine.list_events(after_event_id=page.last_event_id, wait_ms=0)
    assert nothing.events == [] and nothing.last_event_id >= page.last_event_id

    # A long poll answered by an event that happens after it was asked for.
    answers: List[Any] = []
    poller = threading.Thread(
        target=lambda: answers.append(machine.list_events(after_event_id=page.last_event_id, wait_ms=30_000)),
        daemon=True,
    )
    poller.start()
    machine.set_timeout(600)
    poller.join(90)
    assert not poller.is_alive(), "the long poll did not return"
    [answered] = answers
    assert [e.type for e in answered.events] == ["timeout_set"]
    assert answered.events[0].id > page.last_event_id


def test_async_long_poll(server: TestServer, machine: Machine) -> None:
    async def main() -> Any:
        m = AsyncMachine(machine.id)
        start = (await m.list_events(after_event_id=0)).last_event_id

        async def later() -> None:
            await asyncio.sleep(0.2)  # the poll is likely waiting by then; either way it sees the event
            await m.pause()

        page, _ = await asyncio.gather(m.list_events(after_event_id=start, wait_ms=30_000), later())
        return start, page

    start, page = asyncio.run(main())
    assert page.events and page.events[0].id > start
    assert page.events[0].type == "status_changed" and page.events[0].status == "pausing"


def test_metrics(server: TestServer, shared_machine: Machine) -> None:
    m = shared_machine
    now = m.get_metrics()
    assert (now.machine_id, now.status, now.vcpus) == (m.id, "running", 1)
    assert now.memory_limit_bytes == 512 * 1024 * 1024
    assert now.memory_bytes > 0 and now.cpu_seconds >= 0 and now.disk_total_bytes > 0
    assert now.at is not None and isinstance(now.samples, list)
    by_id = Machine.get_metrics_by_id(m.id)
    assert (by_id.machine_id, by_id.memory_limit_bytes) == (m.id, now.memory_limit_bytes)
    from_async = asyncio.run(AsyncMachine.get_metrics_by_id(m.id))
    assert from_async.machine_id == m.id and from_async.vcpus == 1
    killed = Machine.create(template="base")
    server.machine_ids.add(killed.id)
    killed.kill()
    with pytest.raises(InvalidStateError):
        killed.get_metrics()


def test_by_id_lifecycle_resume_and_snapshots(server: TestServer, machine: Machine) -> None:
    machine.files.write("/workspace/kept.txt", "kept\n")
    paused = Machine.pause_by_id(machine.id)
    assert paused.status == "paused" and paused.snapshot_id
    pause_snap = Snapshot.get(paused.snapshot_id)
    assert (pause_snap.kind, pause_snap.machine_id) == ("pause", machine.id)
    resumed = Machine.resume(paused.snapshot_id)
    assert resumed.id == machine.id and resumed.get_info().status == "running"
    assert resumed.get_info().execution_id != paused.execution_id
    reusable = machine.create_snapshot()
    assert reusable.id in [s.id for s in Snapshot.list(machine_id=machine.id, kind="reusable")]
    assert reusable.id not in [s.id for s in Snapshot.list(kind="pause")]
    hibernated = Machine.hibernate_by_id(machine.id)
    assert hibernated.status == "hibernated"
    assert Machine.connect(machine.id).files.read("/workspace/kept.txt") == "kept\n"

    async def async_snapshots() -> Any:
        return [s.id for s in await AsyncSnapshot.list(machine_id=machine.id)], await AsyncSnapshot.get(reusable.id)

    listed, got = asyncio.run(async_snapshots())
    assert reusable.id in listed and got.kind == "reusable"
    assert Snapshot.delete(reusable.id).id == reusable.id
    with pytest.raises(SnapshotNotFoundError):
        Snapshot.get(reusable.id)
    assert Machine.kill_by_id(machine.id).status == "killed"
    assert Machine.kill_by_id(machine.id).status == "killed"  # idempotent
