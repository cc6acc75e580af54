"""HTTP/1.1 without I/O: a request serializer and an incremental response parser.

The async driver speaks HTTP over asyncio streams with it, and both drivers read a WebSocket
handshake's answer with it (the sync driver's plain requests go through ``http.client``).
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Union

Event = Union[Tuple[str, int, Dict[str, str]], Tuple[str, bytes], Tuple[str]]


def serialize_head(method: str, target: str, host: str, headers: Dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a ``transfer-encoding: chunked`` body (``b""`` is the last one)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class ProtocolError(Exception):
    pass


class ResponseParser:
    """Feed bytes, get events: ``("head", status, headers)``, ``("data", bytes)``, ``("end",)``.

    Header names are lower-cased. The body is read by ``content-length``, ``chunked`` or until the
    connection closes (call :meth:`eof`). After a ``101`` head, parsing stops: the bytes that
    followed it are in :attr:`rest` (a WebSocket's first frames).
    """

    def __init__(self, method: str = "GET") -> None:
        self._method = method
        self._buf = bytearray()
        self._state = "head"
        self._left = 0
        self.status = 0
        self.headers: Dict[str, str] = {}
        self.keep_alive = True
        self.rest = b""

    @property
    def done(self) -> bool:
        return self._state in ("done", "upgraded")

    def feed(self, data: bytes) -> List[Event]:
        self._buf += data
        out: List[Event] = []
        while True:
            st = self._state
            if st == "head":
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > 65536:
                        raise ProtocolError("response head larger than 64 KiB")
                    return out
                head = bytes(self._buf[:end]).decode("latin-1")
                del self._buf[: end + 4]
                self._parse_head(head)
                if 100 <= self.status < 200 and self.status != 101:
                    continue  # an interim answer (100 Continue): the real head follows
                out.append(("head", self.status, self.headers))
                if self.status == 101:
                    self._state = "upgraded"
                    self.rest = bytes(self._buf)
                    self._buf.clear()
                    return out
                self._start_body()
                if self._state == "done":
                    out.append(("end",))
                    return out
            elif st == "length":
                if not self._buf:
                    return out
                take = min(self._left, len(self._buf))
                out.append(("data", bytes(self._buf[:take])))
                del self._buf[:take]
                self._left -= take
                if self._left == 0:
                    self._state = "done"
                    out.append(("end",))
                    return out
            elif st == "chunk-size":
                end = self._buf.find(b"\r\n")
                if end < 0:
                    return out
                size_text = bytes(self._buf[:end]).split(b";", 1)[0].strip()
                del self._buf[: end + 2]
                try:
                    self._left = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text!r}") from None
                self._state = "chunk-data" if self._left else "trailer"
            elif st == "chunk-data":
                if not self._buf:
                    return out
                take = min(self._left, len(self._buf))
                out.append(("data", bytes(self._buf[:take])))
                del self._buf[:take]
                self._left -= take
                if self._left == 0:
                    self._state = "chunk-end"
            elif st == "chunk-end":
                if len(self._buf) < 2:
                    return out
                del self._buf[:2]
                self._state = "chunk-size"
            elif st == "trailer":
                end = self._buf.find(b"\r\n")
                if end < 0:
                    return out
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                if line == b"":
                    self._state = "done"
                    out.append(("end",))
                    return out
            elif st == "until-close":
                if self._buf:
                    out.append(("data", bytes(self._buf)))
                    self._buf.clear()
                return out
            else:
                return out

    def eof(self) -> List[Event]:
        """The connection closed: the end of an until-close body, else a cut response."""
        if self._state == "until-close":
            self._state = "done"
            return [("end",)]
        if self._state != "done":
            raise ProtocolError("connection closed before the response ended")
        return []

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ProtocolError(f"not an HTTP response: {lines[0]!r}")
        self.status = int(parts[1])
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.headers = headers
        conn = headers.get("connection", "").lower()
        self.keep_alive = parts[0] == "HTTP/1.1" and "close" not in conn

    def _start_body(self) -> None:
        h = self.headers
        if self._method == "HEAD" or self.status in (204, 304):
            self._state = "done"
        elif "chunked" in h.get("transfer-encoding", "").lower():
            self._state = "chunk-size"
        elif "content-length" in h:
            self._left = int(h["content-length"])
            self._state = "length" if self._left else "done"
        else:
            self._state = "until-close"
            self.keep_alive = False
