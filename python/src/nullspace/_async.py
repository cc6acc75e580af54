"""The asyncio driver: runs the same operation generators as the sync driver, over asyncio streams
(HTTP/1.1 with keep-alive connections reused per event loop, and WebSockets). Standard library
only; no protocol knowledge lives here."""

from __future__ import annotations

import asyncio
import inspect
import ssl
import weakref
from collections import deque
from typing import Any, AsyncIterator, Deque, Dict, Generator, List, Optional, Tuple

from . import _protocol as p
from ._http import ProtocolError, ResponseParser, chunk, serialize_head
from ._ws import WsConnection, WsProtocolError, accept_ok, handshake_request

Op = Generator[Any, Any, Any]


async def _within(aw: Any, timeout: Optional[float]) -> Any:
    if timeout is None:
        return await aw
    return await asyncio.wait_for(aw, timeout)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # the transport may be gone already
            pass


class _Stream:
    """An open streamed response: body bytes as they come."""

    def __init__(self, client: "AsyncClient", conn: _Conn, parser: ResponseParser, pending: List[bytes], ended: bool):
        self.client, self.conn, self.parser = client, conn, parser
        self.pending: Deque[bytes] = deque(pending)
        self.ended = ended
        self.closed = False
        if ended:
            self._release()

    async def read(self) -> bytes:
        while not self.pending:
            if self.ended or self.closed:
                return b""
            try:
                data = await _within(self.conn.reader.read(65536), p.STREAM_IDLE_TIMEOUT)
            except (asyncio.TimeoutError, OSError) as err:
                self.close()
                raise p.unreachable(self.client.config, "stream", f"stream cut: {type(err).__name__}") from err
            try:
                events = self.parser.feed(data) if data else self.parser.eof()
            except ProtocolError as err:
                self.close()
                raise p.unreachable(self.client.config, "stream", f"stream cut: {err}") from err
            for ev in events:
                if ev[0] == "data":
                    self.pending.append(ev[1])  # type: ignore[arg-type]
                elif ev[0] == "end":
                    self.ended = True
                    self._release()
        return self.pending.popleft()

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            if self.parser.keep_alive:
                self.client._checkin(self.conn)
            else:
                self.conn.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


class _Ws:
    def __init__(self, conn: _Conn, ws: WsConnection, rest: bytes) -> None:
        self.conn, self.ws = conn, ws
        self.pending: Deque[Tuple[int, bytes]] = deque()
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason = ""
        if rest:
            self._take(rest)

    def _take(self, data: bytes) -> None:
        self.pending.extend(self.ws.receive(data))
        out = self.ws.data_to_send()
        if out and not self.closed:
            self.conn.writer.write(out)
        if self.ws.close_received:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._shut()

    async def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, bytes]]:
        while not self.pending:
            if self.closed:
                return None
            try:
                data = await _within(self.conn.reader.read(262144), timeout)
            except (asyncio.TimeoutError, OSError):
                data = b""
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

    async def send(self, opcode: int, payload: bytes) -> bool:
        if self.closed or not self.ws.open:
            return False
        self.ws.send(opcode, payload)
        try:
            self.conn.writer.write(self.ws.data_to_send())
            await self.conn.writer.drain()
        except OSError:
            self._shut()
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.ws.close(1000)
            self.conn.writer.write(self.ws.data_to_send())
        except (OSError, WsProtocolError, RuntimeError):
            pass
        self._shut()

    def _shut(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


class AsyncClient:
    """One API URL + key in one event loop: a pool of keep-alive connections shared by every
    handle made with the same settings; concurrent calls each take a connection of their own."""

    def __init__(self, config: p.Config) -> None:
        self.config = config
        self._idle: List[_Conn] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ssl = ssl.create_default_context() if config.scheme == "https" else None

    async def run(self, gen: Op) -> Any:
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
                    value = await self._perform(eff, opened)
                except Exception as err:
                    exc = err
        finally:
            gen.close()
            await self._finish(opened)

    async def iterate(self, gen: Op) -> AsyncIterator[Any]:
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
                    value = await self._perform(eff, opened)
                except Exception as err:
                    exc = err
        finally:
            gen.close()
            await self._finish(opened)

    async def _finish(self, opened: List[Any]) -> None:
        """Closes what the operation left open, then sends its deferred requests (best effort)."""
        for handle in opened:
            if not isinstance(handle, p.Defer):
                handle.close()
        for handle in opened:
            if isinstance(handle, p.Defer):
                try:
                    await self._request(handle.request, stream=False)
                except Exception:  # cleanup after the fact: nothing to report it to
                    pass

    async def _perform(self, eff: Any, opened: List[Any]) -> Any:
        if isinstance(eff, p.Call):
            return await self._request(eff.request, stream=False)
        if isinstance(eff, p.Read):
            return await eff.stream.read()
        if isinstance(eff, p.WsRecv):
            return await eff.ws.recv(eff.timeout)
        if isinstance(eff, p.WsSend):
            return await eff.ws.send(eff.opcode, eff.payload)
        if isinstance(eff, p.Open):
            out = await self._request(eff.request, stream=True)
            if isinstance(out, _Stream):
                opened.append(out)
            return out
        if isinstance(eff, p.WsOpen):
            out = await self._ws_open(eff)
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
            result = eff.fn(*eff.args)
            if inspect.isawaitable(result):
                result = await result
            return result
        if isinstance(eff, p.Sleep):
            await asyncio.sleep(eff.seconds)
            return None
        raise TypeError(f"unknown effect {eff!r}")

    # ---- HTTP ----

    async def _connect(self, timeout: Optional[float]) -> _Conn:
        c = self.config
        reader, writer = await _within(
            asyncio.open_connection(c.host, c.port, ssl=self._ssl, limit=1 << 20), timeout
        )
        return _Conn(reader, writer)

    def _checkin(self, conn: _Conn) -> None:
        if len(self._idle) < 64 and not conn.writer.is_closing():
            self._idle.append(conn)
        else:
            conn.close()

    async def _request(self, req: p.Request, stream: bool) -> Any:
        c = self.config
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Pooled connections belong to the loop that opened them.
            self._idle, self._loop = [], loop
        headers, body = req.payload()
        headers.update(c.headers())
        what = f"{req.method} {c.api_url}{req.path}"
        timeout = c.timeout_of(req.timeout)
        chunks: Optional[Any] = None
        if isinstance(body, (bytes, bytearray)):
            headers["content-length"] = str(len(body))
        elif body is not None:
            headers["transfer-encoding"] = "chunked"
            chunks = body
        head = serialize_head(req.method, c.target(req.path, req.query), f"{c.host}:{c.port}", headers)
        for attempt in (0, 1):
            reused = bool(self._idle)
            try:
                conn = self._idle.pop() if reused else await self._connect(timeout)
            except asyncio.TimeoutError as err:
                raise p.timed_out(what, timeout) from err
            except OSError as err:
                raise p.unreachable(c, what, _reason(err)) from err
            parser = ResponseParser(req.method)
            try:
                if chunks is None:
                    conn.writer.write(head + body if isinstance(body, (bytes, bytearray)) else head)
                else:
                    conn.writer.write(head)
                    for part in chunks:
                        if part:
                            conn.writer.write(chunk(bytes(part)))
                            await conn.writer.drain()
                    conn.writer.write(chunk(b""))
                await conn.writer.drain()
                got_head = False
                data_parts: List[bytes] = []
                ended = False
                while not got_head or (not stream and not ended) or (stream and parser.status >= 300 and not ended):
                    data = await _within(conn.reader.read(65536), timeout)
                    if not data and not parser.status:
                        raise ConnectionResetError("closed before the response")
                    for ev in parser.feed(data) if data else parser.eof():
                        if ev[0] == "head":
                            got_head = True
                        elif ev[0] == "data":
                            data_parts.append(ev[1])  # type: ignore[arg-type]
                        elif ev[0] == "end":
                            ended = True
                    if stream and got_head and 200 <= parser.status < 300:
                        break
            except asyncio.TimeoutError as err:
                conn.close()
                raise p.timed_out(what, timeout) from err
            except (ConnectionResetError, BrokenPipeError, ProtocolError) as err:
                conn.close()
                if reused and attempt == 0 and chunks is None and not parser.status:
                    continue  # a kept-alive connection the server closed meanwhile
                raise p.unreachable(c, what, type(err).__name__) from err
            except OSError as err:
                conn.close()
                raise p.unreachable(c, what, _reason(err)) from err
            if stream and 200 <= parser.status < 300:
                return _Stream(self, conn, parser, data_parts, ended)
            if parser.keep_alive:
                self._checkin(conn)
            else:
                conn.close()
            return p.Response(parser.status, parser.headers, b"".join(data_parts), what)
        raise AssertionError("unreachable")

    # ---- WebSocket ----

    async def _ws_open(self, eff: p.WsOpen) -> Any:
        c = self.config
        what = f"GET {c.ws_url(eff.path)}"
        timeout = c.timeout_of(None)
        try:
            conn = await self._connect(timeout)
        except asyncio.TimeoutError as err:
            raise p.timed_out(what, timeout) from err
        except OSError as err:
            raise p.unreachable(c, what, _reason(err)) from err
        data, key = handshake_request(c.target(eff.path, eff.query), f"{c.host}:{c.port}", c.headers())
        parser = ResponseParser("GET")
        body = bytearray()
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            done = False
            while not done:
                got = await _within(conn.reader.read(65536), timeout)
                for ev in parser.feed(got) if got else parser.eof():
                    if ev[0] == "data":
                        body += ev[1]  # type: ignore[misc]
                    elif ev[0] == "end":
                        done = True
                if parser.status == 101 or not got:
                    done = True
        except asyncio.TimeoutError as err:
            conn.close()
            raise p.timed_out(what, timeout) from err
        except (OSError, ProtocolError) as err:
            conn.close()
            raise p.unreachable(c, what, _reason(err)) from err
        if parser.status != 101:
            conn.close()
            return p.Response(parser.status, parser.headers, bytes(body), what)
        if not accept_ok(key, parser.headers):
            conn.close()
            raise p.unreachable(c, what, "bad WebSocket handshake answer")
        return _Ws(conn, WsConnection(), parser.rest)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        import errno as _errno

        return _errno.errorcode.get(err.errno, str(err))
    return str(err) or type(err).__name__


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dict[p.Config, AsyncClient]]" = (
    weakref.WeakKeyDictionary()
)


def client_for(api_url: Optional[str], api_key: Optional[str], request_timeout: Optional[float]) -> AsyncClient:
    """The shared client of these settings in the running event loop (connections belong to a loop)."""
    config = p.Config.resolve(api_url, api_key, request_timeout)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return AsyncClient(config)
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(config)
    if client is None:
        client = per_loop[config] = AsyncClient(config)
    return client
