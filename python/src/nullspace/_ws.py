"""A WebSocket client (RFC 6455) without I/O, shared by the sync and async drivers: the
handshake, masked frames, fragmentation, ping → pong and the closing handshake.

The driver writes what :meth:`WsConnection.data_to_send` returns and feeds what it reads to
:meth:`WsConnection.receive`, which returns whole messages.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from typing import Dict, List, Optional, Tuple

from ._http import serialize_head

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Largest message accepted: the server's limit for process streams is 16 MiB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class WsProtocolError(Exception):
    pass


def handshake_request(target: str, host: str, headers: Dict[str, str]) -> Tuple[bytes, str]:
    """The upgrade request's bytes and the key its answer must confirm."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = {
        **headers,
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": key,
        "sec-websocket-version": "13",
    }
    return serialize_head("GET", target, host, head), key


def accept_ok(key: str, headers: Dict[str, str]) -> bool:
    want = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
    return headers.get("sec-websocket-accept") == want and headers.get("upgrade", "").lower() == "websocket"


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame: always masked (RFC 6455 §5.3)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += struct.pack(">H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack(">Q", n)
    mask = os.urandom(4)
    head += mask
    return bytes(head) + _mask(payload, mask)


def _mask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    # XOR with the repeated 4-byte key, as one big integer operation (fast in CPython).
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WsConnection:
    """The state of one client connection after the handshake."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._out: List[bytes] = []
        self._frag_op: Optional[int] = None
        self._frag: List[bytes] = []
        self._frag_size = 0
        self.close_sent = False
        self.close_received = False
        self.close_code: Optional[int] = None
        self.close_reason = ""

    @property
    def open(self) -> bool:
        return not self.close_sent and not self.close_received

    def send(self, opcode: int, payload: bytes) -> None:
        if self.close_sent:
            raise WsProtocolError("the WebSocket is closing")
        self._out.append(encode_frame(opcode, payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.close_sent:
            self.close_sent = True
            self._out.append(encode_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode()))

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def receive(self, data: bytes) -> List[Tuple[int, bytes]]:
        """Takes bytes from the server; returns whole data messages ``(opcode, payload)``. Control
        frames are handled here (a ping queues its pong; a close queues the reply and sets
        ``close_code``)."""
        self._buf += data
        messages: List[Tuple[int, bytes]] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return messages
            fin, opcode, payload = frame
            if opcode == OP_PING:
                if not self.close_sent:
                    self._out.append(encode_frame(OP_PONG, payload))
            elif opcode == OP_PONG:
                pass
            elif opcode == OP_CLOSE:
                self.close_received = True
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                self.close(self.close_code if self.close_code not in (1005, 1006) else 1000)
                return messages
            elif opcode == OP_CONT:
                if self._frag_op is None:
                    raise WsProtocolError("continuation frame without a first frame")
                self._add_fragment(payload)
                if fin:
                    messages.append((self._frag_op, b"".join(self._frag)))
                    self._frag_op, self._frag, self._frag_size = None, [], 0
            elif opcode in (OP_TEXT, OP_BINARY):
                if fin:
                    messages.append((opcode, payload))
                else:
                    self._frag_op = opcode
                    self._frag, self._frag_size = [], 0
                    self._add_fragment(payload)
            else:
                raise WsProtocolError(f"unknown opcode {opcode}")

    def _add_fragment(self, payload: bytes) -> None:
        self._frag_size += len(payload)
        if self._frag_size > MAX_MESSAGE_BYTES:
            raise WsProtocolError("message larger than 64 MiB")
        self._frag.append(payload)

    def _next_frame(self) -> Optional[Tuple[bool, int, bytes]]:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        at = 2
        if n == 126:
            if len(buf) < 4:
                return None
            (n,) = struct.unpack_from(">H", buf, 2)
            at = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            (n,) = struct.unpack_from(">Q", buf, 2)
            at = 10
        if n > MAX_MESSAGE_BYTES:
            raise WsProtocolError("frame larger than 64 MiB")
        mask = None
        if b1 & 0x80:  # servers do not mask, but read it right if one does
            if len(buf) < at + 4:
                return None
            mask = bytes(buf[at : at + 4])
            at += 4
        if len(buf) < at + n:
            return None
        payload = bytes(buf[at : at + n])
        del buf[: at + n]
        if mask is not None:
            payload = _mask(payload, mask)
        return bool(b0 & 0x80), b0 & 0x0F, payload
