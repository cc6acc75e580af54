"""Networking: preview grants and URLs, revocations, readiness, proxy targets, SSH access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, Optional, Tuple

from ._base import Model, _extra


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
