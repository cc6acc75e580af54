"""The Nullspace Python SDK: machines (isolated Linux environments) over the HTTP API, sync and
async, standard library only.

Example::

    from nullspace import Machine

    with Machine.create(template="base", timeout=300) as machine:
        result = machine.commands.run("python3 --version", shell=True)
        print(machine.id, result.stdout.strip())

``NULLSPACE_API_URL`` (default ``http://127.0.0.1:7070``) and ``NULLSPACE_API_KEY`` say where the
server is; every class method also takes ``api_url``, ``api_key`` and ``request_timeout``
(seconds).
"""

from ._ops import ForkChild
from ._protocol import DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT, redact_preview_token, redact_preview_url
from .errors import (
    ERROR_STATUS,
    AuthenticationError,
    ConflictError,
    DesktopUnavailableError,
    DiskFullError,
    EventsExpiredError,
    GitError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    MachineNotFoundError,
    MachineTransitioningError,
    MethodNotAllowedError,
    NotFoundError,
    NullspaceError,
    NullspaceTimeoutError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    SnapshotNotFoundError,
    TemplateNotFoundError,
    UnavailableError,
    UnsupportedFeatureError,
    VolumeNotFoundError,
    WarmPoolUnavailableError,
    error_from_code,
)
from .machine import (
    AsyncCommandHandle,
    AsyncCommands,
    AsyncDesktop,
    AsyncFiles,
    AsyncGit,
    AsyncMachine,
    AsyncMachinePaginator,
    AsyncPty,
    AsyncPtyHandle,
    AsyncSnapshot,
    AsyncTemplate,
    AsyncVolume,
    AsyncWarmPool,
    CommandHandle,
    Commands,
    Desktop,
    Files,
    Git,
    Machine,
    MachinePaginator,
    Pty,
    PtyHandle,
    Snapshot,
    Template,
    Volume,
    WarmPool,
)
from .models import (
    CommandResult,
    FileEntry,
    LifecycleEvent,
    MachineInfo,
    MachineMetrics,
    MachineQuery,
    OutputChunk,
    PreviewUrl,
    ProcessInfo,
    SnapshotInfo,
    VolumeMount,
    WatchEvent,
)

#: The names the product docs use: a sandbox is a machine.
Sandbox = Machine
AsyncSandbox = AsyncMachine

__version__ = "0.1.0"

__all__ = [
    "ERROR_STATUS",
    "DEFAULT_API_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "AsyncCommandHandle",
    "AsyncCommands",
    "AsyncDesktop",
    "AsyncFiles",
    "AsyncGit",
    "AsyncMachine",
    "AsyncMachinePaginator",
    "AsyncPty",
    "AsyncPtyHandle",
    "AsyncSandbox",
    "AsyncSnapshot",
    "AsyncTemplate",
    "AsyncVolume",
    "AsyncWarmPool",
    "AuthenticationError",
    "CommandHandle",
    "CommandResult",
    "Commands",
    "ConflictError",
    "DiskFullError",
    "EventsExpiredError",
    "FileEntry",
    "Desktop",
    "DesktopUnavailableError",
    "Files",
    "ForkChild",
    "Git",
    "GitError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LifecycleEvent",
    "Machine",
    "MachineInfo",
    "MachineMetrics",
    "MachineNotFoundError",
    "MachinePaginator",
    "MachineQuery",
    "MachineTransitioningError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NullspaceError",
    "NullspaceTimeoutError",
    "OutputChunk",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreviewUrl",
    "ProcessInfo",
    "Pty",
    "PtyHandle",
    "RateLimitError",
    "Sandbox",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "Template",
    "TemplateNotFoundError",
    "UnavailableError",
    "UnsupportedFeatureError",
    "Volume",
    "VolumeMount",
    "VolumeNotFoundError",
    "WarmPool",
    "WarmPoolUnavailableError",
    "WatchEvent",
    "error_from_code",
    "redact_preview_token",
    "redact_preview_url",
]
