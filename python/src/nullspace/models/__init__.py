"""What the API returns, as dataclasses with the wire's own snake_case names.

Every model is built with ``from_dict`` (timestamps become aware ``datetime`` objects, nested
objects their own models) and keeps the fields it does not know in ``extra``, so a newer server's
additions are readable as attributes (``info.some_new_field``) and survive ``to_dict()``.

Example::

    info = MachineInfo.from_dict({"id": "mch_a", "status": "running", "future_field": 1})
    assert info.status == "running" and info.future_field == 1
    assert info.to_dict()["future_field"] == 1

One module per namespace, like ``_ops``; every model is importable from ``nullspace.models``.
"""

from ._base import Model, format_time, parse_time
from .machines import (
    EgressInfo,
    LifecycleEvent,
    LifecycleEventsPage,
    MachineInfo,
    MachineMetrics,
    MachineQuery,
    MetricsReading,
    NetworkInfo,
    SnapshotInfo,
    VolumeAttachment,
    VolumeHealth,
    VolumeMount,
    WarmPoolCheckout,
)
from .code import CodeArtifact, CodeContext, CodeResult, Execution, ExecutionError, InstallResult, Logs
from .commands import CommandResult, OutputChunk, ProcessInfo, ProcessLogs
from .files import (
    FileEntry,
    FileList,
    ReplaceResult,
    SearchMatch,
    SearchResult,
    SignedFileUrl,
    WatchEvent,
)
from .networking import (
    PreviewGrant,
    PreviewProxyTarget,
    PreviewReadiness,
    PreviewRevocation,
    PreviewUrl,
    SshAccess,
)
from .resources import ApiKeyInfo, CreatedApiKey, TemplateBuildResult, TemplateInfo, VolumeInfo, WarmPoolInfo
from .git import GitBranch, GitBranches, GitFileStatus, GitStatus
from .desktop import CursorPosition, DesktopWindow, Recording, ScreenSize, StreamUrl

__all__ = [
    "CodeArtifact",
    "CodeContext",
    "CodeResult",
    "Execution",
    "ExecutionError",
    "InstallResult",
    "Logs",
    "CommandResult",
    "CursorPosition",
    "DesktopWindow",
    "Recording",
    "ScreenSize",
    "StreamUrl",
    "EgressInfo",
    "FileEntry",
    "FileList",
    "GitBranch",
    "GitBranches",
    "GitFileStatus",
    "GitStatus",
    "LifecycleEvent",
    "LifecycleEventsPage",
    "MachineInfo",
    "MachineMetrics",
    "MachineQuery",
    "MetricsReading",
    "Model",
    "NetworkInfo",
    "OutputChunk",
    "PreviewGrant",
    "PreviewProxyTarget",
    "PreviewReadiness",
    "PreviewRevocation",
    "PreviewUrl",
    "ProcessInfo",
    "ProcessLogs",
    "ReplaceResult",
    "SearchMatch",
    "SearchResult",
    "SignedFileUrl",
    "SnapshotInfo",
    "SshAccess",
    "TemplateBuildResult",
    "TemplateInfo",
    "VolumeAttachment",
    "VolumeHealth",
    "VolumeInfo",
    "ApiKeyInfo",
    "CreatedApiKey",
    "VolumeMount",
    "WarmPoolCheckout",
    "WarmPoolInfo",
    "WatchEvent",
    "format_time",
    "parse_time",
]
