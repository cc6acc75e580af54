"""A machine's lifecycle events: the WebSocket stream that reconnects by itself and resumes
after the last event it yielded, and the polling form."""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

from .. import _protocol as p
from .._protocol import Emit, Request, Sleep, WsOpen, WsRecv, machine_path
from ..errors import UnavailableError, error_from_code
from ..models import LifecycleEvent, LifecycleEventsPage
from ._base import Gen, _invalid, _json, _plus, cls_op_iter, op, op_iter


class MachineEventsOps:
    """Lifecycle events of ``Machine`` / ``AsyncMachine`` (instance and by id)."""

    @cls_op_iter
    def stream_events_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        after_event_id: Optional[int] = None,
        live_only: Optional[bool] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A machine's lifecycle events by id; see ``stream_events``."""
        yield from _stream_events(machine_id, after_event_id, live_only)

    @op_iter
    def stream_events(self, *, after_event_id: Optional[int] = None, live_only: Optional[bool] = None) -> Gen:
        """The machine's lifecycle events as an iterator: the retained ones after
        ``after_event_id`` (all of them without it, none with ``live_only=True``), then live ones.
        It reconnects by itself when the connection drops (a server restart too) and resumes after
        the last event it yielded, so every event comes once and in order. ``break`` ends it.

        Example::

            for event in machine.stream_events(live_only=True):
                print(event.id, event.type, event.status)
                if event.status == "killed":
                    break
        """
        yield from _stream_events(self.id, after_event_id, live_only)

    @op
    def list_events(
        self,
        *,
        after_event_id: Optional[int] = None,
        limit: Optional[int] = None,
        wait_ms: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """One page of lifecycle events (polling; ``wait_ms`` long-polls for the next one).

        Example::

            page = machine.list_events(after_event_id=0, wait_ms=10_000)
        """
        q: List[Tuple[str, str]] = []
        for k, v in (("after_event_id", after_event_id), ("limit", limit), ("wait_ms", wait_ms)):
            if v is not None:
                q.append((k, str(v)))
        timeout = _plus(self._client.config.request_timeout, request_timeout, (wait_ms or 0) / 1000)
        wire = yield from _json(
            Request("GET", f"{machine_path(self.id)}/lifecycle/events", query=q, timeout=timeout)
        )
        return LifecycleEventsPage.from_dict(wire)


def _stream_events(machine_id: str, after_event_id: Optional[int], live_only: Optional[bool]) -> Gen:
    """The lifecycle WebSocket with reconnects: resumes after the last event yielded."""
    if live_only and after_event_id is not None:
        raise _invalid("live_only", "cannot be combined with after_event_id (live_only skips that replay)")
    last = after_event_id
    backoff = 0.05
    connected_once = False
    path = f"{machine_path(machine_id)}/lifecycle/ws"
    while True:
        q: List[Tuple[str, str]] = []
        if last is not None:
            q.append(("after_event_id", str(last)))
        elif live_only:
            q.append(("live_only", "true"))
        try:
            ws = yield WsOpen(path, q)
        except UnavailableError:
            # A server that is down or restarting: like a drop, once the stream was connected.
            if not connected_once:
                raise
            ws = None
        if isinstance(ws, p.Response):
            err = p.error_from_response(ws)
            if not (connected_once and err.code == "unavailable"):
                raise err
        elif ws is not None:
            connected_once = True
            while True:
                msg = yield WsRecv(ws)
                if msg is None:
                    break
                backoff = 0.05
                try:
                    m = json.loads(msg[1].decode("utf-8"))
                except ValueError:
                    continue
                t = m.get("type")
                if t == "event":
                    ev = m["event"]
                    if last is not None and ev["id"] <= last:
                        continue
                    last = ev["id"]
                    yield Emit(LifecycleEvent.from_dict(ev))
                elif t == "live":
                    last = max(last or 0, int(m["last_event_id"]))
                elif t == "events_expired":
                    raise error_from_code(
                        "events_expired",
                        m.get("message", "events expired"),
                        status=410,
                        details={"after_event_id": m.get("after_event_id"), "oldest_event_id": m.get("oldest_event_id")},
                    )
            yield p.Close(ws)
        yield Sleep(backoff)
        backoff = min(2.0, backoff * 2)
