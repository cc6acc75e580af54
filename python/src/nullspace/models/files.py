"""Files: entries and listings, search and replace results, watch events, signed file URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Tuple

from ._base import Model, _extra


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
