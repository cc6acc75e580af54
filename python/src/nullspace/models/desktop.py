"""The desktop: screen size and pointer position (named tuples), windows, viewer URLs and
recordings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, NamedTuple, Optional, Tuple

from ._base import Model, _extra


class ScreenSize(NamedTuple):
    """``desktop.get_screen_size()``: ``(width, height)`` in pixels."""

    width: int
    height: int


class CursorPosition(NamedTuple):
    """``desktop.get_cursor_position()``: ``(x, y)`` in pixels from the top-left corner."""

    x: int
    y: int


@dataclass
class DesktopWindow(Model):
    """A window on the desktop: its X window ``id``, ``title``, ``app`` (its WM_CLASS), ``pid``,
    geometry and whether it has the focus."""

    id: Optional[int] = None
    title: Optional[str] = None
    app: Optional[str] = None
    pid: Optional[int] = None
    x: Optional[int] = None
    y: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    focused: Optional[bool] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class StreamUrl(Model):
    """A signed viewer URL: an ordinary preview grant (``grant_id``) of the viewer's port."""

    _times: ClassVar[Tuple[str, ...]] = ("expires_at",)
    url: Optional[str] = None
    view_only: Optional[bool] = None
    grant_id: Optional[str] = None
    expires_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class Recording(Model):
    """A screen recording (H.264, fragmented MP4) kept in the machine."""

    _times: ClassVar[Tuple[str, ...]] = ("started_at", "stopped_at")
    id: Optional[str] = None
    status: Optional[str] = None
    fps: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    size_bytes: Optional[int] = None
    error: Optional[str] = None
    extra: Dict[str, Any] = _extra()
