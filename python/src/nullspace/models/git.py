"""Git: parsed ``status`` and ``branch`` output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from ._base import Model, _extra


@dataclass
class GitFileStatus(Model):
    """One changed path: its state in the index and in the work tree."""

    path: Optional[str] = None
    orig_path: Optional[str] = None
    index: Optional[str] = None
    worktree: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class GitStatus(Model):
    """``git status --porcelain=v2 --branch``, parsed."""

    _nested: ClassVar[Dict[str, Any]] = {"files": [GitFileStatus]}
    branch: Optional[str] = None
    commit: Optional[str] = None
    upstream: Optional[str] = None
    ahead: int = 0
    behind: int = 0
    detached: bool = False
    clean: bool = True
    files: List[GitFileStatus] = field(default_factory=list)
    extra: Dict[str, Any] = _extra()


@dataclass
class GitBranch(Model):
    """A local branch."""

    name: Optional[str] = None
    current: Optional[bool] = None
    upstream: Optional[str] = None
    commit: Optional[str] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class GitBranches(Model):
    """The local branches and the current one (None when HEAD is detached)."""

    _nested: ClassVar[Dict[str, Any]] = {"branches": [GitBranch]}
    current: Optional[str] = None
    branches: List[GitBranch] = field(default_factory=list)
    extra: Dict[str, Any] = _extra()
