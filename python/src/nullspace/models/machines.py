"""Machines: info (network, volumes, warm-pool checkout), metrics, snapshots, lifecycle events,
and the inputs of ``Machine.list`` and ``Machine.create(volumes=)``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ._base import Model, _extra


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
    tenant: Optional[str] = None
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
    #: Only this tenant's machines (the operator's view; a tenant's key sees only its own anyway).
    tenant: Optional[str] = None


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
