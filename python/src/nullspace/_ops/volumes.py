"""Volumes: the server's ``Volume`` resource and a machine's attachments of them."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .._protocol import Request, machine_path, seg
from ..models import VolumeAttachment, VolumeHealth, VolumeInfo, VolumeMount
from ._base import Gen, _invalid, _json, cls_op, op


def _mount_dict(v: Any) -> Dict[str, Any]:
    if isinstance(v, VolumeMount):
        return v.to_dict()
    if isinstance(v, Mapping):
        return dict(v)
    raise _invalid("volumes", "each entry must be a VolumeMount or a dict {volume, mount_path, ...}")


class MachineVolumeOps:
    """A machine's volume attachments: ``self.id``, ``self._client``."""

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
        """Creates a volume (``name`` unique among the key's tenant's volumes).

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
