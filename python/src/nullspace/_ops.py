"""Every operation of the SDK, written once as a generator over the effects of ``_protocol``.

``machine.py`` turns each of these into a plain method of the sync classes (``Machine``,
``Commands`` ...) and a coroutine of the async ones (``AsyncMachine``, ``AsyncCommands`` ...), so
what a call sends, how it reads the answer and how it maps errors exist once.

Markers: ``@op`` (an instance method), ``@op_iter`` (an instance method returning an iterator),
``@cls_op`` / ``@cls_op_iter`` (class methods; they get the client resolved from ``api_url``,
``api_key`` and ``request_timeout`` as their second argument).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _protocol as p
from ._protocol import Call, Emit, Open, Read, Request, Sleep, WsOpen, WsRecv, machine_path, ms, seg
from .errors import (
    GitError,
    InvalidArgumentError,
    NotFoundError,
    NullspaceError,
    UnavailableError,
    error_from_code,
)
from .models import (
    CommandResult,
    FileEntry,
    FileList,
    GitBranch,
    GitBranches,
    GitFileStatus,
    GitStatus,
    LifecycleEvent,
    LifecycleEventsPage,
    MachineInfo,
    MachineMetrics,
    MachineQuery,
    OutputChunk,
    PreviewGrant,
    PreviewProxyTarget,
    PreviewReadiness,
    PreviewRevocation,
    PreviewUrl,
    ProcessInfo,
    ProcessLogs,
    ReplaceResult,
    SearchResult,
    SignedFileUrl,
    SnapshotInfo,
    SshAccess,
    TemplateBuildResult,
    TemplateInfo,
    VolumeAttachment,
    VolumeHealth,
    VolumeInfo,
    VolumeMount,
    WarmPoolInfo,
    WatchEvent,
)

Gen = Generator[Any, Any, Any]


def op(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "call"  # type: ignore[attr-defined]
    return fn


def op_iter(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "iter"  # type: ignore[attr-defined]
    return fn


def cls_op(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "cls"  # type: ignore[attr-defined]
    return fn


def cls_op_iter(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "cls_iter"  # type: ignore[attr-defined]
    return fn


def _json(req: Request) -> Gen:
    resp = yield Call(req)
    return resp.json()


def _invalid(field: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError("invalid_argument", f"{field}: {message}", details={"field": field})


def _plus(config_timeout: float, per_call: Optional[float], extra_s: float) -> Optional[float]:
    """A request timeout with a wait the server does on purpose added (0 stays "no limit")."""
    base = config_timeout if per_call is None else per_call
    return 0 if base == 0 else base + extra_s


# ==== machines ====================================================================================


def _create_body(o: Mapping[str, Any]) -> Dict[str, Any]:
    volumes = o.get("volumes")
    return {
        "template": o.get("template"),
        "snapshot_id": o.get("snapshot_id"),
        "vcpus": o.get("vcpus"),
        "memory_mb": o.get("memory_mb"),
        "disk_mb": o.get("disk_mb"),
        "timeout": o.get("timeout"),
        "on_timeout": o.get("on_timeout"),
        "auto_resume": o.get("auto_resume"),
        "cwd": o.get("cwd"),
        "envs": o.get("envs"),
        "metadata": o.get("metadata"),
        "network": o.get("network"),
        "internet_access": o.get("internet_access"),
        "allow_out": o.get("allow_out"),
        "deny_out": o.get("deny_out"),
        "volumes": None if volumes is None else [_mount_dict(v) for v in volumes],
        "desktop": o.get("desktop"),
        "warm_pool": o.get("warm_pool"),
        "warm_pool_mode": o.get("warm_pool_mode"),
        "warm_pool_wait_ms": o.get("warm_pool_wait_ms"),
    }


def _mount_dict(v: Any) -> Dict[str, Any]:
    if isinstance(v, VolumeMount):
        return v.to_dict()
    if isinstance(v, Mapping):
        return dict(v)
    raise _invalid("volumes", "each entry must be a VolumeMount or a dict {volume, mount_path, ...}")


def _list_query(query: Optional[MachineQuery], limit: Optional[int], token: Optional[str], fields: Any) -> List[Tuple[str, str]]:
    q: List[Tuple[str, str]] = []
    if query is not None:
        if isinstance(query, Mapping):
            query = MachineQuery(**query)
        states = query.state
        for s in [] if states is None else [states] if isinstance(states, str) else list(states):
            q.append(("state", s))
        if query.template is not None:
            q.append(("template", query.template))
        for k, v in (query.metadata or {}).items():
            q.append((f"metadata.{k}", v))
    if limit is not None:
        q.append(("limit", str(limit)))
    if token is not None:
        q.append(("next_token", token))
    if fields is not None:
        q.append(("fields", ",".join(fields)))
    return q


@dataclass
class ForkChild:
    """One entry of ``fork()`` per requested child, in order: a handle and its info, or the typed
    error that child failed with (the others are not affected)."""

    machine: Any = None
    info: Optional[MachineInfo] = None
    error: Optional[NullspaceError] = None


class MachineOps:
    """Operations of ``Machine`` / ``AsyncMachine``. ``self`` is the handle: ``self.id``,
    ``self._client``, ``self._family`` (the sync or async classes)."""

    @cls_op
    def create(
        cls,
        client: Any,
        *,
        template: Optional[str] = None,
        snapshot_id: Optional[str] = None,
        vcpus: Optional[int] = None,
        memory_mb: Optional[int] = None,
        disk_mb: Optional[int] = None,
        timeout: Optional[int] = None,
        on_timeout: Optional[str] = None,
        auto_resume: Optional[bool] = None,
        cwd: Optional[str] = None,
        envs: Optional[Dict[str, str]] = None,
        metadata: Optional[Dict[str, str]] = None,
        network: Optional[Dict[str, Any]] = None,
        internet_access: Optional[bool] = None,
        allow_out: Optional[List[str]] = None,
        deny_out: Optional[List[str]] = None,
        volumes: Optional[Sequence[Any]] = None,
        desktop: Any = None,
        warm_pool: Optional[str] = None,
        warm_pool_mode: Optional[str] = None,
        warm_pool_wait_ms: Optional[int] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a machine (from ``template``, default ``base``, or a reusable ``snapshot_id``) and
        returns a handle once it runs. ``timeout`` is seconds until ``on_timeout`` (``kill`` |
        ``pause`` | ``hibernate``) applies; ``network`` is ``{"egress": {...}, "mask_request_host":
        ...}``; ``volumes`` a list of :class:`VolumeMount` or dicts; ``warm_pool`` /
        ``warm_pool_mode`` (``prefer`` | ``require`` | ``bypass``) / ``warm_pool_wait_ms`` check a
        ready machine out of a pool.

        Example::

            machine = Machine.create(template="base", vcpus=2, memory_mb=512, timeout=300,
                                     envs={"APP_ENV": "dev"}, metadata={"project": "docs"})
            print(machine.id)
        """
        body = _create_body(locals())
        wait = (warm_pool_wait_ms or 0) / 1000
        wire = yield from _json(
            Request("POST", "/v1/machines", json=body, timeout=_plus(client.config.request_timeout, None, wait))
        )
        return cls(wire["id"], _client=client, _info=MachineInfo.from_dict(wire))

    @cls_op
    def connect(
        cls,
        client: Any,
        machine_id: str,
        *,
        timeout: Optional[int] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A handle on a running machine, resuming it first if it is paused or hibernated (the
        caller's ``timeout``, seconds, is applied from now). ``get_info_by_id`` never wakes one.

        Example::

            machine = Machine.connect("mch_aaaaaaaaaaaaaaaaaaaa")
            print(machine.get_info().status)  # "running"
        """
        wire = yield from _json(
            Request("POST", f"{machine_path(machine_id)}/connect", json={"timeout": timeout})
        )
        return cls(machine_id, _client=client, _info=MachineInfo.from_dict(wire))

    @cls_op
    def resume(
        cls,
        client: Any,
        snapshot_id: str,
        *,
        timeout: Optional[int] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Resumes the machine a ``pause`` snapshot belongs to (same machine id, new execution).

        Example::

            info = machine.pause()
            resumed = Machine.resume(info.snapshot_id)
        """
        wire = yield from _json(
            Request("POST", f"/v1/snapshots/{seg(snapshot_id)}/resume", json={"timeout": timeout})
        )
        return cls(wire["id"], _client=client, _info=MachineInfo.from_dict(wire))

    @cls_op
    def list(
        cls,
        client: Any,
        *,
        query: Optional[MachineQuery] = None,
        limit: Optional[int] = None,
        next_token: Optional[str] = None,
        fields: Optional[Sequence[str]] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Lists machines, newest first. Returns a ``MachinePaginator`` holding the first page
        (``items``, ``has_next``, ``next_items()``, iterable over every page); with ``fields``,
        plain dicts holding only those fields instead (every page's rows, or one page with
        ``limit``).

        Example::

            page = Machine.list(query=MachineQuery(state="running"), limit=20)
            for info in page.items:
                print(info.id, info.status)
            rows = Machine.list(fields=["id", "status"])
        """
        q = _list_query(query, limit, next_token, fields)
        page = yield from _json(Request("GET", "/v1/machines", query=q))
        if fields is not None:
            rows: List[Dict[str, Any]] = list(page["items"])
            while limit is None and page.get("has_next") and page.get("next_token"):
                page = yield from _json(
                    Request("GET", "/v1/machines", query=_list_query(query, None, page["next_token"], fields))
                )
                rows.extend(page["items"])
            return rows

        def fetch(token: str) -> Gen:
            nxt = yield from _json(Request("GET", "/v1/machines", query=_list_query(query, limit, token, None)))
            return nxt

        return cls._family.MachinePaginator(client, page, fetch)

    @cls_op
    def get_info_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        fields: Optional[Sequence[str]] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A machine's info without waking it (a paused machine stays paused); with ``fields``, a
        plain dict holding only those fields.

        Example::

            info = Machine.get_info_by_id("mch_aaaaaaaaaaaaaaaaaaaa")
            row = Machine.get_info_by_id("mch_aaaaaaaaaaaaaaaaaaaa", fields=["status"])
        """
        info = yield from _get_info(machine_id, fields, None)
        return info

    @cls_op
    def get_metrics_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A machine's CPU, memory, disk and network counters now, with recent samples.

        Example::

            m = Machine.get_metrics_by_id("mch_aaaaaaaaaaaaaaaaaaaa")
            print(m.cpu_percent, m.memory_bytes)
        """
        wire = yield from _json(Request("GET", f"{machine_path(machine_id)}/metrics"))
        return MachineMetrics.from_dict(wire)

    @cls_op
    def kill_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Kills a machine by id and returns its final info (idempotent).

        Example::

            Machine.kill_by_id("mch_aaaaaaaaaaaaaaaaaaaa").status  # "killed"
        """
        wire = yield from _json(Request("DELETE", machine_path(machine_id)))
        return MachineInfo.from_dict(wire)

    @cls_op
    def pause_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Pauses a machine by id; see ``pause``."""
        wire = yield from _json(Request("POST", f"{machine_path(machine_id)}/pause"))
        return MachineInfo.from_dict(wire)

    @cls_op
    def hibernate_by_id(
        cls,
        client: Any,
        machine_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Hibernates a machine by id; see ``hibernate``."""
        wire = yield from _json(Request("POST", f"{machine_path(machine_id)}/hibernate"))
        return MachineInfo.from_dict(wire)

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

    @cls_op
    def run_once(
        cls,
        client: Any,
        command: str,
        args: Optional[List[str]] = None,
        *,
        command_timeout: Optional[float] = None,
        stdin: Optional[str] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
        **create_options: Any,
    ) -> Gen:
        """Creates a machine, runs one command, kills the machine (also when the command could not
        run) and returns the :class:`CommandResult`. Without ``args`` the command is a shell line;
        with ``args`` it is the program and its argv. ``command_timeout`` (seconds) bounds the
        command; other keywords are ``create`` options.

        Example::

            result = Machine.run_once("python3", ["-c", "print(6 * 7)"])
            print(result.stdout.strip())  # "42"
        """
        if create_options.get("timeout") is None and command_timeout is not None:
            create_options["timeout"] = max(300, int(command_timeout) + 60)
        machine = yield from MachineOps.create(cls, client, **create_options)
        try:
            result = yield from _run(machine.commands, command, args=args, timeout=command_timeout, stdin=stdin)
        except BaseException:
            try:
                yield Call(Request("DELETE", machine_path(machine.id)))
            except NullspaceError:
                pass  # the command's error is the one worth reporting; the timeout reaps it
            raise
        yield from _json(Request("DELETE", machine_path(machine.id)))
        return result

    # ---- instance ----

    @op
    def get_info(self, *, fields: Optional[Sequence[str]] = None, request_timeout: Optional[float] = None) -> Gen:
        """This machine's info, without waking it; with ``fields``, a plain dict.

        Example::

            info = machine.get_info()
            print(info.status, info.expires_at)
        """
        info = yield from _get_info(self.id, fields, request_timeout)
        return info

    @op
    def is_running(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Whether the machine runs now: False when paused, killed, transitioning or unknown.

        Example::

            if not machine.is_running():
                Machine.connect(machine.id)
        """
        try:
            row = yield from _get_info(self.id, ["status"], request_timeout)
        except NotFoundError:
            return False
        return row.get("status") == "running"

    @op
    def get_metrics(self, *, request_timeout: Optional[float] = None) -> Gen:
        """This machine's counters now, with recent samples.

        Example::

            m = machine.get_metrics()
            print(m.cpu_percent, m.memory_bytes, m.memory_limit_bytes)
        """
        wire = yield from _json(Request("GET", f"{machine_path(self.id)}/metrics", timeout=request_timeout))
        return MachineMetrics.from_dict(wire)

    @op
    def kill(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Kills the machine and returns its final info (status ``killed``). Idempotent.

        Example::

            machine.kill()
        """
        wire = yield from _json(Request("DELETE", machine_path(self.id), timeout=request_timeout))
        return MachineInfo.from_dict(wire)

    @op
    def pause(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Freezes every process where it stands (memory and files kept); returns the info with
        ``snapshot_id``. Resume with ``Machine.connect(id)`` or ``Machine.resume(snapshot_id)``.

        Example::

            info = machine.pause()
            print(info.status, info.snapshot_id)  # "paused" "snap_..."
        """
        wire = yield from _json(Request("POST", f"{machine_path(self.id)}/pause", timeout=request_timeout))
        return MachineInfo.from_dict(wire)

    @op
    def hibernate(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Writes memory and files to disk and releases every runtime resource; returns the info
        (status ``hibernated``). Survives a server restart.

        Example::

            machine.hibernate(request_timeout=180)
        """
        wire = yield from _json(Request("POST", f"{machine_path(self.id)}/hibernate", timeout=request_timeout))
        return MachineInfo.from_dict(wire)

    @op
    def create_snapshot(self, *, request_timeout: Optional[float] = None) -> Gen:
        """A ``reusable`` snapshot of memory and files; the machine keeps running. Start new
        machines from it with ``Machine.create(snapshot_id=...)``.

        Example::

            snap = machine.create_snapshot()
            copy = Machine.create(snapshot_id=snap.id)
        """
        wire = yield from _json(Request("POST", f"{machine_path(self.id)}/snapshots", timeout=request_timeout))
        return SnapshotInfo.from_dict(wire)

    @op
    def fork(self, count: Optional[int] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """Branches the running machine into ``count`` children (default 1, at most 16) with its
        memory and files as they are now. Returns one :class:`ForkChild` per child, in order.

        Example::

            for child in machine.fork(count=2):
                if child.error is None:
                    print(child.machine.id, child.info.status)
        """
        wire = yield from _json(
            Request("POST", f"{machine_path(self.id)}/fork", json={"count": count}, timeout=request_timeout)
        )
        out: List[ForkChild] = []
        for child in wire["children"]:
            if "error" in child:
                e = child["error"]
                out.append(
                    ForkChild(
                        error=error_from_code(
                            e.get("code"), e.get("message", ""), details=e.get("details"), request_id=e.get("request_id")
                        )
                    )
                )
            else:
                out.append(
                    ForkChild(machine=type(self)(child["id"], _client=self._client), info=MachineInfo.from_dict(child))
                )
        return out

    @op
    def set_timeout(
        self,
        timeout: int,
        *,
        on_timeout: Optional[str] = None,
        auto_resume: Optional[bool] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Moves the deadline to ``timeout`` seconds from now, optionally changing what happens
        then; returns the updated info.

        Example::

            machine.set_timeout(600, on_timeout="pause", auto_resume=True)
        """
        body = {"timeout": timeout, "on_timeout": on_timeout, "auto_resume": auto_resume}
        wire = yield from _json(
            Request("POST", f"{machine_path(self.id)}/timeout", json=body, timeout=request_timeout)
        )
        return MachineInfo.from_dict(wire)

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

    @op
    def set_network(
        self,
        network: Optional[Dict[str, Any]] = None,
        *,
        internet_access: Optional[bool] = None,
        allow_out: Optional[List[str]] = None,
        deny_out: Optional[List[str]] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Replaces the machine's network policy (``{"egress": {...}, "mask_request_host": ...}``),
        or with the legacy keywords (not both). Tightening fails closed.

        Example::

            machine.set_network({"egress": {"mode": "deny_all"}})
        """
        legacy = {"internet_access": internet_access, "allow_out": allow_out, "deny_out": deny_out}
        if network is not None and any(v is not None for v in legacy.values()):
            raise _invalid("network", "give network or the legacy internet_access/allow_out/deny_out, not both")
        body = network if network is not None else legacy
        wire = yield from _json(
            Request("PUT", f"{machine_path(self.id)}/network", json=body, timeout=request_timeout)
        )
        return MachineInfo.from_dict(wire)

    @op
    def get_host_info(self, port: int, *, request_timeout: Optional[float] = None) -> Gen:
        """Host information of a port: the preview host name, a fresh grant (one hour) and its
        signed HTTP and WebSocket URLs.

        Example::

            host = machine.get_host_info(3000)
            print(host.host, redact_preview_url(host.url))
        """
        wire = yield from _json(
            Request("GET", f"{machine_path(self.id)}/ports/{seg(port)}/host", timeout=request_timeout)
        )
        return PreviewUrl.from_dict(wire)

    @op
    def get_url(self, port: int, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A signed HTTP URL of a port (a new grant each call).

        Example::

            url = machine.get_url(8000)
        """
        preview = yield from _preview(self.id, port, expires_in, request_timeout)
        return preview.url

    @op
    def get_websocket_url(
        self, port: int, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """A signed WebSocket URL of a port (a new grant each call)."""
        preview = yield from _preview(self.id, port, expires_in, request_timeout)
        return preview.websocket_url

    @op
    def get_preview_url(
        self, port: int, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """A preview of a port with everything about it: signed URLs, host, token, grant id and
        expiry. The same as ``create_signed_preview_url``.

        Example::

            preview = machine.get_preview_url(3000, expires_in=3600)
            machine.revoke_preview_url(preview.id)
        """
        preview = yield from _preview(self.id, port, expires_in, request_timeout)
        return preview

    @op
    def create_signed_preview_url(
        self, port: int, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Creates a preview grant for a port valid ``expires_in`` seconds (default 3600).

        Example::

            grant = machine.create_signed_preview_url(8080, expires_in=600)
        """
        preview = yield from _preview(self.id, port, expires_in, request_timeout)
        return preview

    @op
    def list_preview_urls(self, *, port: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """The machine's preview grants (revoked and expired ones too), optionally of one port.

        Example::

            for grant in machine.list_preview_urls(port=3000):
                print(grant.id, grant.token_hint, grant.revoked_at)
        """
        q = None if port is None else [("port", str(port))]
        wire = yield from _json(
            Request("GET", f"{machine_path(self.id)}/preview_urls", query=q, timeout=request_timeout)
        )
        return [PreviewGrant.from_dict(g) for g in wire["items"]]

    @op
    def revoke_preview_url(self, grant_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Revokes a preview grant (``pvg_...``) and closes its open connections.

        Example::

            machine.revoke_preview_url(preview.id).closed_connections
        """
        wire = yield from _json(
            Request("DELETE", f"{machine_path(self.id)}/preview_urls/{seg(grant_id)}", timeout=request_timeout)
        )
        return PreviewRevocation.from_dict(wire)

    @op
    def wait_for_preview(
        self, port: int, *, timeout: Optional[float] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Waits until a port accepts connections, at most ``timeout`` seconds (default 30);
        ``NullspaceTimeoutError`` when nothing answered in time.

        Example::

            machine.commands.run("python3 -m http.server 8000", background=True)
            machine.wait_for_preview(8000, timeout=60)
        """
        wait = 30.0 if timeout is None else timeout
        wire = yield from _json(
            Request(
                "POST",
                f"{machine_path(self.id)}/ports/{seg(port)}/wait",
                json={"timeout_ms": ms(timeout)},
                timeout=_plus(self._client.config.request_timeout, request_timeout, wait),
            )
        )
        return PreviewReadiness.from_dict(wire)

    @op
    def create_preview_proxy_target(
        self, port: int, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Upstream URLs with no secret in them plus the ``x-nullspace-preview-proxy-token`` header
        for a preview proxy you run.

        Example::

            target = machine.create_preview_proxy_target(8080)
            print(target.upstream_url, list(target.headers))
        """
        wire = yield from _json(
            Request(
                "POST",
                f"{machine_path(self.id)}/preview_proxy_targets",
                json={"port": port, "expires_in": expires_in},
                timeout=request_timeout,
            )
        )
        return PreviewProxyTarget.from_dict(wire)

    @op
    def create_ssh_access(
        self,
        *,
        public_key: str,
        expires_in_minutes: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Short-lived SSH access: the server signs your public key into an OpenSSH certificate.

        Example::

            access = machine.create_ssh_access(public_key=open(os.path.expanduser("~/.ssh/id_ed25519.pub")).read())
            print(access.command)
        """
        wire = yield from _json(
            Request(
                "POST",
                f"{machine_path(self.id)}/ssh_access",
                json={"public_key": public_key, "expires_in_minutes": expires_in_minutes},
                timeout=request_timeout,
            )
        )
        return SshAccess.from_dict(wire)

    @op
    def upload_url(self, path: str, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A URL that uploads one file into the machine without an API key (``curl -T f "$url"``)."""
        signed = yield from _signed_url(self.id, path, "write", expires_in, request_timeout)
        return signed.url

    @op
    def download_url(
        self, path: str, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """A URL that downloads one file from the machine without an API key."""
        signed = yield from _signed_url(self.id, path, "read", expires_in, request_timeout)
        return signed.url

    @op
    def list_volumes(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The machine's volume attachments, in the order they were made.

        Example::

            for a in machine.list_volumes():
                print(a.id, a.volume_name, a.mount_path)
        """
        wire = yield from _json(Request("GET", f"{machine_path(self.id)}/volumes", timeout=request_timeout))
        return [VolumeAttachment.from_dict(a) for a in wire["items"]]

    @op
    def attach_volume(
        self,
        volume: Any,
        mount_path: Optional[str] = None,
        read_only: bool = False,
        subpath: Optional[str] = None,
        *,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Mounts a volume (id, name, :class:`VolumeMount` or dict) into the running machine.

        Example::

            a = machine.attach_volume("datasets", "/data", read_only=True)
        """
        if isinstance(volume, (VolumeMount, Mapping)):
            body = _mount_dict(volume)
        else:
            if mount_path is None:
                raise _invalid("mount_path", "is required with a volume id or name")
            body = VolumeMount(volume, mount_path, read_only or None, subpath).to_dict()
        wire = yield from _json(
            Request("POST", f"{machine_path(self.id)}/volumes", json=body, timeout=request_timeout)
        )
        return VolumeAttachment.from_dict(wire)

    @op
    def detach_volume(self, attachment_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Unmounts one attachment (``vat_...``); the volume keeps its data."""
        wire = yield from _json(
            Request("DELETE", f"{machine_path(self.id)}/volumes/{seg(attachment_id)}", timeout=request_timeout)
        )
        return VolumeAttachment.from_dict(wire)

    @op
    def get_volume_health(self, attachment_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Checks an attachment now and returns the result (``healthy``, ``reason``)."""
        wire = yield from _json(
            Request("GET", f"{machine_path(self.id)}/volumes/{seg(attachment_id)}/health", timeout=request_timeout)
        )
        return VolumeHealth.from_dict(wire)

    @op
    def remount_volume(self, attachment_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Mounts an attachment again in place; returns it with a fresh health check."""
        wire = yield from _json(
            Request("POST", f"{machine_path(self.id)}/volumes/{seg(attachment_id)}/remount", timeout=request_timeout)
        )
        return VolumeAttachment.from_dict(wire)


def _get_info(machine_id: str, fields: Optional[Sequence[str]], timeout: Optional[float]) -> Gen:
    q = None if fields is None else [("fields", ",".join(fields))]
    wire = yield from _json(Request("GET", machine_path(machine_id), query=q, timeout=timeout))
    return wire if fields is not None else MachineInfo.from_dict(wire)


def _preview(machine_id: str, port: int, expires_in: Optional[int], timeout: Optional[float]) -> Gen:
    wire = yield from _json(
        Request(
            "POST",
            f"{machine_path(machine_id)}/preview_urls",
            json={"port": port, "expires_in": expires_in},
            timeout=timeout,
        )
    )
    return PreviewUrl.from_dict(wire)


def _signed_url(machine_id: str, path: str, op_name: str, expires_in: Optional[int], timeout: Optional[float]) -> Gen:
    wire = yield from _json(
        Request(
            "POST",
            f"{machine_path(machine_id)}/files/signed_url",
            json={"path": path, "op": op_name, "expires_in": expires_in},
            timeout=timeout,
        )
    )
    return SignedFileUrl.from_dict(wire)


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


# ==== commands ====================================================================================


def _transient(err: NullspaceError) -> bool:
    """Refusals worth waiting out: a transition, a paused machine, a briefly unreachable agent."""
    status = (err.details or {}).get("status")
    return err.code in ("unavailable", "machine_transitioning") or (
        err.code == "invalid_state" and status in ("paused", "hibernated")
    )


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


# ==== pty =========================================================================================


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


# ==== files =======================================================================================


def _files_base(machine_id: str) -> str:
    return f"{machine_path(machine_id)}/files"


def _body_of(data: Any) -> Union[bytes, Iterable[bytes]]:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if hasattr(data, "read"):
        def chunks() -> Iterable[bytes]:
            while True:
                part = data.read(1 << 20)
                if not part:
                    return
                yield part.encode() if isinstance(part, str) else part

        return chunks()
    if hasattr(data, "__iter__"):
        return (part.encode() if isinstance(part, str) else bytes(part) for part in data)
    raise _invalid("data", "must be str, bytes, a binary file or an iterable of bytes")


class FilesOps:
    """``machine.files``."""

    @op
    def read(self, path: str, *, format: str = "text", request_timeout: Optional[float] = None) -> Gen:
        """Reads a file as text (default, UTF-8) or bytes (``format="bytes"``); ``format="stream"``
        returns an iterator of byte chunks that is not held in memory (``read_stream``).

        Example::

            text = machine.files.read("/etc/hostname")
            data = machine.files.read("/bin/true", format="bytes")
        """
        if format not in ("text", "bytes"):
            raise _invalid("format", 'expected "text", "bytes" or "stream"')
        resp = yield Call(Request("GET", _files_base(self._machine_id), query=[("path", path)], timeout=request_timeout))
        p.raise_for_status(resp)
        return resp.body if format == "bytes" else resp.body.decode("utf-8", "replace")

    @op_iter
    def read_stream(self, path: str, *, request_timeout: Optional[float] = None) -> Gen:
        """A file's bytes as an iterator of chunks, streamed (for large files).

        Example::

            with open("big.bin", "wb") as out:
                for chunk in machine.files.read_stream("/data/big.bin"):
                    out.write(chunk)
        """
        stream = yield Open(Request("GET", _files_base(self._machine_id), query=[("path", path)], timeout=request_timeout))
        if isinstance(stream, p.Response):
            p.raise_for_status(stream)
        while True:
            data = yield Read(stream)
            if not data:
                return
            yield Emit(data)

    @op
    def write(self, path: str, data: Any, *, request_timeout: Optional[float] = None) -> Gen:
        """Writes a file (str as UTF-8, bytes, a binary file object or an iterable of bytes,
        streamed), creating missing parents; atomic. Returns its :class:`FileEntry`.

        Example::

            machine.files.write("/workspace/hello.txt", "hi\\n")
            with open("model.bin", "rb") as f:
                machine.files.write("/workspace/model.bin", f)
        """
        wire = yield from _json(
            Request(
                "PUT",
                _files_base(self._machine_id),
                query=[("path", path)],
                body=_body_of(data),
                headers={"content-type": "application/octet-stream"},
                timeout=0 if request_timeout is None else request_timeout,
            )
        )
        return FileEntry.from_dict(wire)

    @op
    def list(self, path: str, *, depth: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """Lists a directory ``depth`` levels down (default 1). Returns a :class:`FileList`
        (``entries``, ``truncated``; iterable over the entries).

        Example::

            for entry in machine.files.list("/workspace", depth=2):
                print(entry.type, entry.path)
        """
        q = [("path", path)] + ([("depth", str(depth))] if depth is not None else [])
        wire = yield from _json(Request("GET", f"{_files_base(self._machine_id)}/list", query=q, timeout=request_timeout))
        return FileList.from_dict(wire)

    @op
    def stat(self, path: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Describes one path (a symlink itself, not its target)."""
        wire = yield from _json(
            Request("GET", f"{_files_base(self._machine_id)}/stat", query=[("path", path)], timeout=request_timeout)
        )
        return FileEntry.from_dict(wire)

    @op
    def exists(self, path: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Whether a path exists (a dangling symlink does)."""
        wire = yield from _json(
            Request("GET", f"{_files_base(self._machine_id)}/exists", query=[("path", path)], timeout=request_timeout)
        )
        return bool(wire["exists"])

    @op
    def make_dir(self, path: str, *, parents: bool = True, request_timeout: Optional[float] = None) -> Gen:
        """Creates a directory (and missing parents); False when it was already there.

        Example::

            machine.files.make_dir("/workspace/out/logs")
        """
        wire = yield from _json(
            Request(
                "POST", f"{_files_base(self._machine_id)}/mkdir", json={"path": path, "parents": parents}, timeout=request_timeout
            )
        )
        return bool(wire["created"])

    @op
    def move(self, from_path: str, to_path: str, *, overwrite: bool = False, request_timeout: Optional[float] = None) -> Gen:
        """Moves or renames a file or directory; an existing target is a conflict unless
        ``overwrite``."""
        wire = yield from _json(
            Request(
                "POST",
                f"{_files_base(self._machine_id)}/move",
                json={"from": from_path, "to": to_path, "overwrite": overwrite},
                timeout=request_timeout,
            )
        )
        return FileEntry.from_dict(wire)

    @op
    def remove(self, path: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Removes a file, a symlink or a directory with everything in it."""
        yield from _json(
            Request("DELETE", _files_base(self._machine_id), query=[("path", path)], timeout=request_timeout)
        )

    @op
    def search(
        self,
        path: str,
        pattern: str,
        *,
        regex: bool = False,
        case_sensitive: bool = True,
        include: Optional[List[str]] = None,
        exclude: Optional[List[str]] = None,
        max_results: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Searches file contents under ``path``, line by line (``regex`` is a JavaScript regular
        expression); binary files and files over 10 MiB are skipped.

        Example::

            for m in machine.files.search("/workspace", "TODO", include=["*.py"]).matches:
                print(f"{m.path}:{m.line}: {m.text}")
        """
        wire = yield from _json(
            Request(
                "POST",
                f"{_files_base(self._machine_id)}/search",
                json={
                    "path": path,
                    "pattern": pattern,
                    "regex": regex,
                    "case_sensitive": case_sensitive,
                    "include": include or [],
                    "exclude": exclude or [],
                    "max_results": max_results,
                },
                timeout=300 if request_timeout is None else request_timeout,
            )
        )
        return SearchResult.from_dict(wire)

    @op
    def replace(
        self,
        pattern: str,
        replacement: str,
        *,
        paths: Optional[List[str]] = None,
        path: Optional[str] = None,
        include: Optional[List[str]] = None,
        exclude: Optional[List[str]] = None,
        regex: bool = False,
        case_sensitive: bool = True,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Replaces ``pattern`` in ``paths``, or in every text file under ``path`` (narrowed by
        globs); each file is rewritten atomically.

        Example::

            r = machine.files.replace("v1.2.3", "v1.2.4", path="/workspace", include=["*.json"])
            print(r.files_changed, r.total_replacements)
        """
        body = {
            "pattern": pattern,
            "replacement": replacement,
            "regex": regex,
            "case_sensitive": case_sensitive,
            "paths": paths,
            "path": path,
            "include": include,
            "exclude": exclude,
        }
        wire = yield from _json(
            Request(
                "POST",
                f"{_files_base(self._machine_id)}/replace",
                json=body,
                timeout=300 if request_timeout is None else request_timeout,
            )
        )
        return ReplaceResult.from_dict(wire)

    @op_iter
    def watch_dir(self, path: str, *, recursive: bool = False) -> Gen:
        """Watches a directory: yields every create, write, rename and remove as a
        :class:`WatchEvent`, in order, until you stop iterating (the watch is then deleted). A
        dropped connection is reopened and resumes after the last event.

        Example::

            for event in machine.files.watch_dir("/workspace", recursive=True):
                print(event.type, event.path)
                if event.path.endswith("done"):
                    break
        """
        base = _files_base(self._machine_id)
        info = yield from _json(Request("POST", f"{base}/watches", json={"path": path, "recursive": recursive}))
        watch_id = info["watch_id"]
        yield p.Defer(Request("DELETE", f"{base}/watches/{seg(watch_id)}"))
        last = 0
        backoff = 0.25
        opened_once = False
        while True:
            try:
                ws = yield WsOpen(f"{base}/watches/{seg(watch_id)}/ws", [("after", str(last))])
            except UnavailableError:
                if not opened_once:
                    raise
                ws = None
            if isinstance(ws, p.Response):
                err = p.error_from_response(ws)
                if not (opened_once and (_transient(err) or err.code == "timeout")):
                    raise err
            elif ws is not None:
                opened_once = True
                backoff = 0.25
                while True:
                    msg = yield WsRecv(ws)
                    if msg is None:
                        break
                    try:
                        e = json.loads(msg[1].decode("utf-8"))
                    except ValueError:
                        continue
                    if e.get("id", 0) <= last:
                        continue
                    last = e["id"]
                    yield Emit(WatchEvent.from_dict(e))
                yield p.Close(ws)
                if ws.close_code == 1000:
                    raise error_from_code("not_found", f"file watch {watch_id} ended")
            yield Sleep(backoff)
            backoff = min(2.0, backoff * 2)

    @op
    def create_watch(self, path: str, *, recursive: bool = False, request_timeout: Optional[float] = None) -> Gen:
        """The polling form of ``watch_dir``: a watch whose events are read with
        ``events(after=, wait_ms=)``; ``stop()`` deletes it.

        Example::

            watch = machine.files.create_watch("/workspace", recursive=True)
            page = watch.events(after=0, wait_ms=10_000)
            watch.stop()
        """
        info = yield from _json(
            Request(
                "POST",
                f"{_files_base(self._machine_id)}/watches",
                json={"path": path, "recursive": recursive},
                timeout=request_timeout,
            )
        )
        return self._family.FileWatchPoller(self, info["watch_id"])

    @op
    def signed_url(
        self, path: str, *, op: str = "read", expires_in: Optional[int] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """A URL that reads (``op="read"``) or writes (``op="write"``) one file without an API key."""
        signed = yield from _signed_url(self._machine_id, path, op, expires_in, request_timeout)
        return signed

    @op
    def upload_url(self, path: str, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A URL to upload one file with no API key (PUT)."""
        signed = yield from _signed_url(self._machine_id, path, "write", expires_in, request_timeout)
        return signed.url

    @op
    def download_url(self, path: str, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A URL to download one file with no API key (GET)."""
        signed = yield from _signed_url(self._machine_id, path, "read", expires_in, request_timeout)
        return signed.url


class FileWatchPollerOps:
    """A watch read by polling: ``self._files``, ``self.watch_id``."""

    @op
    def events(
        self,
        *,
        after: int = 0,
        wait_ms: Optional[int] = None,
        limit: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Events after ``after``; waits up to ``wait_ms`` for one when there is none. Returns
        ``(events, last_event_id)``."""
        q = [(k, str(v)) for k, v in (("after", after), ("wait_ms", wait_ms), ("limit", limit)) if v is not None]
        files = self._files
        timeout = _plus(files._client.config.request_timeout, request_timeout, (wait_ms or 0) / 1000)
        wire = yield from _json(
            Request("GET", f"{_files_base(files._machine_id)}/watches/{seg(self.watch_id)}/events", query=q, timeout=timeout)
        )
        return [WatchEvent.from_dict(e) for e in wire["events"]], wire["last_event_id"]

    @op
    def stop(self) -> Gen:
        """Deletes the watch."""
        yield from _json(Request("DELETE", f"{_files_base(self._files._machine_id)}/watches/{seg(self.watch_id)}"))


# ==== git =========================================================================================

_LOCAL_TIMEOUT = 60.0
_NETWORK_TIMEOUT = 300.0
_DEFAULT_USERNAME = "x-access-token"
_STATE_OF_LETTER = {
    ".": "unmodified",
    "M": "modified",
    "T": "type_changed",
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "U": "unmerged",
}


def _run_git(
    commands: Any,
    subcommand: str,
    args: List[str],
    *,
    path: Optional[str] = None,
    envs: Optional[Dict[str, str]] = None,
    stdin: Optional[str] = None,
    timeout: Optional[float] = None,
    redact: Callable[[str], str] = lambda t: t,
    ok_exit_codes: Sequence[int] = (),
) -> Gen:
    """Runs the machine's git with an argv (never a shell line); a failure becomes a GitError."""
    result = yield from _run(
        commands,
        "git",
        args=args if path is None else ["-C", path, *args],
        envs={**(envs or {}), "GIT_TERMINAL_PROMPT": "0"},
        timeout=_LOCAL_TIMEOUT if timeout is None else timeout,
        stdin=stdin,
    )
    if result.exit_code == 0 or (result.exit_code is not None and result.exit_code in ok_exit_codes):
        return result
    said = redact(result.stdout if result.stderr.strip() == "" else result.stderr)
    explanation = "\n".join(
        line.rstrip() for line in said.split("\n") if line.strip() and not line.startswith("Cloning into ")
    )
    if result.timed_out:
        how = f"timed out after {result.duration_ms} ms"
    elif result.exit_code is None:
        how = f"ended by {result.signal or 'a signal'}"
    else:
        how = f"failed (exit {result.exit_code})"
    raise GitError(
        f"git {subcommand} {how}" + (f": {explanation}" if explanation else ""),
        subcommand=subcommand,
        exit_code=result.exit_code,
        stderr=said,
        timed_out=result.timed_out,
    )


def _repo(path: str) -> str:
    if not isinstance(path, str) or path == "":
        raise _invalid("path", "name the repository directory")
    return path


def _ref(field: str, name: str) -> str:
    if name == "" or name.startswith("-"):
        raise _invalid(field, f'"{name}" is not a valid name')
    return name


def _auth_env(username: Optional[str], token: Optional[str], password: Optional[str]) -> Tuple[Optional[Dict[str, str]], Callable[[str], str]]:
    """Credentials for one git process as an ``http.extraHeader`` given through
    ``GIT_CONFIG_COUNT``: in no file and no argv. Also a redactor for what git prints."""
    if token is not None and password is not None:
        raise _invalid("token", "give token or password, not both")
    secret = token if token is not None else password
    if not secret:
        if username is not None:
            raise _invalid("username", "a username needs a token or password")
        return None, lambda t: t
    user = username or _DEFAULT_USERNAME
    if ":" in user:
        raise _invalid("username", 'must not contain ":"')
    if "\n" in secret or "\r" in secret:
        raise _invalid("token", "must not contain line breaks")
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
    return env, lambda t: t.replace(basic, "***").replace(secret, "***")


def _directory_of(url: str) -> str:
    trimmed = re.sub(r"[/\\]+$", "", url)
    trimmed = re.sub(r"/\.git$", "", trimmed)
    last = re.split(r"[/:]", trimmed)[-1] or trimmed
    return re.sub(r"\.git$", "", last) or trimmed


def _parse_status(out: str) -> GitStatus:
    status = GitStatus()
    records = out.split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if rec == "":
            continue
        if rec.startswith("# "):
            _, name, *rest = rec.split(" ")
            value = " ".join(rest)
            if name == "branch.oid":
                status.commit = None if value == "(initial)" else value
            elif name == "branch.head":
                status.detached = value == "(detached)"
                status.branch = None if status.detached else value
            elif name == "branch.upstream":
                status.upstream = value
            elif name == "branch.ab":
                m = re.match(r"^\+(\d+) -(\d+)$", value)
                if m:
                    status.ahead, status.behind = int(m.group(1)), int(m.group(2))
            continue
        kind = rec[0]
        if kind == "?":
            status.files.append(GitFileStatus(path=rec[2:], orig_path=None, index="untracked", worktree="untracked"))
        elif kind in ("1", "2", "u"):
            before = {"1": 8, "2": 9, "u": 10}[kind]
            fields = rec.split(" ")
            xy = fields[1] if len(fields) > 1 else ".."
            path = " ".join(fields[before:])
            orig = None
            if kind == "2":
                orig = records[i] if i < len(records) else None
                i += 1
            conflict = kind == "u"
            status.files.append(
                GitFileStatus(
                    path=path,
                    orig_path=orig,
                    index="unmerged" if conflict else _STATE_OF_LETTER.get(xy[0], "unmodified"),
                    worktree="unmerged" if conflict else _STATE_OF_LETTER.get(xy[1], "unmodified"),
                )
            )
    status.clean = len(status.files) == 0
    return status


def _parse_branches(out: str) -> GitBranches:
    result = GitBranches()
    for line in out.split("\n"):
        if not line:
            continue
        parts = line.split("\0")
        if len(parts) < 4 or not parts[1].startswith("refs/heads/"):
            continue
        name = parts[1][len("refs/heads/") :]
        current = parts[0] == "*"
        if current:
            result.current = name
        result.branches.append(GitBranch(name=name, current=current, upstream=parts[2] or None, commit=parts[3]))
    return result


def _check_key(key: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]*(\..+)?\.[A-Za-z][A-Za-z0-9-]*$", key):
        raise _invalid("key", f'"{key}" is not a git config key (section.name)')


def _scope_args(scope: Optional[str], path: Optional[str]) -> List[str]:
    if scope is None:
        return []
    if scope == "global":
        return ["--global"]
    if scope == "local":
        if path is None:
            raise _invalid("path", "the local scope needs the repository path")
        return ["--local"]
    raise _invalid("scope", f'expected global or local, got "{scope}"')


class GitOps:
    """``machine.git``: helpers over ``commands.run`` (``self._commands``)."""

    @op
    def clone(
        self,
        url: str,
        *,
        path: Optional[str] = None,
        branch: Optional[str] = None,
        depth: Optional[int] = None,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Clones a repository; returns the directory it went to. Credentials (``token`` or
        ``password``) authenticate this clone only and are stored nowhere.

        Example::

            machine.git.clone("https://github.com/team/app.git", path="/workspace/app", depth=1)
        """
        if url == "":
            raise _invalid("url", "must not be empty")
        env, redact = _auth_env(username, token, password)
        if env is not None and not re.match(r"^https?://", url, re.I):
            raise _invalid("token", "credentials can only be sent to an http:// or https:// URL")
        args = ["clone"]
        if branch is not None:
            args += ["--branch", _ref("branch", branch)]
        if depth is not None:
            if not isinstance(depth, int) or depth < 1:
                raise _invalid("depth", "must be a positive integer")
            args += ["--depth", str(depth)]
        if path is not None and path == "":
            raise _invalid("path", "must not be empty")
        args += ["--", url] + ([path] if path is not None else [])
        yield from _run_git(
            self._commands, "clone", args, envs=env, redact=redact, timeout=_NETWORK_TIMEOUT if timeout is None else timeout
        )
        return {"path": path if path is not None else _directory_of(url)}

    @op
    def status(self, path: str, *, timeout: Optional[float] = None) -> Gen:
        """Branch, upstream, ahead/behind and changed files (``git status --porcelain=v2``)."""
        r = yield from _run_git(
            self._commands, "status", ["status", "--porcelain=v2", "--branch", "-z"], path=_repo(path), timeout=timeout
        )
        return _parse_status(r.stdout)

    @op
    def branches(self, path: str, *, timeout: Optional[float] = None) -> Gen:
        """The local branches and the current one."""
        r = yield from _run_git(
            self._commands,
            "branch",
            ["branch", "--list", "--format=%(HEAD)%00%(refname)%00%(upstream:short)%00%(objectname)%00"],
            path=_repo(path),
            timeout=timeout,
        )
        return _parse_branches(r.stdout)

    @op
    def create_branch(
        self,
        path: str,
        name: str,
        *,
        checkout: bool = False,
        start_point: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a branch at HEAD (or ``start_point``); ``checkout=True`` switches to it."""
        args = ["switch", "--create", _ref("name", name)] if checkout else ["branch", _ref("name", name)]
        if start_point is not None:
            args.append(_ref("start_point", start_point))
        yield from _run_git(
            self._commands, "switch" if checkout else "branch", args, path=_repo(path), timeout=timeout
        )

    @op
    def checkout(self, path: str, target: str, *, timeout: Optional[float] = None) -> Gen:
        """Checks out a branch, tag or commit."""
        yield from _run_git(
            self._commands, "checkout", ["checkout", _ref("ref", target), "--"], path=_repo(path), timeout=timeout
        )

    @op
    def add(self, path: str, files: Optional[List[str]] = None, *, all: bool = False, timeout: Optional[float] = None) -> Gen:
        """Stages ``files``, or every change with ``all=True``.

        Example::

            machine.git.add("/workspace/app", all=True)
        """
        if all:
            args = ["add", "--all"]
        elif files:
            args = ["add", "--", *files]
        else:
            raise _invalid("files", "name at least one path, or pass all=True")
        yield from _run_git(self._commands, "add", args, path=_repo(path), timeout=timeout)

    @op
    def commit(
        self,
        path: str,
        message: str,
        *,
        author_name: Optional[str] = None,
        author_email: Optional[str] = None,
        allow_empty: bool = False,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Commits what is staged; returns ``{"sha": ...}``.

        Example::

            sha = machine.git.commit("/workspace/app", "Add README", author_name="Ada", author_email="ada@example.com")["sha"]
        """
        d = _repo(path)
        if message.strip() == "":
            raise _invalid("message", "must not be empty")
        envs: Dict[str, str] = {}
        if author_name is not None:
            envs["GIT_AUTHOR_NAME"] = envs["GIT_COMMITTER_NAME"] = author_name
        if author_email is not None:
            envs["GIT_AUTHOR_EMAIL"] = envs["GIT_COMMITTER_EMAIL"] = author_email
        args = ["commit", "--file=-"] + (["--allow-empty"] if allow_empty else [])
        yield from _run_git(self._commands, "commit", args, path=d, envs=envs, stdin=message, timeout=timeout)
        head = yield from _run_git(self._commands, "rev-parse", ["rev-parse", "--verify", "HEAD"], path=d, timeout=timeout)
        return {"sha": head.stdout.strip()}

    @op
    def diff(
        self, path: str, *, staged: bool = False, files: Optional[List[str]] = None, timeout: Optional[float] = None
    ) -> Gen:
        """The unified diff of the work tree (or with ``staged`` of the index)."""
        args = ["diff", "--no-color", "--no-ext-diff"] + (["--cached"] if staged else []) + ["--", *(files or [])]
        r = yield from _run_git(self._commands, "diff", args, path=_repo(path), timeout=timeout)
        return r.stdout

    @op
    def pull(
        self,
        path: str,
        *,
        remote: Optional[str] = None,
        branch: Optional[str] = None,
        rebase: Optional[bool] = None,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """``git pull`` with credentials for this pull only; returns ``{"output": ...}``."""
        args = ["pull"]
        if rebase is not None:
            args.append("--rebase" if rebase else "--no-rebase")
        remote = remote if remote is not None else ("origin" if branch is not None else None)
        if remote is not None:
            args.append(_ref("remote", remote))
        if branch is not None:
            args.append(_ref("branch", branch))
        env, redact = _auth_env(username, token, password)
        r = yield from _run_git(
            self._commands,
            "pull",
            args,
            path=_repo(path),
            envs=env,
            redact=redact,
            timeout=_NETWORK_TIMEOUT if timeout is None else timeout,
        )
        return {"output": redact(r.stderr + r.stdout)}

    @op
    def push(
        self,
        path: str,
        *,
        remote: Optional[str] = None,
        branch: Optional[str] = None,
        set_upstream: bool = False,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """``git push`` of the current branch (or ``branch``); returns ``{"output": ...}``."""
        args = ["push"] + (["--set-upstream"] if set_upstream else [])
        named = branch is not None or set_upstream
        remote = remote if remote is not None else ("origin" if named else None)
        if remote is not None:
            args.append(_ref("remote", remote))
        if branch is not None:
            args.append(_ref("branch", branch))
        elif named:
            args.append("HEAD")
        env, redact = _auth_env(username, token, password)
        r = yield from _run_git(
            self._commands,
            "push",
            args,
            path=_repo(path),
            envs=env,
            redact=redact,
            timeout=_NETWORK_TIMEOUT if timeout is None else timeout,
        )
        return {"output": redact(r.stderr + r.stdout)}


class GitConfigOps:
    """``machine.git.config``."""

    @op
    def get(self, key: str, *, scope: Optional[str] = None, path: Optional[str] = None, timeout: Optional[float] = None) -> Gen:
        """A config value, or None when it is not set."""
        _check_key(key)
        scope_args = _scope_args(scope, path)
        repo = None if path is None or scope == "global" else _repo(path)
        r = yield from _run_git(
            self._commands, "config", ["config", *scope_args, "--get", "--", key], path=repo, timeout=timeout, ok_exit_codes=(1,)
        )
        if r.exit_code == 1 and r.stderr.strip():
            raise GitError(f"git config failed (exit 1): {r.stderr.strip()}", subcommand="config", exit_code=1, stderr=r.stderr)
        return None if r.exit_code == 1 else re.sub(r"\n$", "", r.stdout)

    @op
    def set(
        self, key: str, value: str, *, scope: Optional[str] = None, path: Optional[str] = None, timeout: Optional[float] = None
    ) -> Gen:
        """Sets a config value (``global`` by default, ``local`` with ``path``)."""
        _check_key(key)
        scope_args = _scope_args(scope or ("global" if path is None else "local"), path)
        repo = None if path is None or scope == "global" else _repo(path)
        yield from _run_git(self._commands, "config", ["config", *scope_args, "--", key, value], path=repo, timeout=timeout)


# ==== paginator ===================================================================================


class PaginatorOps:
    @op
    def next_items(self) -> Gen:
        """Fetches the next page, makes it the current one and returns its items ([] at the end)."""
        if not self.has_next or self.next_token is None:
            self.has_next = False
            return []
        page = yield from self._fetch(self.next_token)
        self._take(page)
        return self.items


# ==== templates, pools, volumes, snapshots ========================================================


def _template_body(spec: Mapping[str, Any]) -> Dict[str, Any]:
    files = spec.get("files")
    wire_files = None
    if files is not None:
        wire_files = []
        for f in files:
            content = f.get("content")
            entry: Dict[str, Any] = {"path": f["path"], "mode": f.get("mode")}
            if isinstance(content, (bytes, bytearray)):
                entry["content_base64"] = base64.b64encode(bytes(content)).decode()
            else:
                entry["content"] = content
            wire_files.append(entry)
    return {
        "name": spec.get("name"),
        "tags": spec.get("tags"),
        "base": spec.get("base"),
        "packages": spec.get("packages"),
        "files": wire_files,
        "run": spec.get("run"),
        "env": spec.get("env"),
        "workdir": spec.get("workdir"),
        "start_cmd": spec.get("start_cmd"),
        "ready_check": spec.get("ready_check"),
        "disk_mb": spec.get("disk_mb"),
        "vcpus": spec.get("vcpus"),
        "memory_mb": spec.get("memory_mb"),
        "snapshot": spec.get("snapshot"),
    }


def _ndjson(path: str, follow: bool) -> Gen:
    stream = yield Open(Request("GET", path, query=[("follow", "true" if follow else "false")], timeout=0))
    if isinstance(stream, p.Response):
        p.raise_for_status(stream)
    buf = b""
    while True:
        data = yield Read(stream)
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield Emit(json.loads(line))
    if buf.strip():
        yield Emit(json.loads(buf))


class TemplateOps:
    @cls_op
    def build(
        cls,
        client: Any,
        name: str,
        *,
        tags: Optional[List[str]] = None,
        base: Optional[str] = None,
        packages: Optional[List[str]] = None,
        files: Optional[List[Dict[str, Any]]] = None,
        run: Optional[List[str]] = None,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
        start_cmd: Optional[str] = None,
        ready_check: Optional[Dict[str, Any]] = None,
        disk_mb: Optional[int] = None,
        vcpus: Optional[int] = None,
        memory_mb: Optional[int] = None,
        snapshot: Optional[bool] = None,
        on_log: Optional[Callable[[str], Any]] = None,
        on_progress: Optional[Callable[[Dict[str, Any]], Any]] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Builds a template (cached by content: an unchanged spec is not built again) and returns
        a :class:`TemplateBuildResult` once it is ready; ``on_log`` gets each build log line,
        ``on_progress`` each step ``{"step", "total", "name"}``. ``files`` entries are
        ``{"path", "content" (str or bytes), "mode"}``.

        Example::

            result = Template.build("team/web:stable", packages=["jq"],
                                    start_cmd="python3 -m http.server 8000", ready_check={"port": 8000})
            print(result.template.id, result.cached)
        """
        started = yield from _json(Request("POST", "/v1/templates", json=_template_body(locals())))
        if started.get("cached"):
            return TemplateBuildResult.from_dict({"template": started["template"], "cached": True})
        path = f"/v1/templates/{seg(started['build_id'])}/logs"
        stream = yield Open(Request("GET", path, query=[("follow", "true")], timeout=0))
        if isinstance(stream, p.Response):
            p.raise_for_status(stream)
        buf = b""
        while True:
            data = yield Read(stream)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                e = json.loads(line)
                t = e.get("type")
                if t == "step" and on_progress is not None:
                    yield p.Callback(on_progress, ({"step": e["step"], "total": e["total"], "name": e["name"]},))
                elif t == "log" and on_log is not None:
                    yield p.Callback(on_log, (e["line"],))
                elif t == "done":
                    return TemplateBuildResult.from_dict({"template": e["template"], "cached": False})
                elif t == "error":
                    err = e.get("error") or {}
                    raise error_from_code(err.get("code"), err.get("message", "template build failed"))
        # The stream ended without an outcome (the server restarted): what the server knows now.
        now = yield from _json(Request("GET", f"/v1/templates/{seg(started['build_id'])}"))
        if now.get("status") == "ready":
            return TemplateBuildResult.from_dict({"template": now, "cached": False})
        raise error_from_code("internal", now.get("error") or f"the build of {name} ended without a result")

    @cls_op_iter
    def follow(
        cls,
        client: Any,
        ref_or_id: str,
        *,
        follow: bool = True,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A build's events as the wire sends them (``step``, ``log``, then ``done`` or ``error``)."""
        yield from _ndjson(f"/v1/templates/{seg(ref_or_id)}/logs", follow)

    @cls_op
    def list(
        cls, client: Any, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Every template build."""
        wire = yield from _json(Request("GET", "/v1/templates"))
        return [TemplateInfo.from_dict(t) for t in wire["items"]]

    @cls_op
    def get(
        cls,
        client: Any,
        ref_or_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A template by ``name[:tag]`` or build id."""
        wire = yield from _json(Request("GET", f"/v1/templates/{seg(ref_or_id)}"))
        return TemplateInfo.from_dict(wire)

    @cls_op
    def delete(
        cls, client: Any, ref: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Deletes ``name[:tag]`` (the build too once no tag names it)."""
        wire = yield from _json(Request("DELETE", f"/v1/templates/{seg(ref)}"))
        return TemplateInfo.from_dict(wire)


class WarmPoolOps:
    @cls_op
    def create(
        cls,
        client: Any,
        *,
        size: int,
        template: Optional[str] = None,
        vcpus: Optional[int] = None,
        memory_mb: Optional[int] = None,
        disk_mb: Optional[int] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a warm pool of ``size`` ready machines of ``template``.

        Example::

            pool = WarmPool.create(template="team/web:stable", size=3)
            m = Machine.create(template="team/web:stable", warm_pool=pool.id, warm_pool_mode="prefer")
        """
        body = {"template": template, "size": size, "vcpus": vcpus, "memory_mb": memory_mb, "disk_mb": disk_mb}
        wire = yield from _json(Request("POST", "/v1/warm_pools", json=body))
        return WarmPoolInfo.from_dict(wire)

    @cls_op
    def list(
        cls, client: Any, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Every warm pool."""
        wire = yield from _json(Request("GET", "/v1/warm_pools"))
        return [WarmPoolInfo.from_dict(x) for x in wire["items"]]

    @cls_op
    def get(
        cls, client: Any, pool_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """One warm pool."""
        wire = yield from _json(Request("GET", f"/v1/warm_pools/{seg(pool_id)}"))
        return WarmPoolInfo.from_dict(wire)

    @cls_op
    def delete(
        cls, client: Any, pool_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Deletes a pool and the machines waiting in it."""
        wire = yield from _json(Request("DELETE", f"/v1/warm_pools/{seg(pool_id)}"))
        return WarmPoolInfo.from_dict(wire)


class VolumeOps:
    @cls_op
    def create(
        cls,
        client: Any,
        name: str,
        *,
        size_mb: Optional[int] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a volume (``name`` unique on the server).

        Example::

            vol = Volume.create("datasets", size_mb=2048)
        """
        wire = yield from _json(Request("POST", "/v1/volumes", json={"name": name, "size_mb": size_mb}))
        return VolumeInfo.from_dict(wire)

    @cls_op
    def list(
        cls, client: Any, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Every volume."""
        wire = yield from _json(Request("GET", "/v1/volumes"))
        return [VolumeInfo.from_dict(v) for v in wire["items"]]

    @cls_op
    def get(
        cls, client: Any, volume: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """One volume by id or name."""
        wire = yield from _json(Request("GET", f"/v1/volumes/{seg(volume)}"))
        return VolumeInfo.from_dict(wire)

    @cls_op
    def delete(
        cls, client: Any, volume: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Deletes a volume and its data (refused while a live machine has it attached)."""
        wire = yield from _json(Request("DELETE", f"/v1/volumes/{seg(volume)}"))
        return VolumeInfo.from_dict(wire)


class SnapshotOps:
    @cls_op
    def list(
        cls,
        client: Any,
        *,
        machine_id: Optional[str] = None,
        kind: Optional[str] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Snapshots, newest first, optionally of one machine or one kind."""
        q = [(k, v) for k, v in (("machine_id", machine_id), ("kind", kind)) if v is not None]
        wire = yield from _json(Request("GET", "/v1/snapshots", query=q))
        return [SnapshotInfo.from_dict(s) for s in wire["items"]]

    @cls_op
    def get(
        cls, client: Any, snapshot_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """One snapshot."""
        wire = yield from _json(Request("GET", f"/v1/snapshots/{seg(snapshot_id)}"))
        return SnapshotInfo.from_dict(wire)

    @cls_op
    def delete(
        cls, client: Any, snapshot_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Deletes a snapshot and its files."""
        wire = yield from _json(Request("DELETE", f"/v1/snapshots/{seg(snapshot_id)}"))
        return SnapshotInfo.from_dict(wire)
