"""Processes: command results, process info and kept logs, output chunks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ._base import Model, _extra


@dataclass
class CommandResult(Model):
    """The outcome of a command. A non-zero ``exit_code`` is a result, not an error."""

    pid: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: Optional[int] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class ProcessInfo(Model):
    """A process started through the API (a command or a terminal)."""

    _times: ClassVar[Tuple[str, ...]] = ("started_at", "ended_at")
    pid: Optional[int] = None
    tag: Optional[str] = None
    kind: Optional[str] = None
    cmd: Optional[str] = None
    args: Optional[List[str]] = None
    cwd: Optional[str] = None
    running: Optional[bool] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    timed_out: Optional[bool] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    output_bytes: Optional[int] = None
    stdin_open: Optional[bool] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class ProcessLogs(Model):
    """A process's kept output from ``offset``; ``truncated`` when older output was dropped."""

    _nested: ClassVar[Dict[str, Any]] = {"process": ProcessInfo}
    process: Optional[ProcessInfo] = None
    offset: Optional[int] = None
    next_offset: Optional[int] = None
    truncated: Optional[bool] = None
    dropped_bytes: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    extra: Dict[str, Any] = _extra()


@dataclass
class OutputChunk:
    """One piece of a process's output, as iterating a command handle yields it: ``stream`` is
    ``"stdout"`` or ``"stderr"``, ``data`` the exact bytes, ``text`` them decoded (a UTF-8
    character split across chunks is kept whole)."""

    stream: str
    data: bytes
    text: str
