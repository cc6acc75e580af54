"""Machine lifecycle: create, connect, resume, list, inspect, kill, pause, hibernate, snapshot,
fork, timeouts, ``run_once``, and the paginator of ``Machine.list``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .._protocol import Call, Request, machine_path, seg
from ..errors import NotFoundError, NullspaceError, error_from_code
from ..models import MachineInfo, MachineMetrics, MachineQuery, SnapshotInfo
from ._base import Gen, _json, _plus, cls_op, op
from .commands import _run
from .volumes import _mount_dict


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
        if query.tenant is not None:
            q.append(("tenant", query.tenant))
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


def _get_info(machine_id: str, fields: Optional[Sequence[str]], timeout: Optional[float]) -> Gen:
    q = None if fields is None else [("fields", ",".join(fields))]
    wire = yield from _json(Request("GET", machine_path(machine_id), query=q, timeout=timeout))
    return wire if fields is not None else MachineInfo.from_dict(wire)


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
