"""``machine.pty`` and terminal handles: interactive terminals, streamed like processes."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Union

from .. import _protocol as p
from .._protocol import Request, machine_path, seg
from ..errors import error_from_code
from ._base import Gen, _json, op, op_iter
from .commands import _attach, _commands_base


class PtyOps:
    """``machine.pty``: interactive terminals."""

    @op
    def create(
        self,
        *,
        cols: Optional[int] = None,
        rows: Optional[int] = None,
        cmd: Optional[str] = None,
        args: Optional[List[str]] = None,
        cwd: Optional[str] = None,
        envs: Optional[Dict[str, str]] = None,
        tag: Optional[str] = None,
        on_data: Optional[Callable[[bytes], Any]] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Opens a terminal (default: the machine's shell as a login shell) and returns its
        handle: ``send_input``, ``resize``, ``kill``, ``wait`` (output to ``on_data``), and
        iteration over its output.

        Example::

            term = machine.pty.create(cols=80, rows=24)
            term.send_input("echo hi; exit\\r")
            for chunk in term:
                print(chunk.data)
        """
        wire = yield from _json(
            Request(
                "POST",
                f"{machine_path(self._machine_id)}/pty",
                json={"cols": cols, "rows": rows, "cmd": cmd, "args": args, "cwd": cwd, "envs": envs, "tag": tag},
                timeout=request_timeout,
            )
        )
        return self._family.PtyHandle(self, wire["pid"], _pty_state(on_data))

    @op
    def connect(self, pid: int, *, on_data: Optional[Callable[[bytes], Any]] = None) -> Gen:
        """A handle on a terminal by pid (its kept output is replayed first)."""
        yield from _json(Request("GET", f"{_commands_base(self._machine_id)}/{seg(pid)}"))
        return self._family.PtyHandle(self, pid, _pty_state(on_data))

    @op
    def send_input(self, pid: int, data: Union[str, bytes], *, request_timeout: Optional[float] = None) -> Gen:
        """Sends keystrokes to a terminal (text as UTF-8)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        yield from _json(
            Request(
                "POST",
                f"{machine_path(self._machine_id)}/pty/{seg(pid)}/input",
                body=raw,
                headers={"content-type": "application/octet-stream"},
                timeout=request_timeout,
            )
        )

    @op
    def resize(self, pid: int, cols: int, rows: int, *, request_timeout: Optional[float] = None) -> Gen:
        """Resizes a terminal."""
        yield from _json(
            Request(
                "POST",
                f"{machine_path(self._machine_id)}/pty/{seg(pid)}/resize",
                json={"cols": cols, "rows": rows},
                timeout=request_timeout,
            )
        )

    @op
    def kill(self, pid: int, *, request_timeout: Optional[float] = None) -> Gen:
        """SIGKILL to a terminal's program."""
        yield from _json(
            Request("DELETE", f"{machine_path(self._machine_id)}/pty/{seg(pid)}", timeout=request_timeout)
        )


def _pty_state(on_data: Any) -> p.StreamState:
    return p.StreamState(p.OutputCallbacks(on_data=None if on_data is None else (lambda b, _s: on_data(b))))


class PtyHandleOps:
    """A terminal: ``self._pty``, ``self.pid``, ``self._state``."""

    @op
    def send_input(self, data: Union[str, bytes]) -> Gen:
        """Sends keystrokes (text as UTF-8)."""
        yield from PtyOps.send_input(self._pty, self.pid, data)

    @op
    def resize(self, cols: int, rows: int) -> Gen:
        """Resizes the terminal."""
        yield from PtyOps.resize(self._pty, self.pid, cols, rows)

    @op
    def kill(self) -> Gen:
        """SIGKILL to the terminal's program."""
        yield from PtyOps.kill(self._pty, self.pid)

    @op
    def wait(self) -> Gen:
        """Follows the terminal until its program ends (output to ``on_data``); returns
        ``{"exit_code", "signal"}``."""
        self._stopped = False
        yield from _attach(self._ws_path(), self._state, emit=False, handle=self)
        e = self._state.exit or {}
        return {"exit_code": e.get("exit_code"), "signal": e.get("signal")}

    @op
    def ready(self) -> Gen:
        """Returns once the terminal's program is running (raises when it is gone); input is
        accepted from then on."""
        wire = yield from _json(Request("GET", f"{_commands_base(self._pty._machine_id)}/{seg(self.pid)}"))
        if not wire.get("running"):
            raise error_from_code("invalid_state", f"terminal {self.pid} is not running", details={"pid": self.pid})

    @op_iter
    def output(self) -> Gen:
        """The terminal's output as :class:`OutputChunk` objects until its program ends."""
        self._stopped = False
        yield from _attach(self._ws_path(), self._state, emit=True, handle=self)
