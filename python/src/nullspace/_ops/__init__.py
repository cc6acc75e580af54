"""Every operation of the SDK, written once as a generator over the effects of ``_protocol``.

``machine.py`` turns each of these into a plain method of the sync classes (``Machine``,
``Commands`` ...) and a coroutine of the async ones (``AsyncMachine``, ``AsyncCommands`` ...), so
what a call sends, how it reads the answer and how it maps errors exist once.

Markers (``_base``): ``@op`` (an instance method), ``@op_iter`` (an instance method returning an
iterator), ``@cls_op`` / ``@cls_op_iter`` (class methods; they get the client resolved from
``api_url``, ``api_key`` and ``request_timeout`` as their second argument).

One module per namespace: ``machines`` (lifecycle), ``events``, ``networking``, ``volumes``,
``commands``, ``pty``, ``files``, ``git``, ``code`` (the code interpreter), ``desktop``, ``templates`` (templates, warm pools, snapshots), ``keys`` (tenants' API keys).
"""

from .code import CodeInterpreterOps
from .commands import CommandHandleOps, CommandsOps
from .desktop import DesktopOps, DesktopRecordingsOps, DesktopStreamOps
from .events import MachineEventsOps
from .files import FilesOps, FileWatchPollerOps
from .git import GitConfigOps, GitOps
from .keys import ApiKeyOps
from .machines import ForkChild, MachineOps, PaginatorOps
from .networking import MachineNetworkOps
from .pty import PtyHandleOps, PtyOps
from .templates import SnapshotOps, TemplateOps, WarmPoolOps
from .volumes import MachineVolumeOps, VolumeOps

#: Every operation class of ``Machine`` / ``AsyncMachine``, one per concern.
MACHINE_OPS = (MachineOps, MachineEventsOps, MachineNetworkOps, MachineVolumeOps)

__all__ = [
    "MACHINE_OPS",
    "ApiKeyOps",
    "CodeInterpreterOps",
    "CommandHandleOps",
    "CommandsOps",
    "DesktopOps",
    "DesktopRecordingsOps",
    "DesktopStreamOps",
    "FileWatchPollerOps",
    "FilesOps",
    "ForkChild",
    "GitConfigOps",
    "GitOps",
    "MachineEventsOps",
    "MachineNetworkOps",
    "MachineOps",
    "MachineVolumeOps",
    "PaginatorOps",
    "PtyHandleOps",
    "PtyOps",
    "SnapshotOps",
    "TemplateOps",
    "VolumeOps",
    "WarmPoolOps",
]
