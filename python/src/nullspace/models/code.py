"""The code interpreter: contexts, results, executions, artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ._base import Model, _extra


@dataclass
class CodeContext(Model):
    """A code context: its own kernel (python), Node.js ``vm`` context (javascript) or shell (bash)."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)

    id: str = ""
    language: str = "python"
    cwd: str = ""
    default: bool = False
    created_at: Optional[datetime] = None
    execution_count: int = 0
    extra: Dict[str, Any] = _extra()


@dataclass
class CodeResult(Model):
    """One result of a run, in every format the kernel displayed it in (``png`` etc. are base64)."""

    is_main_result: bool = False
    text: Optional[str] = None
    html: Optional[str] = None
    markdown: Optional[str] = None
    png: Optional[str] = None
    jpeg: Optional[str] = None
    svg: Optional[str] = None
    pdf: Optional[str] = None
    json: Any = None
    latex: Optional[str] = None
    javascript: Optional[str] = None
    artifact_ids: Optional[List[str]] = None
    extra: Dict[str, Any] = _extra()

    def formats(self) -> List[str]:
        """The formats this result carries, e.g. ``["text", "png"]``."""
        names = ("text", "html", "markdown", "png", "jpeg", "svg", "pdf", "json", "latex", "javascript")
        return [n for n in names if getattr(self, n) is not None]


@dataclass
class ExecutionError(Model):
    """The code's own error: data, never raised (``ZeroDivisionError``, ``TimeoutError``,
    ``KernelDied``, ``ExitStatus`` for bash)."""

    name: str = ""
    value: str = ""
    traceback: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = _extra()


@dataclass
class Logs:
    stdout: List[str] = field(default_factory=list)
    stderr: List[str] = field(default_factory=list)


@dataclass
class Execution:
    """One run's outcome: ``logs.stdout`` / ``logs.stderr`` (lists of chunks), ``results``,
    ``error``, ``execution_count``, and ``text`` (the main result's text).

    Example::

        ex = machine.code_interpreter.run("x = 6 * 7\\nx")
        print(ex.text, ex.execution_count)
    """

    id: str = ""
    context_id: str = ""
    language: str = "python"
    logs: Logs = field(default_factory=Logs)
    results: List[CodeResult] = field(default_factory=list)
    error: Optional[ExecutionError] = None
    execution_count: Optional[int] = None
    duration_ms: Optional[float] = None
    exit_code: Optional[int] = None
    #: Why the stream ended early (the machine was paused...); the run may go on: re-attach.
    interrupted: Optional[str] = None
    #: Events received: pass as ``after`` to re-attach.
    event_count: int = 0
    done: bool = False

    @property
    def text(self) -> Optional[str]:
        for r in self.results:
            if r.is_main_result:
                return r.text
        return None


@dataclass
class CodeArtifact(Model):
    """An image or PDF a run displayed, or a file written under the artifacts directory."""

    _times: ClassVar[Tuple[str, ...]] = ("created_at",)

    id: str = ""
    name: str = ""
    path: str = ""
    mime_type: str = ""
    size: int = 0
    execution_id: Optional[str] = None
    created_at: Optional[datetime] = None
    extra: Dict[str, Any] = _extra()


@dataclass
class InstallResult:
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0
