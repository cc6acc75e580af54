"""``machine.code_interpreter``: runs (NDJSON events, with callbacks), re-attach, contexts,
installs, artifacts."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Union

from .. import _protocol as p
from .._protocol import Call, Open, Read, Request, machine_path, seg
from ..errors import InstallError
from ..models import CodeArtifact, CodeContext, CodeResult, Execution, ExecutionError, InstallResult
from ._base import Gen, _json, op

ContextRef = Union[CodeContext, str]


def _base(machine_id: str) -> str:
    return f"{machine_path(machine_id)}/code"


def _context_id(context: ContextRef) -> str:
    return context if isinstance(context, str) else context.id


class _Lines:
    """The JSON lines of an open NDJSON stream, a batch at a time; a line split across reads is
    kept until its end comes. ``next()`` is used with ``yield from`` (its reads are effects the
    driver performs) and returns the next whole lines, or ``[]`` once the stream ended."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buf = b""
        self.ended = False

    def next(self) -> Gen:
        while not self.ended:
            if b"\n" in self.buf:
                *lines, self.buf = self.buf.split(b"\n")
                batch = [json.loads(line) for line in lines if line.strip()]
                if batch:
                    return batch
            data = yield Read(self.stream)
            if not data:
                self.ended = True
                rest, self.buf = self.buf, b""
                return [json.loads(rest)] if rest.strip() else []
            self.buf += data
        return []


def _follow(stream: Any, ex: Execution, callbacks: Dict[str, Optional[Callable[..., Any]]]) -> Gen:
    if isinstance(stream, p.Response):
        p.raise_for_status(stream)
    lines = _Lines(stream)
    while not lines.ended:
        events = yield from lines.next()
        for ev in events:
            ex.event_count += 1
            t = ev.get("type")
            if t == "start":
                ex.id, ex.context_id, ex.language = ev["execution_id"], ev["context_id"], ev["language"]
                cb = callbacks.get("on_start")
                if cb is not None:
                    yield p.Callback(cb, ({"execution_id": ex.id, "context_id": ex.context_id},))
            elif t in ("stdout", "stderr"):
                getattr(ex.logs, t).append(ev["text"])
                cb = callbacks.get(f"on_{t}")
                if cb is not None:
                    yield p.Callback(cb, (ev["text"],))
            elif t == "result":
                r = CodeResult.from_dict({k: v for k, v in ev.items() if k != "type"})
                ex.results.append(r)
                cb = callbacks.get("on_result")
                if cb is not None:
                    yield p.Callback(cb, (r,))
            elif t == "error":
                ex.error = ExecutionError.from_dict({k: v for k, v in ev.items() if k != "type"})
                cb = callbacks.get("on_error")
                if cb is not None:
                    yield p.Callback(cb, (ex.error,))
            elif t == "end":
                ex.execution_count = ev.get("execution_count")
                ex.duration_ms = ev.get("duration_ms")
                ex.exit_code = ev.get("exit_code")
                ex.done = True
            elif t == "interrupted":
                ex.event_count -= 1
                ex.interrupted = ev.get("reason")
    return ex


class CodeInterpreterOps:
    """``machine.code_interpreter``."""

    @op
    def run(
        self,
        code: str,
        *,
        language: Optional[str] = None,
        context: Optional[ContextRef] = None,
        timeout: Optional[float] = None,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        on_result: Optional[Callable[[CodeResult], Any]] = None,
        on_error: Optional[Callable[[ExecutionError], Any]] = None,
        on_start: Optional[Callable[[Dict[str, str]], Any]] = None,
    ) -> Gen:
        """Runs code in a context (default: the language's default context) and returns its
        :class:`Execution`. Callbacks get output and results as they come (``on_start`` the
        execution id, for :meth:`attach`). The code's own errors are in ``execution.error``, never
        raised. ``timeout`` (seconds, default 300; 0: none): past it the run is interrupted and
        ends with a ``TimeoutError``; the context is kept.

        Example::

            ex = machine.code_interpreter.run("import math\\nmath.pi", on_stdout=print)
            print(ex.text)
        """
        body: Dict[str, Any] = {"code": code, "language": language, "timeout": timeout}
        if context is not None:
            body["context"] = _context_id(context)
        stream = yield Open(Request("POST", f"{_base(self._machine_id)}/run", json=body, timeout=0))
        ex = yield from _follow(
            stream,
            Execution(),
            {
                "on_stdout": on_stdout,
                "on_stderr": on_stderr,
                "on_result": on_result,
                "on_error": on_error,
                "on_start": on_start,
            },
        )
        return ex

    @op
    def attach(
        self,
        execution_id: str,
        *,
        after: int = 0,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        on_result: Optional[Callable[[CodeResult], Any]] = None,
        on_error: Optional[Callable[[ExecutionError], Any]] = None,
    ) -> Gen:
        """Re-attaches to a run by id: its events after ``after`` (``execution.event_count`` of
        what you had), then the rest as they come.

        Example::

            rest = machine.code_interpreter.attach("cex_0123456789abcdef", after=3)
        """
        stream = yield Open(
            Request(
                "GET",
                f"{_base(self._machine_id)}/executions/{seg(execution_id)}",
                query=[("after", str(after))],
                timeout=0,
            )
        )
        ex = Execution(id=execution_id, event_count=after)
        ex = yield from _follow(
            stream, ex, {"on_stdout": on_stdout, "on_stderr": on_stderr, "on_result": on_result, "on_error": on_error}
        )
        return ex

    @op
    def create_context(
        self,
        *,
        language: str = "python",
        cwd: Optional[str] = None,
        envs: Optional[Dict[str, str]] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a context with its own state: a kernel (python), a Node.js context
        (javascript) or a shell (bash).

        Example::

            ctx = machine.code_interpreter.create_context(language="bash", cwd="/tmp")
        """
        wire = yield from _json(
            Request(
                "POST",
                f"{_base(self._machine_id)}/contexts",
                json={"language": language, "cwd": cwd, "envs": envs},
                timeout=request_timeout if request_timeout is not None else 120,
            )
        )
        return CodeContext.from_dict(wire)

    @op
    def list_contexts(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The machine's contexts (the default ones too, once used)."""
        wire = yield from _json(Request("GET", f"{_base(self._machine_id)}/contexts", timeout=request_timeout))
        return [CodeContext.from_dict(c) for c in wire["contexts"]]

    @op
    def delete_context(self, context: ContextRef, *, request_timeout: Optional[float] = None) -> Gen:
        """Deletes a context (its kernel or shell ends)."""
        wire = yield from _json(
            Request("DELETE", f"{_base(self._machine_id)}/contexts/{seg(_context_id(context))}", timeout=request_timeout)
        )
        return CodeContext.from_dict(wire)

    @op
    def restart_context(self, context: ContextRef, *, request_timeout: Optional[float] = None) -> Gen:
        """Restarts a context: a fresh kernel or shell, its variables gone."""
        wire = yield from _json(
            Request(
                "POST",
                f"{_base(self._machine_id)}/contexts/{seg(_context_id(context))}/restart",
                timeout=request_timeout if request_timeout is not None else 120,
            )
        )
        return CodeContext.from_dict(wire)

    @op
    def install(
        self,
        packages: Optional[List[str]] = None,
        *,
        language: str = "python",
        requirements: Optional[str] = None,
        no_index: bool = False,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
    ) -> Gen:
        """Installs packages for the contexts: pip into the kernels' venv (names, local wheel
        paths in the machine, or ``requirements`` text), or npm for javascript. Raises
        :class:`InstallError` with pip's (npm's) message when it fails.

        Example::

            machine.code_interpreter.install(["/workspace/dist/mylib-1.0-py3-none-any.whl"], no_index=True)
        """
        body: Dict[str, Any] = {"packages": list(packages or []), "language": language, "requirements": requirements}
        if no_index:
            body["no_index"] = True
        stream = yield Open(Request("POST", f"{_base(self._machine_id)}/install", json=body, timeout=0))
        if isinstance(stream, p.Response):
            p.raise_for_status(stream)
        result = InstallResult()
        failure: Optional[Dict[str, Any]] = None
        ended = False
        lines = _Lines(stream)
        while not lines.ended:
            events = yield from lines.next()
            for ev in events:
                t = ev.get("type")
                if t in ("stdout", "stderr"):
                    setattr(result, t, getattr(result, t) + ev["text"])
                    cb = on_stdout if t == "stdout" else on_stderr
                    if cb is not None:
                        yield p.Callback(cb, (ev["text"],))
                elif t == "error":
                    failure = ev
                elif t == "end":
                    result.duration_ms = ev.get("duration_ms", 0)
                    ended = True
        if failure is not None:
            raise InstallError(failure.get("value", "install failed"), exit_code=failure.get("exit_code"), log=result.stdout + result.stderr)
        if not ended:
            raise InstallError("the install was cut off before it ended", exit_code=None, log=result.stdout + result.stderr)
        return result

    @op
    def list_artifacts(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Images and PDFs runs displayed, and files written under the artifacts directory."""
        wire = yield from _json(Request("GET", f"{_base(self._machine_id)}/artifacts", timeout=request_timeout))
        return [CodeArtifact.from_dict(a) for a in wire["artifacts"]]

    @op
    def download_artifact(self, artifact: Union[CodeArtifact, str], *, request_timeout: Optional[float] = None) -> Gen:
        """An artifact's bytes.

        Example::

            png = machine.code_interpreter.download_artifact(machine.code_interpreter.list_artifacts()[0])
        """
        aid = artifact if isinstance(artifact, str) else artifact.id
        resp = yield Call(Request("GET", f"{_base(self._machine_id)}/artifacts/{seg(aid)}", timeout=request_timeout))
        p.raise_for_status(resp)
        return resp.body

    @op
    def artifact_url(self, artifact: CodeArtifact, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A URL that downloads an artifact with no API key (a signed URL of its file)."""
        wire = yield from _json(
            Request(
                "POST",
                f"{machine_path(self._machine_id)}/files/signed_url",
                json={"path": artifact.path, "op": "read", "expires_in": expires_in},
                timeout=request_timeout,
            )
        )
        return wire["url"]
