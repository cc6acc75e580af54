"""``machine.files``: read, write (streamed), list, stat, move, remove, search, replace, watches
(a WebSocket that resumes after the last event, or polling) and signed file URLs."""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Optional, Union

from .. import _protocol as p
from .._protocol import Call, Emit, Open, Read, Request, Sleep, WsOpen, WsRecv, machine_path, seg
from ..errors import UnavailableError, error_from_code
from ..models import FileEntry, FileList, ReplaceResult, SearchResult, SignedFileUrl, WatchEvent
from ._base import Gen, _invalid, _json, _plus, _transient, op, op_iter


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
