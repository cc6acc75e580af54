"""Server-wide resources: volumes, templates and their builds, warm pools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ._base import Model, _extra
from .machines import VolumeAttachment


@dataclass
class VolumeInfo(Model):
    """A volume: durable storage outside every machine (``vol_...``); ``attachments`` say where it
    is mounted now (``id``, ``machine_id``, ``mount_path``, ``read_only``, ``subpath``)."""

    _nested: ClassVar[Dict[str, Any]] = {"attachments": [VolumeAttachment]}
    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    name: Optional[str] = None
    size_mb: Optional[int] = None
    used_bytes: Optional[int] = None
    created_at: Optional[datetime] = None
    attachments: Optional[List[VolumeAttachment]] = None
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


@dataclass
class ApiKeyInfo(Model):
    """A tenant's API key as listed (``key_...``): never the key itself, only its last 4
    characters (``hint``)."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    tenant: Optional[str] = None
    name: Optional[str] = None
    hint: Optional[str] = None
    created_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class CreatedApiKey(Model):
    """A key just made: ``key`` is in this answer only (the server keeps its SHA-256)."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)
    id: Optional[str] = None
    key: Optional[str] = None
    tenant: Optional[str] = None
    name: Optional[str] = None
    created_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()
