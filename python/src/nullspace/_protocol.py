"""The protocol, without I/O: connection settings, the shape of requests and responses, the
"effects" an operation asks its driver to perform, error mapping, and the process stream format.

Every SDK operation (``_ops/``) is a generator written once against this module: it yields
effects (``Call`` a request, ``Open`` a streamed response, ``WsOpen`` a WebSocket, ``Sleep`` ...)
and gets their results sent back. The sync driver (``_sync.py``: http.client and sockets) and the
async driver (``_async.py``: asyncio streams) are the only code that touches the network, so the
two APIs cannot drift apart: they run the same generators.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

from .errors import InvalidArgumentError, NullspaceError, error_from_code

DEFAULT_API_URL = "http://127.0.0.1:7070"
#: Seconds one HTTP request may take unless ``request_timeout`` says otherwise: longer than the
#: server's own deadline for a transition (120 s), so a slow create, kill or resume ends with the
#: server's coded answer rather than with the client giving up first.
DEFAULT_REQUEST_TIMEOUT = 150.0
#: Seconds of silence after which a stream (HTTP frames or WebSocket) counts as dead: the server
#: sends a keepalive frame every 15 s and pings every socket every 20 s.
STREAM_IDLE_TIMEOUT = 45.0
USER_AGENT = "nullspace-sdk-python/0.1.0"

Query = Sequence[Tuple[str, str]]


@dataclass(frozen=True)
class Config:
    """Where the API is and how to authenticate: resolved once per handle.

    ``api_url`` defaults to ``NULLSPACE_API_URL`` (else ``http://127.0.0.1:7070``), ``api_key`` to
    ``NULLSPACE_API_KEY``; ``request_timeout`` is in seconds (``0`` means no limit).
    """

    api_url: str
    api_key: Optional[str]
    request_timeout: float
    scheme: str
    host: str
    port: int
    base_path: str

    @staticmethod
    def resolve(
        api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> "Config":
        url = api_url or os.environ.get("NULLSPACE_API_URL") or DEFAULT_API_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(
                "invalid_argument",
                f'api_url: must be an http or https URL, got "{url}"',
                details={"field": "api_url"},
            )
        key = api_key if api_key is not None else (os.environ.get("NULLSPACE_API_KEY") or None)
        timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else float(request_timeout)
        if timeout < 0:
            raise InvalidArgumentError(
                "invalid_argument", "request_timeout: must be >= 0 seconds", details={"field": "request_timeout"}
            )
        return Config(
            api_url=url.rstrip("/"),
            api_key=key,
            request_timeout=timeout,
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            base_path=parts.path.rstrip("/"),
        )

    def headers(self) -> Dict[str, str]:
        out = {"user-agent": USER_AGENT}
        if self.api_key is not None:
            out["authorization"] = f"Bearer {self.api_key}"
        return out

    def target(self, path: str, query: Optional[Query] = None) -> str:
        """The request target (path and query) of an API path."""
        q = urlencode(list(query)) if query else ""
        return self.base_path + path + (f"?{q}" if q else "")

    def ws_url(self, path: str, query: Optional[Query] = None) -> str:
        scheme = "wss" if self.scheme == "https" else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.target(path, query)}"

    def timeout_of(self, timeout: Optional[float]) -> Optional[float]:
        """The socket timeout of a call: its own, else the connection's; None for "no limit"."""
        t = self.request_timeout if timeout is None else timeout
        return None if t == 0 else t


# ---- requests, responses and effects -------------------------------------------------------------


@dataclass
class Request:
    """One HTTP request below the API URL. ``json`` is sent as JSON; ``body`` as bytes (an iterable
    of byte chunks is streamed). ``timeout`` in seconds overrides the connection's."""

    method: str
    path: str
    query: Optional[Query] = None
    json: Any = None
    body: Union[bytes, Iterable[bytes], None] = None
    headers: Dict[str, str] = field(default_factory=dict)
    timeout: Optional[float] = None

    def payload(self) -> Tuple[Dict[str, str], Union[bytes, Iterable[bytes], None]]:
        headers = {"accept": "application/json", **self.headers}
        if self.json is not None:
            headers["content-type"] = "application/json"
            return headers, json.dumps(_drop_none(self.json), separators=(",", ":")).encode()
        if self.body is None:
            if self.method in ("POST", "PUT", "DELETE"):
                headers["content-length"] = "0"
            return headers, None
        return headers, self.body


@dataclass
class Response:
    status: int
    headers: Dict[str, str]
    body: bytes
    #: For error messages: "METHOD URL".
    what: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; a typed error when the status says the call failed."""
        raise_for_status(self)
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise error_from_code(
                "internal",
                f"{self.what}: the server answered {self.status} with a body that is not JSON",
                status=self.status,
                request_id=self.headers.get("x-request-id"),
            ) from None


@dataclass
class Call:
    """Effect: send a request and read the whole response."""

    request: Request


@dataclass
class Open:
    """Effect: send a request and return a stream handle once the response head arrived; an
    error status is returned as a whole :class:`Response` instead."""

    request: Request


@dataclass
class Read:
    """Effect: the next bytes of an open stream (``b""`` at its end)."""

    stream: Any


@dataclass
class Close:
    """Effect: close a stream or WebSocket early (the driver also closes whatever an operation
    left open when it ends)."""

    handle: Any


@dataclass
class WsOpen:
    """Effect: open a WebSocket; returns a handle, or the refusal as a whole :class:`Response`.
    A connection failure raises ``UnavailableError``."""

    path: str
    query: Optional[Query] = None


@dataclass
class WsRecv:
    """Effect: the next data message of a WebSocket as ``(opcode, payload)``, or ``None`` once it
    closed (its close code is then on the handle). Pings are answered by the driver. ``timeout``
    seconds of silence close it (the server pings every 20 s)."""

    ws: Any
    timeout: Optional[float] = STREAM_IDLE_TIMEOUT


@dataclass
class WsSend:
    """Effect: send one data message (opcode 1 text, 2 binary); False when it is not open."""

    ws: Any
    opcode: int
    payload: bytes


@dataclass
class Sleep:
    seconds: float


@dataclass
class Callback:
    """Effect: call a user callback (the async driver awaits what it returns, if awaitable)."""

    fn: Callable[..., Any]
    args: Tuple[Any, ...]


@dataclass
class Defer:
    """Effect: a request the driver sends (best effort, errors ignored) when the operation ends,
    however it ends — e.g. deleting a file watch when the caller stops iterating."""

    request: Request


@dataclass
class Emit:
    """Yielded by iterator operations: an item for the caller (no result is sent back)."""

    item: Any


# ---- errors --------------------------------------------------------------------------------------


def raise_for_status(resp: Response) -> None:
    if not resp.ok:
        raise error_from_response(resp)


def error_from_response(resp: Response) -> NullspaceError:
    """The typed error of a failed response: the server's ``{"error": {...}}`` body mapped by its
    code, or — for a body that is not ours (a proxy in between) — by the HTTP status."""
    request_id = resp.headers.get("x-request-id")
    retry_after = _retry_after(resp.headers.get("retry-after"))
    wire: Optional[Mapping[str, Any]] = None
    try:
        parsed = json.loads(resp.body) if resp.body else None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            wire = parsed["error"]
    except ValueError:
        wire = None
    if wire is not None and isinstance(wire.get("code"), str) and isinstance(wire.get("message"), str):
        details = wire.get("details") if isinstance(wire.get("details"), dict) else None
        rid = wire.get("request_id") if isinstance(wire.get("request_id"), str) else request_id
        return error_from_code(
            wire["code"], wire["message"], status=resp.status, request_id=rid, details=details, retry_after=retry_after
        )
    return error_from_code(
        None,
        f"{resp.what}: HTTP {resp.status} (not a Nullspace error response)",
        status=resp.status,
        request_id=request_id,
        retry_after=retry_after,
    )


def _retry_after(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    return None


def unreachable(config: Config, what: str, reason: str) -> NullspaceError:
    return error_from_code(
        "unavailable",
        f"cannot reach the Nullspace API at {config.api_url} ({reason})",
        details={"url": what, "reason": reason},
    )


def timed_out(what: str, seconds: Optional[float]) -> NullspaceError:
    return error_from_code(
        "timeout",
        f"{what} timed out after {seconds} s (request_timeout)",
        details={"url": what, "timeout": seconds},
    )


# ---- paths and bodies ----------------------------------------------------------------------------


def seg(value: Any) -> str:
    """One path segment, percent-encoded."""
    return quote(str(value), safe="")


def machine_path(machine_id: str) -> str:
    return f"/v1/machines/{seg(machine_id)}"


def _drop_none(value: Any) -> Any:
    """JSON bodies leave out fields given as None, so the server applies its defaults."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else int(round(seconds * 1000))


# ---- process streams -----------------------------------------------------------------------------

#: Frame kinds of a process stream: 0 a JSON event, 1 stdout (terminal output; stdin from the
#: client), 2 stderr (docs/commands.md, "Stream format").
FRAME_EVENT, FRAME_STDOUT, FRAME_STDERR = 0, 1, 2
#: Output kept for a result: up to 16 MiB per stream, like a foreground run on the server.
MAX_OUTPUT_BYTES = 16 * 1024 * 1024


class FrameDecoder:
    """Splits an HTTP frame stream (``[kind: u8][length: u32 BE][payload]``) back into frames,
    whatever the chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def push(self, chunk: bytes) -> List[Tuple[int, bytes]]:
        self._buf += chunk
        frames: List[Tuple[int, bytes]] = []
        at = 0
        buf = self._buf
        while len(buf) - at >= 5:
            (length,) = struct.unpack_from(">I", buf, at + 1)
            if len(buf) - at - 5 < length:
                break
            frames.append((buf[at], bytes(buf[at + 5 : at + 5 + length])))
            at += 5 + length
        if at:
            del buf[:at]
        return frames


class CappedBytes:
    def __init__(self, cap: int = MAX_OUTPUT_BYTES) -> None:
        self._parts: List[bytes] = []
        self._size = 0
        self._cap = cap
        self.truncated = False

    def push(self, chunk: bytes) -> None:
        room = self._cap - self._size
        if room <= 0:
            self.truncated = True
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self._parts.append(chunk)
        self._size += len(chunk)

    def bytes(self) -> bytes:
        return b"".join(self._parts)

    def text(self) -> str:
        return self.bytes().decode("utf-8", "replace")


@dataclass
class OutputCallbacks:
    on_stdout: Optional[Callable[[str], Any]] = None
    on_stderr: Optional[Callable[[str], Any]] = None
    #: Exact bytes and the stream's name, stdout and stderr in the order written.
    on_data: Optional[Callable[[bytes, str], Any]] = None


class StreamState:
    """What one client knows of a process's stream: the offset read up to (the resume point of a
    re-attach), the output kept (bounded), and the exit once seen."""

    def __init__(self, callbacks: Optional[OutputCallbacks] = None) -> None:
        self.callbacks = callbacks or OutputCallbacks()
        self.pid: Optional[int] = None
        self.tag: Optional[str] = None
        self.offset = 0
        self.exit: Optional[Dict[str, Any]] = None
        self.dropped_bytes = 0
        self.out = CappedBytes()
        self.err = CappedBytes()
        self._dec = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }

    def take(self, kind: int, payload: bytes) -> Tuple[Optional[Dict[str, Any]], List[Callback], Optional[Any]]:
        """Takes one frame. Returns the event (if it was one), the callbacks to run, and the output
        chunk ``(stream, bytes, text)`` (if it was output)."""
        if kind in (FRAME_STDOUT, FRAME_STDERR):
            name = "stdout" if kind == FRAME_STDOUT else "stderr"
            self.offset += len(payload)
            (self.out if name == "stdout" else self.err).push(payload)
            text = self._dec[name].decode(payload)
            calls: List[Callback] = []
            if self.callbacks.on_data is not None:
                calls.append(Callback(self.callbacks.on_data, (payload, name)))
            cb = self.callbacks.on_stdout if name == "stdout" else self.callbacks.on_stderr
            if cb is not None and text:
                calls.append(Callback(cb, (text,)))
            return None, calls, (name, payload, text)
        if kind != FRAME_EVENT:
            return None, [], None
        ev = json.loads(payload.decode("utf-8"))
        t = ev.get("type")
        if t == "start":
            self.pid = ev.get("pid")
            self.tag = ev.get("tag")
            # A re-attach resumes where this client was, or later when that output was dropped.
            self.offset = max(self.offset, int(ev.get("offset") or 0))
        elif t == "gap":
            self.dropped_bytes += int(ev["to"]) - int(ev["from"])
            self.offset = int(ev["to"])
        elif t == "exit":
            self.exit = ev
        return ev, [], None

    def result(self, pid: int) -> Dict[str, Any]:
        e = self.exit or {}
        dropped = self.dropped_bytes > 0
        return {
            "pid": pid,
            "exit_code": e.get("exit_code"),
            "signal": e.get("signal"),
            "stdout": self.out.text(),
            "stderr": self.err.text(),
            "timed_out": bool(e.get("timed_out")),
            "stdout_truncated": self.out.truncated or dropped,
            "stderr_truncated": self.err.truncated or dropped,
            "duration_ms": e.get("duration_ms"),
        }


# ---- preview redaction ---------------------------------------------------------------------------

_TOKEN_IN_TEXT = re.compile(r"nspv_([A-Za-z0-9_-]{0,4})[A-Za-z0-9_-]*")


def redact_preview_token(token: str) -> str:
    """A preview token (or any text holding one) with the secret part replaced: ``nspv_abcd***``.

    Example::

        redact_preview_token("nspv_abcdefghijkl")  # "nspv_abcd***"
    """
    return _TOKEN_IN_TEXT.sub(lambda m: f"nspv_{m.group(1)}***", token)


def redact_preview_url(url: str) -> str:
    """A preview URL with its token replaced by ``nspv_abcd***``: enough to recognise it, not to
    use it. Use it before a preview URL goes into a log.

    Example::

        redact_preview_url("http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcdefghijkl")
        # "http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcd***"
    """
    return redact_preview_token(url)
