"""The synchronous driver: runs operation generators with ``http.client`` (keep-alive connections
reused from a small pool) and plain sockets for WebSockets. No protocol knowledge lives here."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections import deque
from typing import Any, Deque, Dict, Generator, Iterator, List, Optional, Tuple

from . import _protocol as p
from ._http import ProtocolError, ResponseParser
from ._ws import WsConnection, WsProtocolError, accept_ok, handshake_request

Op = Generator[Any, Any, Any]

_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


class _Stream:
    """An open streamed response: read with ``read1`` until its end."""

    def __init__(self, client: "SyncClient", conn: http.client.HTTPConnection, resp: http.client.HTTPResponse):
        self.client, self.conn, self.resp = client, conn, resp
        self.finished = False
        self.closed = False

    def read(self) -> bytes:
        if self.finished or self.closed:
            return b""
        try:
            data = self.resp.read1(65536)
        except (OSError, http.client.HTTPException) as err:
            self.close()
            raise p.unreachable(self.client.config, "stream", f"stream cut: {err}") from err
        if not data:
            self.finished = True
            self.closed = True
            # read1 never marks a response with a content-length as complete; read() does, and
            # only a complete response leaves the connection reusable.
            try:
                self.resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                return data
            if self.resp.will_close or not self.resp.isclosed():
                self.conn.close()
            else:
                self.client._checkin(self.conn)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


class _Ws:
    """An open WebSocket: a socket, the protocol state and messages read ahead."""

    def __init__(self, sock: socket.socket, conn: WsConnection, rest: bytes):
        self.sock, self.conn = sock, conn
        self.pending: Deque[Tuple[int, bytes]] = deque()
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason = ""
        if rest:
            self._take(rest)

    def _take(self, data: bytes) -> None:
        self.pending.extend(self.conn.receive(data))
        out = self.conn.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                pass
        if self.conn.close_received:
            self.close_code = self.conn.close_code
            self.close_reason = self.conn.close_reason
            self._shut()

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, bytes]]:
        while not self.pending:
            if self.closed:
                return None
            try:
                self.sock.settimeout(timeout)
                data = self.sock.recv(262144)
            except (socket.timeout, OSError):
                self.close_code = self.close_code or 1006
                self._shut()
                return None
            if not data:
                self.close_code = self.close_code or 1006
                self._shut()
                return None
            try:
                self._take(data)
            except WsProtocolError:
                self.close_code = 1002
                self._shut()
        return self.pending.popleft()

    def send(self, opcode: int, payload: bytes) -> bool:
        if self.closed or not self.conn.open:
            return False
        self.conn.send(opcode, payload)
        try:
            self.sock.settimeout(p.STREAM_IDLE_TIMEOUT)
            self.sock.sendall(self.conn.data_to_send())
        except OSError:
            self._shut()
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.conn.close(1000)
            self.sock.settimeout(1.0)
            self.sock.sendall(self.conn.data_to_send())
        except (OSError, WsProtocolError):
            pass
        self._shut()

    def _shut(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class SyncClient:
    """One API URL + key: a pool of keep-alive connections, shared by every handle made with the
    same settings (thread-safe: each call takes a connection of its own)."""

    def __init__(self, config: p.Config) -> None:
        self.config = config
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context() if config.scheme == "https" else None

    # ---- running operations ----

    def run(self, gen: Op) -> Any:
        opened: List[Any] = []
        try:
            value: Any = None
            exc: Optional[BaseException] = None
            while True:
                try:
                    eff = gen.throw(exc) if exc is not None else gen.send(value)
                except StopIteration as stop:
                    return stop.value
                value, exc = None, None
                try:
                    value = self._perform(eff, opened)
                except Exception as err:  # handed to the operation, which decides
                    exc = err
        finally:
            gen.close()
            self._finish(opened)

    def iterate(self, gen: Op) -> Iterator[Any]:
        opened: List[Any] = []
        try:
            value: Any = None
            exc: Optional[BaseException] = None
            while True:
                try:
                    eff = gen.throw(exc) if exc is not None else gen.send(value)
                except StopIteration:
                    return
                value, exc = None, None
                if isinstance(eff, p.Emit):
                    yield eff.item
                    continue
                try:
                    value = self._perform(eff, opened)
                except Exception as err:
                    exc = err
        finally:
            gen.close()
            self._finish(opened)

    def _finish(self, opened: List[Any]) -> None:
        """Closes what the operation left open, then sends its deferred requests (best effort)."""
        for handle in opened:
            if not isinstance(handle, p.Defer):
                handle.close()
        for handle in opened:
            if isinstance(handle, p.Defer):
                try:
                    self._request(handle.request, stream=False)
                except Exception:  # cleanup after the fact: nothing to report it to
                    pass

    def _perform(self, eff: Any, opened: List[Any]) -> Any:
        if isinstance(eff, p.Call):
            return self._request(eff.request, stream=False)
        if isinstance(eff, p.Read):
            return eff.stream.read()
        if isinstance(eff, p.WsRecv):
            return eff.ws.recv(eff.timeout)
        if isinstance(eff, p.WsSend):
            return eff.ws.send(eff.opcode, eff.payload)
        if isinstance(eff, p.Open):
            out = self._request(eff.request, stream=True)
            if isinstance(out, _Stream):
                opened.append(out)
            return out
        if isinstance(eff, p.WsOpen):
            out = self._ws_open(eff)
            if isinstance(out, _Ws):
                opened.append(out)
            return out
        if isinstance(eff, p.Close):
            eff.handle.close()
            return None
        if isinstance(eff, p.Defer):
            opened.append(eff)
            return None
        if isinstance(eff, p.Callback):
            return eff.fn(*eff.args)
        if isinstance(eff, p.Sleep):
            threading.Event().wait(eff.seconds)
            return None
        raise TypeError(f"unknown effect {eff!r}")

    # ---- HTTP ----

    def _new_conn(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        c = self.config
        if c.scheme == "https":
            return http.client.HTTPSConnection(c.host, c.port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(c.host, c.port, timeout=timeout)

    def _checkout(self, timeout: Optional[float]) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return self._new_conn(timeout), False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < 32:
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, req: p.Request, stream: bool) -> Any:
        c = self.config
        headers, body = req.payload()
        headers.update(c.headers())
        target = c.target(req.path, req.query)
        what = f"{req.method} {c.api_url}{req.path}"
        timeout = c.timeout_of(req.timeout)
        for attempt in (0, 1):
            conn, reused = self._checkout(timeout)
            try:
                conn.request(req.method, target, body=body, headers=headers)
                resp = conn.getresponse()
            except _RETRYABLE as err:
                conn.close()
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                if reused and attempt == 0 and (body is None or isinstance(body, bytes)):
                    continue
                raise p.unreachable(c, what, type(err).__name__) from err
            except socket.timeout as err:
                conn.close()
                raise p.timed_out(what, timeout) from err
            except OSError as err:
                conn.close()
                raise p.unreachable(c, what, _reason(err)) from err
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if stream and 200 <= resp.status < 300:
                if conn.sock is not None:
                    conn.sock.settimeout(p.STREAM_IDLE_TIMEOUT)
                return _Stream(self, conn, resp)
            try:
                data = resp.read()
            except socket.timeout as err:
                conn.close()
                raise p.timed_out(what, timeout) from err
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise p.unreachable(c, what, _reason(err)) from err
            if resp.will_close:
                conn.close()
            else:
                self._checkin(conn)
            return p.Response(resp.status, hdrs, data, what)
        raise AssertionError("unreachable")

    # ---- WebSocket ----

    def _ws_open(self, eff: p.WsOpen) -> Any:
        c = self.config
        target = c.target(eff.path, eff.query)
        what = f"GET {c.ws_url(eff.path)}"
        timeout = c.timeout_of(None)
        try:
            sock = socket.create_connection((c.host, c.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=c.host)
        except socket.timeout as err:
            raise p.timed_out(what, timeout) from err
        except OSError as err:
            raise p.unreachable(c, what, _reason(err)) from err
        data, key = handshake_request(target, f"{c.host}:{c.port}", c.headers())
        parser = ResponseParser("GET")
        body = bytearray()
        try:
            sock.sendall(data)
            done = False
            while not done:
                chunk = sock.recv(65536)
                events = parser.feed(chunk) if chunk else parser.eof()
                for ev in events:
                    if ev[0] == "data":
                        body += ev[1]  # type: ignore[misc]
                    elif ev[0] == "end":
                        done = True
                if parser.status == 101 or not chunk:
                    done = True
        except (OSError, ProtocolError) as err:
            sock.close()
            if isinstance(err, socket.timeout):
                raise p.timed_out(what, timeout) from err
            raise p.unreachable(c, what, _reason(err)) from err
        if parser.status != 101:
            sock.close()
            return p.Response(parser.status, parser.headers, bytes(body), what)
        if not accept_ok(key, parser.headers):
            sock.close()
            raise p.unreachable(c, what, "bad WebSocket handshake answer")
        return _Ws(sock, WsConnection(), parser.rest)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        import errno as _errno

        return _errno.errorcode.get(err.errno, str(err))
    return str(err) or type(err).__name__


_clients: Dict[p.Config, SyncClient] = {}
_clients_lock = threading.Lock()


def client_for(api_url: Optional[str], api_key: Optional[str], request_timeout: Optional[float]) -> SyncClient:
    """The shared client of these settings (so handles reuse each other's connections)."""
    config = p.Config.resolve(api_url, api_key, request_timeout)
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = SyncClient(config)
        return client
