"""The protocol without any network: error mapping, models, process frames, the HTTP parser and
the WebSocket framing (the sans-I/O core both drivers share)."""

from __future__ import annotations

import json
import struct

import pytest

from nullspace import _protocol as p
from nullspace import errors
from nullspace._http import ResponseParser
from nullspace._ws import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WsConnection, _mask, encode_frame
from nullspace.models import MachineInfo


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def test_error_bodies_map_to_typed_errors() -> None:
    body = {"error": {"code": "machine_not_found", "message": "no", "details": {"id": "x"}, "request_id": "req_1"}}
    err = p.error_from_response(p.Response(404, {"retry-after": "3"}, json.dumps(body).encode(), "GET /x"))
    assert isinstance(err, errors.MachineNotFoundError) and isinstance(err, errors.NotFoundError)
    assert (err.code, err.status, err.request_id, err.details, err.retry_after) == ("machine_not_found", 404, "req_1", {"id": "x"}, 3.0)
    # A body that is not ours (a proxy in between): mapped by status.
    proxy = p.error_from_response(p.Response(502, {"x-request-id": "r"}, b"<html>", "GET /x"))
    assert isinstance(proxy, errors.UnavailableError) and proxy.code == "unavailable" and proxy.request_id == "r"
    # A code from a newer server: mapped by status, the code kept.
    newer = p.error_from_response(p.Response(409, {}, json.dumps({"error": {"code": "brand_new", "message": "m"}}).encode()))
    assert isinstance(newer, errors.ConflictError) and newer.details == {"server_code": "brand_new"}


def test_models_keep_unknown_fields_and_parse_times() -> None:
    info = MachineInfo.from_dict(
        {"id": "mch_a", "status": "running", "expires_at": "2026-01-02T03:04:05.678Z", "new_field": [1],
         "warm_pool_checkout": {"pool_id": "twp_a", "hit": True, "later": 1}, "volumes": [{"id": "vat_a"}]}
    )
    assert info.expires_at.year == 2026 and info.expires_at.utcoffset().total_seconds() == 0
    assert info.new_field == [1] and info.warm_pool_checkout.hit is True and info.warm_pool_checkout.later == 1
    assert info.volumes[0].id == "vat_a"
    wire = info.to_dict()
    assert wire["expires_at"] == "2026-01-02T03:04:05.678Z" and wire["new_field"] == [1]
    with pytest.raises(AttributeError):
        _ = info.not_there


def test_frames_reassemble_whatever_the_chunking() -> None:
    frames = [(0, json.dumps({"type": "start", "pid": 7, "tag": None, "offset": 0}).encode()), (1, "héllo".encode()), (2, b"err")]
    raw = b"".join(bytes([k]) + struct.pack(">I", len(pl)) + pl for k, pl in frames)
    dec = p.FrameDecoder()
    got = []
    for i in range(len(raw)):
        got += dec.push(raw[i : i + 1])
    assert got == frames
    state = p.StreamState(p.OutputCallbacks(on_stdout=lambda s: None))
    texts = []
    for kind, payload in got:
        ev, calls, chunk = state.take(kind, payload)
        if chunk:
            texts.append(chunk[2])
    assert state.pid == 7 and state.offset == len("héllo".encode()) + 3
    # A UTF-8 character split across two chunks is delivered whole.
    split = p.StreamState()
    a, b = "é".encode()[:1], "é".encode()[1:]
    assert split.take(1, a)[2][2] == "" and split.take(1, b)[2][2] == "é"


def test_http_parser_chunked_length_and_upgrade() -> None:
    parser = ResponseParser("POST")
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    events = []
    for i in range(len(raw)):
        events += parser.feed(raw[i : i + 1])
    assert events[0] == ("head", 200, {"transfer-encoding": "chunked", "x-a": "1"})
    assert b"".join(e[1] for e in events if e[0] == "data") == b"abc" and events[-1] == ("end",)
    assert parser.keep_alive
    fixed = ResponseParser()
    assert fixed.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")[-1] == ("end",)
    assert not fixed.keep_alive
    up = ResponseParser()
    up.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")
    assert up.status == 101 and up.rest == b"\x81\x02hi"


def test_websocket_masking_fragments_ping_and_close() -> None:
    frame = encode_frame(OP_BINARY, b"\x01payload")
    assert frame[1] & 0x80, "client frames are masked"
    mask = frame[2:6]
    assert _mask(frame[6:], mask) == b"\x01payload"
    big = encode_frame(OP_BINARY, b"x" * 70000)
    assert big[1] & 0x7F == 127
    ws = WsConnection()
    msgs = ws.receive(server_frame(OP_TEXT, b"hel", fin=False) + server_frame(OP_PING, b"p") + server_frame(0, b"lo"))
    assert msgs == [(OP_TEXT, b"hello")]
    pong = ws.data_to_send()
    assert pong[0] & 0x0F == OP_PONG and _mask(pong[6:], pong[2:6]) == b"p"
    assert ws.receive(server_frame(OP_CLOSE, struct.pack(">H", 1012) + b"checkpoint")) == []
    assert (ws.close_code, ws.close_reason, ws.open) == (1012, "checkpoint", False)
    reply = ws.data_to_send()
    assert reply[0] & 0x0F == OP_CLOSE


def test_config_and_redaction() -> None:
    c = p.Config.resolve("http://127.0.0.1:7070/", "k", 5)
    assert (c.host, c.port, c.request_timeout, c.headers()["authorization"]) == ("127.0.0.1", 7070, 5.0, "Bearer k")
    with pytest.raises(errors.InvalidArgumentError):
        p.Config.resolve("ftp://x")
    assert p.redact_preview_url("http://3000-mch_x.preview.localhost/?ns_token=nspv_abcdefghijkl") == (
        "http://3000-mch_x.preview.localhost/?ns_token=nspv_abcd***"
    )
