"""A machine's networking helpers: its egress policy, preview URLs and grants, the preview proxy
target, SSH access, and the machine-level signed file URLs."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .._protocol import Request, machine_path, ms, seg
from ..models import (
    MachineInfo,
    PreviewGrant,
    PreviewProxyTarget,
    PreviewReadiness,
    PreviewRevocation,
    PreviewUrl,
    SshAccess,
)
from ._base import Gen, _invalid, _json, _plus, op
from .files import _signed_url


class MachineNetworkOps:
    """Networking helpers of ``Machine`` / ``AsyncMachine``: ``self.id``, ``self._client``."""

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
