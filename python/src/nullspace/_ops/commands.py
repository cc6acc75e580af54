"""``machine.commands`` and command handles: foreground runs streamed over one request, background
processes, and the process WebSocket that re-attaches from the offset reached after a drop."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Union

from .. import _protocol as p
from .._protocol import Emit, Open, Read, Request, Sleep, WsOpen, WsRecv, machine_path, ms, seg
from ..errors import NullspaceError, UnavailableError, error_from_code
from ..models import CommandResult, OutputChunk, ProcessInfo, ProcessLogs
from ._base import Gen, _json, _transient, op, op_iter


def _attach(ws_path: str, state: p.StreamState, emit: bool, handle: Any = None) -> Gen:
    """Keeps a process's WebSocket attached until it exits: a dropped connection (a checkpoint, a
    server restart) is re-opened from the offset reached, so output comes once and in order."""
    backoff = 0.05
    ever_opened = False
    while state.exit is None:
        if handle is not None and handle._stopped:
            return
        ws = None
        try:
            ws = yield WsOpen(ws_path, [("offset", str(state.offset))])
        except UnavailableError:
            if not ever_opened:
                raise
        if isinstance(ws, p.Response):
            err = p.error_from_response(ws)
            if not _transient(err):
                raise err
        elif ws is not None:
            ever_opened = True
            backoff = 0.05
            last_error: Optional[NullspaceError] = None
            while state.exit is None:
                msg = yield WsRecv(ws)
                if msg is None:
                    break
                opcode, data = msg
                if opcode != 2 or not data:
                    continue
                ev, calls, chunk = state.take(data[0], data[1:])
                for c in calls:
                    yield c
                if chunk is not None and emit:
                    yield Emit(OutputChunk(*chunk))
                if ev is not None and ev.get("type") == "error":
                    last_error = error_from_code(ev.get("code"), ev.get("message", ""))
                if handle is not None and handle._stopped:
                    break
            yield p.Close(ws)
            if state.exit is not None:
                return
            code = ws.close_code or 0
            # 4000+: the server or agent refused for good (the reason is the error code).
            if code >= 4000:
                raise last_error or error_from_code(ws.close_reason or None, f"attach refused ({code})")
        yield Sleep(backoff)
        backoff = min(1.0, backoff * 2)


def _commands_base(machine_id: str) -> str:
    return f"{machine_path(machine_id)}/commands"


def _callbacks(on_stdout: Any, on_stderr: Any, on_data: Any) -> p.OutputCallbacks:
    return p.OutputCallbacks(on_stdout=on_stdout, on_stderr=on_stderr, on_data=on_data)


def _run(
    commands: Any,
    cmd: str,
    *,
    args: Optional[List[str]] = None,
    shell: Optional[bool] = None,
    cwd: Optional[str] = None,
    envs: Optional[Dict[str, str]] = None,
    timeout: Optional[float] = None,
    stdin: Optional[str] = None,
    background: bool = False,
    tag: Optional[str] = None,
    on_stdout: Any = None,
    on_stderr: Any = None,
    on_data: Any = None,
    request_timeout: Optional[float] = None,
) -> Gen:
    base = _commands_base(commands._machine_id)
    body: Dict[str, Any] = {
        "cmd": cmd,
        "args": args,
        "shell": shell if shell is not None else args is None,
        "cwd": cwd,
        "envs": envs,
        "timeout_ms": ms(timeout),
        # A foreground run has no handle to write stdin with: it gets `stdin`, then EOF.
        "stdin": stdin if background else (stdin or ""),
    }
    callbacks = _callbacks(on_stdout, on_stderr, on_data)
    if background:
        body["background"] = True
        body["tag"] = tag
        info = yield from _json(Request("POST", base, json=body, timeout=request_timeout))
        state = p.StreamState(callbacks)
        return commands._family.CommandHandle(commands, info["pid"], info.get("tag"), state)
    body["stream"] = True
    state = p.StreamState(callbacks)
    stream = yield Open(Request("POST", base, json=body, timeout=request_timeout))
    if isinstance(stream, p.Response):
        p.raise_for_status(stream)
    decoder = p.FrameDecoder()
    try:
        while True:
            data = yield Read(stream)
            if not data:
                break
            for kind, payload in decoder.push(data):
                _, calls, _ = state.take(kind, payload)
                for c in calls:
                    yield c
    except NullspaceError:
        pass  # cut before the exit: re-attached below from the offset reached
    if state.exit is None:
        if state.pid is None:
            raise UnavailableError("unavailable", "the command stream ended before the command started")
        yield from _attach(f"{base}/{state.pid}/ws", state, emit=False)
    return CommandResult.from_dict(state.result(state.pid or 0))


class CommandsOps:
    """``machine.commands``: ``self._machine_id``, ``self._client``, ``self._family``."""

    @op
    def run(
        self,
        cmd: str,
        *,
        args: Optional[List[str]] = None,
        shell: Optional[bool] = None,
        cwd: Optional[str] = None,
        envs: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
        stdin: Optional[str] = None,
        background: bool = False,
        tag: Optional[str] = None,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        on_data: Optional[Callable[[bytes, str], Any]] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Runs a command. In the foreground (default) it returns a :class:`CommandResult` once
        the command ends, streaming output to ``on_stdout`` / ``on_stderr`` / ``on_data`` as it
        comes. With ``background=True`` it returns a command handle at once (``wait()``,
        ``kill()``, ``send_stdin()``, iteration over output). Without ``args``, ``cmd`` is a shell
        line; with ``args``, the program and its argv. ``timeout`` is seconds (default 60 in the
        foreground, none in the background).

        Example::

            r = machine.commands.run("echo hello | tr a-z A-Z", shell=True)
            print(r.stdout, r.exit_code)  # "HELLO\\n" 0
            web = machine.commands.run("python3 -m http.server 8000", background=True, tag="web")
        """
        result = yield from _run(
            self,
            cmd,
            args=args,
            shell=shell,
            cwd=cwd,
            envs=envs,
            timeout=timeout,
            stdin=stdin,
            background=background,
            tag=tag,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_data=on_data,
            request_timeout=request_timeout,
        )
        return result

    @op
    def connect(
        self,
        ref: Union[int, str],
        *,
        offset: int = 0,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        on_data: Optional[Callable[[bytes, str], Any]] = None,
    ) -> Gen:
        """A handle on a running (or finished) process by pid or tag, from any client; its output
        is read from ``offset`` (default: all the server keeps).

        Example::

            web = machine.commands.connect("web")
            for chunk in web:
                print(chunk.text, end="")
        """
        info = yield from _json(Request("GET", f"{_commands_base(self._machine_id)}/{seg(ref)}"))
        state = p.StreamState(_callbacks(on_stdout, on_stderr, on_data))
        state.offset = offset
        return self._family.CommandHandle(self, info["pid"], info.get("tag"), state)

    @op
    def list(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Processes started through the API (commands and terminals), running and finished."""
        wire = yield from _json(Request("GET", _commands_base(self._machine_id), timeout=request_timeout))
        return [ProcessInfo.from_dict(x) for x in wire["processes"]]

    @op
    def get(self, ref: Union[int, str], *, request_timeout: Optional[float] = None) -> Gen:
        """One process by pid or tag."""
        wire = yield from _json(
            Request("GET", f"{_commands_base(self._machine_id)}/{seg(ref)}", timeout=request_timeout)
        )
        return ProcessInfo.from_dict(wire)

    @op
    def logs(
        self,
        ref: Union[int, str],
        *,
        offset: Optional[int] = None,
        limit: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A process's kept output from ``offset`` (the newest 4 MiB are kept).

        Example::

            logs = machine.commands.logs("web")
            print(logs.stdout, logs.next_offset)
        """
        q = [(k, str(v)) for k, v in (("offset", offset), ("limit", limit)) if v is not None]
        wire = yield from _json(
            Request("GET", f"{_commands_base(self._machine_id)}/{seg(ref)}/logs", query=q, timeout=request_timeout)
        )
        return ProcessLogs.from_dict(wire)

    @op
    def send_stdin(self, ref: Union[int, str], data: Union[str, bytes], *, request_timeout: Optional[float] = None) -> Gen:
        """Writes to a process's stdin (text as UTF-8)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        yield from _json(
            Request(
                "POST",
                f"{_commands_base(self._machine_id)}/{seg(ref)}/stdin",
                body=raw,
                headers={"content-type": "application/octet-stream"},
                timeout=request_timeout,
            )
        )

    @op
    def close_stdin(self, ref: Union[int, str], *, request_timeout: Optional[float] = None) -> Gen:
        """Ends a process's stdin (EOF)."""
        yield from _json(
            Request("POST", f"{_commands_base(self._machine_id)}/{seg(ref)}/close_stdin", timeout=request_timeout)
        )

    @op
    def signal(
        self, ref: Union[int, str], signal: str = "SIGTERM", *, request_timeout: Optional[float] = None
    ) -> Gen:
        """Sends a signal (default SIGTERM) to a process and everything it started."""
        yield from _json(
            Request(
                "POST",
                f"{_commands_base(self._machine_id)}/{seg(ref)}/signal",
                json={"signal": signal},
                timeout=request_timeout,
            )
        )

    @op
    def kill(self, ref: Union[int, str], *, request_timeout: Optional[float] = None) -> Gen:
        """SIGKILL to a process and everything it started."""
        yield from _json(
            Request("DELETE", f"{_commands_base(self._machine_id)}/{seg(ref)}", timeout=request_timeout)
        )


class CommandHandleOps:
    """A background (or attached) process: ``self._commands``, ``self.pid``, ``self._state``."""

    @op
    def wait(self) -> Gen:
        """Follows the process until it ends (output goes to the callbacks given at ``run``) and
        returns its :class:`CommandResult`.

        Example::

            cat = machine.commands.run("cat", background=True)
            cat.send_stdin("hello\\n")
            cat.close_stdin()
            print(cat.wait().stdout)  # "hello\\n"
        """
        self._stopped = False
        yield from _attach(self._ws_path(), self._state, emit=False, handle=self)
        if self._state.exit is None:
            raise UnavailableError("unavailable", f"stopped following process {self.pid} before it ended")
        return CommandResult.from_dict(self._state.result(self.pid))

    @op_iter
    def output(self) -> Gen:
        """The process's output as :class:`OutputChunk` objects while it runs, until it ends (the
        same as iterating the handle). Breaking out and iterating again goes on where it was.

        Example::

            for chunk in handle.output():
                print(chunk.stream, chunk.text, end="")
        """
        self._stopped = False
        yield from _attach(self._ws_path(), self._state, emit=True, handle=self)

    @op
    def send_stdin(self, data: Union[str, bytes]) -> Gen:
        """Writes to the process's stdin (text as UTF-8)."""
        yield from CommandsOps.send_stdin(self._commands, self.pid, data)

    @op
    def close_stdin(self) -> Gen:
        """Ends the process's stdin (EOF)."""
        yield from CommandsOps.close_stdin(self._commands, self.pid)

    @op
    def signal(self, signal: str = "SIGTERM") -> Gen:
        """Sends a signal (default SIGTERM) to the process and everything it started."""
        yield from CommandsOps.signal(self._commands, self.pid, signal)

    @op
    def kill(self) -> Gen:
        """SIGKILL to the process and everything it started."""
        yield from CommandsOps.kill(self._commands, self.pid)
