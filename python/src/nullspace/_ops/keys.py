"""Tenants' API keys (docs/tenants.md): created, listed and revoked with the operator's key."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .._protocol import Request, seg
from ..models import ApiKeyInfo, CreatedApiKey
from ._base import Gen, _json, cls_op


class ApiKeyOps:
    @cls_op
    def create(
        cls,
        client: Any,
        tenant: str,
        *,
        name: Optional[str] = None,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a key for ``tenant``; the answer's ``key`` is shown only this once.

        Example::

            created = ApiKey.create("acme", name="ci")
            acme = Machine.create(api_key=created.key)  # sees only acme's machines
        """
        body: Dict[str, Any] = {"tenant": tenant}
        if name is not None:
            body["name"] = name
        wire = yield from _json(Request("POST", "/v1/keys", json=body))
        return CreatedApiKey.from_dict(wire)

    @cls_op
    def list(
        cls, client: Any, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """The keys not revoked, oldest first (never the keys themselves)."""
        wire = yield from _json(Request("GET", "/v1/keys"))
        return [ApiKeyInfo.from_dict(k) for k in wire["items"]]

    @cls_op
    def revoke(
        cls, client: Any, id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
    ) -> Gen:
        """Revokes a key (``key_...``): refused from now on, its open streams and WebSockets closed."""
        wire = yield from _json(Request("DELETE", f"/v1/keys/{seg(id)}"))
        return ApiKeyInfo.from_dict(wire)
