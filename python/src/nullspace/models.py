"""What the API returns, as dataclasses with the wire's own snake_case names.

Every model is built with ``from_dict`` (timestamps become aware ``datetime`` objects, nested
objects their own models) and keeps the fields it does not know in ``extra``, so a newer server's
additions are readable as attributes (``info.some_new_field``) and survive ``to_dict()``.

Example::

    info = MachineInfo.from_dict({"id": "mch_a", "status": "running", "future_field": 1})
    assert info.status == "running" and info.future_field == 1
    assert info.to_dict()["future_field"] == 1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple, Type, TypeVar

M = TypeVar("M", bound="Model")


def parse_time(value: Any) -> Any:
    """An ISO 8601 timestamp from the wire (``2026-01-02T03:04:05.678Z``) as an aware datetime;
    anything else is returned as it is."""
    if not isinstance(value, str):
        return value
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return value


def format_time(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return value


class Model:
    """Base of every model: ``from_dict`` / ``to_dict`` and unknown fields kept in ``extra``."""

    #: Fields holding another model (or a list of them: ``[Model]``).
    _nested: ClassVar[Dict[str, Any]] = {}
    #: Fields holding timestamps.
    _times: ClassVar[Tuple[str, ...]] = ()

    extra: Dict[str, Any]

    @classmethod
    def from_dict(cls: Type[M], data: Mapping[str, Any]) -> M:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in data.items():
            if key in names and key != "extra":
                known[key] = _from_wire(cls, key, value)
            else:
                extra[key] = value
        obj = cls(**known)
        obj.extra = extra
        return obj

    def to_dict(self) -> Dict[str, Any]:
        """The wire's JSON shape (what the HTTP API returned), unknown fields included."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            out[f.name] = _to_wire(getattr(self, f.name))
        out.update(self.__dict__.get("extra") or {})
        return out

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")


def _from_wire(cls: Type[Model], key: str, value: Any) -> Any:
    if key in cls._times:
        return parse_time(value)
    nested = cls._nested.get(key)
    if nested is None or value is None:
        return value
    if isinstance(nested, list):
        inner: Type[Model] = nested[0]
        return [inner.from_dict(v) if isinstance(v, Mapping) else v for v in value]
    return nested.from_dict(value) if isinstance(value, Mapping) else value


def _to_wire(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return format_time(value)


def _extra() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


# ---- machines ------------------------------------------------------------------------------------


@dataclass
class EgressInfo(Model):
    """The egress policy in force: ``mode`` (``allow_all`` | ``deny_all`` | ``custom``), canonical
    CIDR lists, and ``rate_limit`` (``{"kbit_per_sec" | "pps": n, "burst": n}``) or None."""

    mode: Optional[str] = None
    allow_cidrs: Optional[List[str]] = None
    deny_cidrs: Optional[List[str]] = None
    rate_limit: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class NetworkInfo(Model):
    """``network`` of machine info: the policy in force and the machine's address."""

    _nested: ClassVar[Dict[str, Any]] = {"egress": EgressInfo}
    egress: Optional[EgressInfo] = None
    internet_access: Optional[bool] = None
    mask_request_host: Optional[str] = None
    address: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class WarmPoolCheckout(Model):
    """What happened at create time when a warm pool was asked for."""

    pool_id: Optional[str] = None
    waited_ms: Optional[int] = None
    hit: Optional[bool] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class VolumeHealth(Model):
    """The last health check of a volume attachment."""

    _times: ClassVar[Tuple[str, ...]] = ("checked_at",)
    attachment_id: Optional[str] = None
    healthy: Optional[bool] = None
    reason: Optional[str] = None
    checked_at: Optional[datetime] = None
    observed: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class VolumeAttachment(Model):
    """One volume mounted into one machine (``vat_...``)."""

    _nested: ClassVar[Dict[str, Any]] = {"health": VolumeHealth}
    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    volume_id: Optional[str] = None
    volume_name: Optional[str] = None
    machine_id: Optional[str] = None
    mount_path: Optional[str] = None
    read_only: Optional[bool] = None
    subpath: Optional[str] = None
    created_at: Optional[datetime] = None
    health: Optional[VolumeHealth] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class MachineInfo(Model):
    """Everything the server says about a machine. Timestamps are aware datetimes; ``envs`` holds
    the names only; ``metadata`` keys are kept exactly as given."""

    _nested: ClassVar[Dict[str, Any]] = {
        "network": NetworkInfo,
        "warm_pool_checkout": WarmPoolCheckout,
        "volumes": [VolumeAttachment],
    }
    _times: ClassVar[Tuple[str, ...]] = ("expires_at", "created_at", "started_at")
    id: Optional[str] = None
    execution_id: Optional[str] = None
    status: Optional[str] = None
    template: Optional[str] = None
    snapshot_id: Optional[str] = None
    vcpus: Optional[int] = None
    memory_mb: Optional[int] = None
    disk_mb: Optional[int] = None
    cwd: Optional[str] = None
    envs: Optional[List[str]] = None
    metadata: Optional[Dict[str, str]] = None
    network: Optional[NetworkInfo] = None
    timeout: Optional[int] = None
    on_timeout: Optional[str] = None
    auto_resume: Optional[bool] = None
    expires_at: Optional[datetime] = None
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    warm_pool_checkout: Optional[WarmPoolCheckout] = None
    volumes: Optional[List[VolumeAttachment]] = None
    status_reason: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class MetricsReading(Model):
    """One reading of a machine's counters (totals since its execution started)."""

    _times: ClassVar[Tuple[str, ...]] = ("at",)
    at: Optional[datetime] = None
    cpu_seconds: Optional[float] = None
    memory_bytes: Optional[int] = None
    disk_used_bytes: Optional[int] = None
    network_rx_bytes: Optional[int] = None
    network_tx_bytes: Optional[int] = None
    network_rx_packets: Optional[int] = None
    network_tx_packets: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class MachineMetrics(MetricsReading):
    """A machine's metrics now, its limits and recent ``samples`` (oldest first)."""

    _nested: ClassVar[Dict[str, Any]] = {"samples": [MetricsReading]}
    machine_id: Optional[str] = None
    status: Optional[str] = None
    cpu_percent: Optional[float] = None
    vcpus: Optional[int] = None
    memory_limit_bytes: Optional[int] = None
    disk_total_bytes: Optional[int] = None
    samples: Optional[List[MetricsReading]] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class SnapshotInfo(Model):
    """A snapshot: kind ``pause`` (made by pause/hibernate) or ``reusable`` (``create_snapshot``)."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    kind: Optional[str] = None
    machine_id: Optional[str] = None
    template: Optional[str] = None
    vcpus: Optional[int] = None
    memory_mb: Optional[int] = None
    disk_mb: Optional[int] = None
    size_bytes: Optional[int] = None
    paused_ms: Optional[int] = None
    created_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class LifecycleEvent(Model):
    """One lifecycle event of a machine; ``id`` increases strictly across the server."""

    _times: ClassVar[Tuple[str, ...]] = ("at",)
    id: Optional[int] = None
    machine_id: Optional[str] = None
    execution_id: Optional[str] = None
    type: Optional[str] = None
    status: Optional[str] = None
    previous_status: Optional[str] = None
    reason: Optional[str] = None
    data: Optional[Dict[str, Any]] = None
    at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class LifecycleEventsPage(Model):
    """One page of ``list_events``: ``events`` oldest first and where to go on from."""

    _nested: ClassVar[Dict[str, Any]] = {"events": [LifecycleEvent]}
    events: Optional[List[LifecycleEvent]] = None
    last_event_id: Optional[int] = None
    extra: Dict[str, Any] = _extra()


# ---- commands ------------------------------------------------------------------------------------


@dataclass
class CommandResult(Model):
    """The outcome of a command. A non-zero ``exit_code`` is a result, not an error."""

    pid: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class ProcessInfo(Model):
    """A process started through the API (a command or a terminal)."""

    _times: ClassVar[Tuple[str, ...]] = ("started_at", "ended_at")
    pid: Optional[int] = None
    tag: Optional[str] = None
    kind: Optional[str] = None
    cmd: Optional[str] = None
    args: Optional[List[str]] = None
    cwd: Optional[str] = None
    running: Optional[bool] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    timed_out: Optional[bool] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    output_bytes: Optional[int] = None
    stdin_open: Optional[bool] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class ProcessLogs(Model):
    """A process's kept output from ``offset``; ``truncated`` when older output was dropped."""

    _nested: ClassVar[Dict[str, Any]] = {"process": ProcessInfo}
    process: Optional[ProcessInfo] = None
    offset: Optional[int] = None
    next_offset: Optional[int] = None
    truncated: Optional[bool] = None
    dropped_bytes: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    extra: Dict[str, Any] = _extra()


@dataclass
class OutputChunk:
    """One piece of a process's output, as iterating a command handle yields it: ``stream`` is
    ``"stdout"`` or ``"stderr"``, ``data`` the exact bytes, ``text`` them decoded (a UTF-8
    character split across chunks is kept whole)."""

    stream: str
    data: bytes
    text: str


# ---- files ---------------------------------------------------------------------------------------


@dataclass
class FileEntry(Model):
    """A file, directory or symlink (``type``); ``mode`` is octal text such as ``"644"``."""

    _times: ClassVar[Tuple[str, ...]] = ("mtime",)
    name: Optional[str] = None
    path: Optional[str] = None
    type: Optional[str] = None
    size: Optional[int] = None
    mode: Optional[str] = None
    mtime: Optional[datetime] = None
    symlink_target: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class FileList(Model):
    """``files.list``: the entries and whether the listing was cut (past 100 000)."""

    _nested: ClassVar[Dict[str, Any]] = {"entries": [FileEntry]}
    entries: Optional[List[FileEntry]] = None
    truncated: Optional[bool] = None
    extra: Dict[str, Any] = _extra()

    def __iter__(self) -> Iterator[FileEntry]:
        return iter(self.entries or [])

    def __len__(self) -> int:
        return len(self.entries or [])


@dataclass
class SearchMatch(Model):
    """A content match: 1-based ``line`` and ``column``, the whole line in ``text``."""

    path: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None
    text: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class SearchResult(Model):
    """What ``files.search`` found; ``truncated`` when ``max_results`` was reached."""

    _nested: ClassVar[Dict[str, Any]] = {"matches": [SearchMatch]}
    matches: Optional[List[SearchMatch]] = None
    truncated: Optional[bool] = None
    files_scanned: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class ReplaceResult(Model):
    """What ``files.replace`` changed: per file ``{"path", "replacements"}`` and totals."""

    files: Optional[List[Dict[str, Any]]] = None
    total_replacements: Optional[int] = None
    files_changed: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class WatchEvent(Model):
    """A change a watch saw: ``type`` create | write | remove | rename (with ``from``/``to``)."""

    _times: ClassVar[Tuple[str, ...]] = ("at",)
    id: Optional[int] = None
    type: Optional[str] = None
    path: Optional[str] = None
    is_dir: Optional[bool] = None
    at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()

    @property
    def from_path(self) -> Optional[str]:
        """A rename's old path (``from`` on the wire)."""
        return self.extra.get("from")

    @property
    def to_path(self) -> Optional[str]:
        """A rename's new path (``to`` on the wire)."""
        return self.extra.get("to")


@dataclass
class SignedFileUrl(Model):
    """A URL that reads (GET) or writes (PUT) one file without an API key."""

    _times: ClassVar[Tuple[str, ...]] = ("expires_at",)
    url: Optional[str] = None
    op: Optional[str] = None
    path: Optional[str] = None
    expires_at: Optional[datetime] = None
    method: Optional[str] = None
    extra: Dict[str, Any] = _extra()


# ---- networking ----------------------------------------------------------------------------------


@dataclass
class PreviewGrant(Model):
    """A preview grant (``pvg_...``): a signed, revocable permission to reach one port."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at", "expires_at", "revoked_at")
    id: Optional[str] = None
    machine_id: Optional[str] = None
    port: Optional[int] = None
    kind: Optional[str] = None
    token_hint: Optional[str] = None
    created_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class PreviewUrl(PreviewGrant):
    """A new grant with its signed ``url`` and ``websocket_url`` (treat both as secrets)."""

    host: Optional[str] = None
    token: Optional[str] = None
    url: Optional[str] = None
    websocket_url: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class PreviewProxyTarget(PreviewGrant):
    """Upstream URLs with no secret in them, and the header your proxy adds."""

    upstream_url: Optional[str] = None
    websocket_upstream_url: Optional[str] = None
    headers: Optional[Dict[str, str]] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class PreviewRevocation(Model):
    """What ``revoke_preview_url`` did."""

    _times: ClassVar[Tuple[str, ...]] = ("revoked_at",)
    id: Optional[str] = None
    machine_id: Optional[str] = None
    port: Optional[int] = None
    revoked: Optional[bool] = None
    revoked_at: Optional[datetime] = None
    closed_connections: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class PreviewReadiness(Model):
    """What ``wait_for_preview`` saw: the port accepts connections."""

    machine_id: Optional[str] = None
    port: Optional[int] = None
    ready: Optional[bool] = None
    waited_ms: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class SshAccess(Model):
    """Short-lived SSH access: an OpenSSH user certificate and where the relay listens."""

    _times: ClassVar[Tuple[str, ...]] = ("valid_after", "expires_at")
    machine_id: Optional[str] = None
    user: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None
    certificate: Optional[str] = None
    certificate_id: Optional[str] = None
    valid_after: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    known_hosts: Optional[str] = None
    command: Optional[str] = None
    extra: Dict[str, Any] = _extra()


# ---- volumes, templates, pools -------------------------------------------------------------------


@dataclass
class VolumeInfo(Model):
    """A volume: durable storage outside every machine (``vol_...``)."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    name: Optional[str] = None
    size_mb: Optional[int] = None
    used_bytes: Optional[int] = None
    created_at: Optional[datetime] = None
    attachments: Optional[List[Dict[str, Any]]] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class TemplateInfo(Model):
    """A template build: its names, status, spec summary and size."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at", "finished_at")
    id: Optional[str] = None
    names: Optional[List[str]] = None
    status: Optional[str] = None
    key: Optional[str] = None
    base: Optional[str] = None
    packages: Optional[List[str]] = None
    env: Optional[List[str]] = None
    workdir: Optional[str] = None
    start_cmd: Optional[str] = None
    ready_check: Optional[Dict[str, Any]] = None
    disk_mb: Optional[int] = None
    vcpus: Optional[int] = None
    memory_mb: Optional[int] = None
    snapshot_backed: Optional[bool] = None
    snapshot_id: Optional[str] = None
    size_bytes: Optional[int] = None
    error: Optional[str] = None
    created_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    build_ms: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class TemplateBuildResult(Model):
    """``Template.build``'s answer: the template, and whether the same spec was built before."""

    _nested: ClassVar[Dict[str, Any]] = {"template": TemplateInfo}
    template: Optional[TemplateInfo] = None
    cached: Optional[bool] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class WarmPoolInfo(Model):
    """A warm pool (``twp_...``): size, ready machines, hits and checkout latency."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    template: Optional[str] = None
    vcpus: Optional[int] = None
    memory_mb: Optional[int] = None
    disk_mb: Optional[int] = None
    size: Optional[int] = None
    ready: Optional[int] = None
    starting: Optional[int] = None
    hits: Optional[int] = None
    misses: Optional[int] = None
    hit_rate: Optional[float] = None
    checkout_ms: Optional[Dict[str, Any]] = None
    last_error: Optional[str] = None
    created_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


# ---- git -----------------------------------------------------------------------------------------


@dataclass
class GitFileStatus(Model):
    """One changed path: its state in the index and in the work tree."""

    path: Optional[str] = None
    orig_path: Optional[str] = None
    index: Optional[str] = None
    worktree: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class GitStatus(Model):
    """``git status --porcelain=v2 --branch``, parsed."""

    _nested: ClassVar[Dict[str, Any]] = {"files": [GitFileStatus]}
    branch: Optional[str] = None
    commit: Optional[str] = None
    upstream: Optional[str] = None
    ahead: int = 0
    behind: int = 0
    detached: bool = False
    clean: bool = True
    files: List[GitFileStatus] = field(default_factory=list)
    extra: Dict[str, Any] = _extra()


@dataclass
class GitBranch(Model):
    """A local branch."""

    name: Optional[str] = None
    current: Optional[bool] = None
    upstream: Optional[str] = None
    commit: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class GitBranches(Model):
    """The local branches and the current one (None when HEAD is detached)."""

    _nested: ClassVar[Dict[str, Any]] = {"branches": [GitBranch]}
    current: Optional[str] = None
    branches: List[GitBranch] = field(default_factory=list)
    extra: Dict[str, Any] = _extra()


# ---- inputs --------------------------------------------------------------------------------------


@dataclass
class MachineQuery:
    """Filters of ``Machine.list``; every given filter must match. ``state`` is one state or a
    list (any of them matches).

    Example::

        page = Machine.list(query=MachineQuery(state=["running", "paused"], metadata={"project": "docs"}))
    """

    state: Any = None
    template: Optional[str] = None
    metadata: Optional[Dict[str, str]] = None


@dataclass
class VolumeMount:
    """A volume to mount: at create (``Machine.create(volumes=[...])``) or with
    ``machine.attach_volume(mount)``. ``volume`` is an id (``vol_...``) or a name.

    Example::

        Machine.create(volumes=[VolumeMount("datasets", "/data", read_only=True)])
    """

    volume: str
    mount_path: str
    read_only: Optional[bool] = None
    subpath: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"volume": self.volume, "mount_path": self.mount_path}
        if self.read_only is not None:
            out["read_only"] = self.read_only
        if self.subpath is not None:
            out["subpath"] = self.subpath
        return out
