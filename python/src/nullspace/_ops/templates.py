"""What machines start from: templates (built from a spec, with streamed logs), warm pools of
ready machines, and snapshots."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Dict, List, Mapping, Optional

from .. import _protocol as p
from .._protocol import Emit, Open, Read, Request, seg
from ..errors import error_from_code
from ..models import SnapshotInfo, TemplateBuildResult, TemplateInfo, WarmPoolInfo
from ._base import Gen, _json, cls_op, cls_op_iter


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
