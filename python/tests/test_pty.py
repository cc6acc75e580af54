"""Terminals against a real server: create, typing, resize, the ``on_data`` callback, kill, a
terminal found again by pid, and a shell whose state survives a pause and a connect; sync and async.

A terminal echoes what is typed, so every check looks for text only the shell's answer contains
(``$((6*7))`` typed, ``42`` answered)."""

from __future__ import annotations

import asyncio
from typing import Any, List

from conftest import TestServer
from nullspace import AsyncMachine, InvalidStateError, Machine, PtyHandle


def read_until(term: PtyHandle, needle: str) -> str:
    """The terminal's output from where this handle stands until ``needle`` has appeared."""
    seen = ""
    for chunk in term:
        seen += chunk.text
        if needle in seen:
            return seen
    raise AssertionError(f"the terminal ended before printing {needle!r}: {seen!r}")


def test_typing_resize_and_exit_with_the_on_data_callback(server: TestServer, shared_machine: Machine) -> None:
    got: List[bytes] = []
    term = shared_machine.pty.create(cols=80, rows=24, on_data=got.append)
    assert isinstance(term.pid, int)
    term.ready()
    listed = [p for p in shared_machine.commands.list() if p.pid == term.pid]
    assert len(listed) == 1 and listed[0].kind == "pty" and listed[0].running
    term.send_input("stty size; echo \"tty=$(tty)\"\r")
    screen = read_until(term, "tty=/dev/pts/")
    assert "24 80" in screen
    term.resize(120, 40)
    term.send_input("stty size; echo sum=$((6*7))\r")
    assert "40 120" in read_until(term, "sum=42")
    # The namespace's calls by pid reach the same terminal.
    shared_machine.pty.resize(term.pid, 100, 30)
    shared_machine.pty.send_input(term.pid, "stty size; exit 3\r")
    result = term.wait()
    assert result == {"exit_code": 3, "signal": None}
    # on_data got the bytes of the whole session, iterated or waited for.
    screen = b"".join(got).decode("utf-8", "replace")
    assert "24 80" in screen and "40 120" in screen and "30 100" in screen
    assert term.exit_code == 3
    gone = shared_machine.commands.get(term.pid)
    assert gone.running is False and gone.exit_code == 3


def test_kill_ends_the_program_with_a_signal(server: TestServer, shared_machine: Machine) -> None:
    term = shared_machine.pty.create(cmd="sleep", args=["600"], tag="pty-sleeper")
    term.ready()
    term.kill()
    result = term.wait()
    assert result["exit_code"] is None and result["signal"] == "SIGKILL", result
    try:
        term.ready()
    except InvalidStateError as err:
        assert err.details == {"pid": term.pid}
    else:
        raise AssertionError("ready() of a killed terminal did not raise")


def test_the_shell_state_survives_pause_and_connect(server: TestServer, machine: Machine) -> None:
    term = machine.pty.create(cols=80, rows=24, envs={"FROM_CREATE": "env-ok"})
    term.send_input("cd /tmp && MARK=kept-$((40+2)) && echo set-$((1+1))\r")
    read_until(term, "set-2")
    term.disconnect()
    assert machine.pause().status == "paused"
    resumed = Machine.connect(machine.id)
    assert resumed.get_info().status == "running"
    again = resumed.pty.connect(term.pid)
    again.send_input('echo "state=$MARK:$PWD:$FROM_CREATE"\r')
    assert "state=kept-42:/tmp:env-ok" in read_until(again, "state=kept-42:/tmp:env-ok")
    again.kill()
    assert again.wait()["signal"] == "SIGKILL"


def test_async_terminal(server: TestServer, shared_machine: Machine) -> None:
    async def main() -> Any:
        m = AsyncMachine(shared_machine.id)
        term = await m.pty.create(cols=90, rows=20)
        await term.ready()
        await term.send_input("stty size; echo a=$((3*5))\r")
        seen = ""
        async for chunk in term:
            seen += chunk.text
            if "a=15" in seen:
                break
        assert "20 90" in seen
        await term.resize(91, 21)
        await m.pty.send_input(term.pid, "stty size; echo b=$((4*5))\r")
        async for chunk in term:
            seen += chunk.text
            if "b=20" in seen:
                break
        assert "21 91" in seen
        again = await m.pty.connect(term.pid)
        await again.kill()
        return await again.wait()

    assert asyncio.run(main())["signal"] == "SIGKILL"
