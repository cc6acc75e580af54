"""The public classes, sync and async, made from the operations in ``_ops``.

Each sync class (``Machine``, ``Commands`` ...) and its async twin (``AsyncMachine``,
``AsyncCommands`` ...) get their methods from the same operation class: a sync method runs the
operation with the sync driver, an async one is a coroutine (or an async iterator) running it with
the asyncio driver. The classes themselves only hold state (ids, the client) and the Python
protocols (``with``, iteration).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional

from . import _async, _ops, _sync
from . import _protocol as p
from .errors import NotFoundError
from .models import MachineInfo, OutputChunk

# ---- making methods from operations -------------------------------------------------------------


def _sync_method(fn: Callable[..., Any], kind: str) -> Any:
    if kind == "call":

        @functools.wraps(fn)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._client.run(fn(self, *args, **kwargs))

        return call
    if kind == "iter":

        @functools.wraps(fn)
        def iterate(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            return self._client.iterate(fn(self, *args, **kwargs))

        return iterate
    if kind == "cls":

        @functools.wraps(fn)
        def cls_call(cls: Any, *args: Any, **kwargs: Any) -> Any:
            client = _sync.client_for(kwargs.get("api_url"), kwargs.get("api_key"), kwargs.get("request_timeout"))
            return client.run(fn(cls, client, *args, **kwargs))

        return classmethod(cls_call)

    @functools.wraps(fn)
    def cls_iterate(cls: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        client = _sync.client_for(kwargs.get("api_url"), kwargs.get("api_key"), kwargs.get("request_timeout"))
        return client.iterate(fn(cls, client, *args, **kwargs))

    return classmethod(cls_iterate)


def _async_method(fn: Callable[..., Any], kind: str) -> Any:
    if kind == "call":

        @functools.wraps(fn)
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await self._client.run(fn(self, *args, **kwargs))

        return call
    if kind == "iter":

        @functools.wraps(fn)
        async def iterate(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for item in self._client.iterate(fn(self, *args, **kwargs)):
                yield item

        return iterate
    if kind == "cls":

        @functools.wraps(fn)
        async def cls_call(cls: Any, *args: Any, **kwargs: Any) -> Any:
            client = _async.client_for(kwargs.get("api_url"), kwargs.get("api_key"), kwargs.get("request_timeout"))
            return await client.run(fn(cls, client, *args, **kwargs))

        return classmethod(cls_call)

    @functools.wraps(fn)
    async def cls_iterate(cls: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        client = _async.client_for(kwargs.get("api_url"), kwargs.get("api_key"), kwargs.get("request_timeout"))
        async for item in client.iterate(fn(cls, client, *args, **kwargs)):
            yield item

    return classmethod(cls_iterate)


def _install(ops: type, sync_cls: type, async_cls: type) -> None:
    """Gives both classes every operation of ``ops``."""
    for name, fn in vars(ops).items():
        kind = getattr(fn, "_op", None)
        if kind is None:
            continue
        setattr(sync_cls, name, _sync_method(fn, kind))
        setattr(async_cls, name, _async_method(fn, kind))


# ---- namespaces -----------------------------------------------------------------------------------


class _Namespace:
    def __init__(self, machine_id: str, client: Any, family: Any) -> None:
        self._machine_id = machine_id
        self._client = client
        self._family = family

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._machine_id}>"


class Commands(_Namespace):
    """``machine.commands``: run commands (foreground, streaming, background), list processes,
    read their logs, write their stdin, signal and kill them.

    Example::

        r = machine.commands.run("echo hello", shell=True)
        bg = machine.commands.run("sleep 60", background=True, tag="nap")
        machine.commands.kill("nap")
    """


class AsyncCommands(_Namespace):
    """``machine.commands`` of an :class:`AsyncMachine`; every method is a coroutine."""


class CodeInterpreter(_Namespace):
    """``machine.code_interpreter``: stateful notebook-style code execution in machines of the
    ``code-interpreter`` template — python on Jupyter kernels, javascript, bash — with contexts,
    installs, re-attach and artifacts.

    Example::

        with Machine.create(template="code-interpreter") as machine:
            machine.code_interpreter.run("x = 41")
            print(machine.code_interpreter.run("x + 1").text)  # 42
    """


class AsyncCodeInterpreter(_Namespace):
    """``machine.code_interpreter`` of an :class:`AsyncMachine`; every method is a coroutine."""


class _HandleBase:
    """State shared by command and terminal handles: the stream state and a stop flag."""

    _state: p.StreamState
    _stopped: bool

    @property
    def stdout(self) -> str:
        """Output received so far (up to 16 MiB)."""
        return self._state.out.text()

    @property
    def stderr(self) -> str:
        return self._state.err.text()

    @property
    def exit_code(self) -> Optional[int]:
        """The exit code once this handle saw the process end, else None."""
        return None if self._state.exit is None else self._state.exit.get("exit_code")

    def stream(
        self,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        on_data: Optional[Callable[[bytes, str], Any]] = None,
    ) -> Any:
        """Sets the callbacks that ``wait()`` and iteration feed (replacing earlier ones)."""
        self._state.callbacks = p.OutputCallbacks(on_stdout=on_stdout, on_stderr=on_stderr, on_data=on_data)
        return self

    def disconnect(self) -> None:
        """Stops following the output: a ``wait()`` or iteration in progress returns at the next
        message; the process goes on (attach again with ``commands.connect``)."""
        self._stopped = True


class CommandHandle(_HandleBase):
    """A process started with ``background=True`` (or attached with ``commands.connect``). The
    process does not depend on the handle. Iterating the handle yields its output
    (:class:`OutputChunk`) while it runs; ``wait()`` returns its result.

    Example::

        h = machine.commands.run("for i in 1 2 3; do echo $i; sleep 1; done", background=True)
        for chunk in h:
            print(chunk.text, end="")
        print(h.wait().exit_code)
    """

    def __init__(self, commands: Any, pid: int, tag: Optional[str], state: p.StreamState) -> None:
        self._commands = commands
        self._client = commands._client
        self.pid = pid
        self.tag = tag
        self._state = state
        self._stopped = False

    def _ws_path(self) -> str:
        return f"{p.machine_path(self._commands._machine_id)}/commands/{self.pid}/ws"

    def __iter__(self) -> Iterator[OutputChunk]:
        return self.output()  # type: ignore[attr-defined,no-any-return]

    def __repr__(self) -> str:
        return f"<CommandHandle pid={self.pid} tag={self.tag!r}>"


class AsyncCommandHandle(CommandHandle):
    """The async twin of :class:`CommandHandle`: ``await h.wait()``, ``async for chunk in h``."""

    def __iter__(self) -> Iterator[OutputChunk]:
        raise TypeError("an AsyncCommandHandle is iterated with `async for`")

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return self.output()  # type: ignore[attr-defined,no-any-return]


class Pty(_Namespace):
    """``machine.pty``: interactive terminals.

    Example::

        term = machine.pty.create(cols=80, rows=24)
        term.send_input("echo hi; exit\\r")
        print(term.wait())
    """


class AsyncPty(_Namespace):
    """``machine.pty`` of an :class:`AsyncMachine`."""


class PtyHandle(_HandleBase):
    """A terminal: ``send_input``, ``resize``, ``kill``, ``wait``, and iteration over its output."""

    def __init__(self, pty: Any, pid: int, state: p.StreamState) -> None:
        self._pty = pty
        self._client = pty._client
        self.pid = pid
        self._state = state
        self._stopped = False

    def _ws_path(self) -> str:
        return f"{p.machine_path(self._pty._machine_id)}/pty/{self.pid}/ws"

    def __iter__(self) -> Iterator[OutputChunk]:
        return self.output()  # type: ignore[attr-defined,no-any-return]


class AsyncPtyHandle(PtyHandle):
    def __iter__(self) -> Iterator[OutputChunk]:
        raise TypeError("an AsyncPtyHandle is iterated with `async for`")

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        return self.output()  # type: ignore[attr-defined,no-any-return]


class Files(_Namespace):
    """``machine.files``: read, write, list, stat, search, replace, watch, signed URLs.

    Example::

        machine.files.write("/workspace/hello.txt", "hi\\n")
        print(machine.files.read("/workspace/hello.txt"))
    """

    def mkdir(self, path: str, **kwargs: Any) -> Any:
        """The same as ``make_dir``."""
        return self.make_dir(path, **kwargs)  # type: ignore[attr-defined]


class AsyncFiles(_Namespace):
    """``machine.files`` of an :class:`AsyncMachine`."""

    async def mkdir(self, path: str, **kwargs: Any) -> Any:
        """The same as ``make_dir``."""
        return await self.make_dir(path, **kwargs)  # type: ignore[attr-defined]


class Desktop(_Namespace):
    """``machine.desktop``: screenshots, mouse and keyboard, windows, clipboard, applications, the
    viewer (``stream``) and recordings (``recordings``) of a machine of the ``desktop`` template.

    Example::

        with Machine.create(template="desktop", desktop={"width": 1280, "height": 800}) as m:
            m.desktop.launch("xterm")
            m.desktop.write("echo hello\\n")
            png = m.desktop.screenshot()
    """

    def __init__(self, machine_id: str, client: Any, family: Any) -> None:
        super().__init__(machine_id, client, family)
        self.stream = family.DesktopStream(machine_id, client, family)
        self.recordings = family.DesktopRecordings(machine_id, client, family)


class AsyncDesktop(Desktop):
    """``machine.desktop`` of an :class:`AsyncMachine`; every method is a coroutine."""


class DesktopStream(_Namespace):
    """``machine.desktop.stream``: the viewer, a noVNC page behind a signed preview URL."""


class AsyncDesktopStream(_Namespace):
    """``machine.desktop.stream`` of an :class:`AsyncMachine`."""


class DesktopRecordings(_Namespace):
    """``machine.desktop.recordings``: screen recordings (MP4) kept in the machine."""


class AsyncDesktopRecordings(_Namespace):
    """``machine.desktop.recordings`` of an :class:`AsyncMachine`."""


class FileWatchPoller:
    """A watch read by polling (``files.create_watch``): ``events()``, ``stop()``."""

    def __init__(self, files: Any, watch_id: str) -> None:
        self._files = files
        self._client = files._client
        self.watch_id = watch_id


class AsyncFileWatchPoller(FileWatchPoller):
    pass


class GitConfig:
    """``machine.git.config``: ``get`` and ``set``."""

    def __init__(self, commands: Any) -> None:
        self._commands = commands
        self._client = commands._client


class AsyncGitConfig(GitConfig):
    pass


class Git:
    """``machine.git``: clone, status, branches, checkout, add, commit, diff, pull, push, config —
    the machine's own git run with an argv; a failure raises :class:`GitError`.

    Example::

        machine.git.clone("https://github.com/octocat/Hello-World.git", path="/workspace/hello", depth=1)
        print(machine.git.status("/workspace/hello").branch)
    """

    def __init__(self, commands: Any) -> None:
        self._commands = commands
        self._client = commands._client
        self.config = commands._family.GitConfig(commands)


class AsyncGit(Git):
    pass


class MachinePaginator:
    """Pages through ``Machine.list``: ``items`` (the current page), ``has_next``,
    ``next_token``, ``next_items()``; iterating yields every item from the current page to the
    last (the paginator advances as it goes).

    Example::

        page = Machine.list(limit=20)
        for info in page.items:
            print(info.id)
        while page.has_next:
            for info in page.next_items():
                print(info.id)
    """

    def __init__(self, client: Any, first: Dict[str, Any], fetch: Callable[[str], Any]) -> None:
        self._client = client
        self._fetch = fetch
        self.items: List[MachineInfo] = []
        self.has_next = False
        self.next_token: Optional[str] = None
        self._take(first)

    def _take(self, page: Dict[str, Any]) -> None:
        self.items = [MachineInfo.from_dict(x) for x in page["items"]]
        self.has_next = bool(page.get("has_next"))
        self.next_token = page.get("next_token")

    def __iter__(self) -> Iterator[MachineInfo]:
        yield from self.items
        while self.has_next:
            yield from self.next_items()  # type: ignore[attr-defined]


class AsyncMachinePaginator(MachinePaginator):
    """The async twin: ``await page.next_items()``, ``async for info in page``."""

    def __iter__(self) -> Iterator[MachineInfo]:
        raise TypeError("an AsyncMachinePaginator is iterated with `async for`")

    async def __aiter__(self) -> AsyncIterator[MachineInfo]:
        for item in self.items:
            yield item
        while self.has_next:
            for item in await self.next_items():  # type: ignore[attr-defined]
                yield item


# ---- machines -----------------------------------------------------------------------------------


class _MachineBase:
    _family: Any

    def __init__(
        self,
        machine_id: str,
        *,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        request_timeout: Optional[float] = None,
        _client: Any = None,
        _info: Optional[MachineInfo] = None,
    ) -> None:
        self.id = machine_id
        self._client = _client or self._family.client_for(api_url, api_key, request_timeout)
        f = self._family
        self.commands = f.Commands(machine_id, self._client, f)
        self.files = f.Files(machine_id, self._client, f)
        self.pty = f.Pty(machine_id, self._client, f)
        self.git = f.Git(self.commands)
        #: Screenshots, input, windows, clipboard, a viewer and recordings (machines of the ``desktop``
        #: template).
        self.desktop = f.Desktop(machine_id, self._client, f)
        #: Stateful notebook-style code execution (machines of the ``code-interpreter`` template).
        self.code_interpreter = f.CodeInterpreter(machine_id, self._client, f)
        self._info = _info

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class Machine(_MachineBase):
    """A handle on one machine: an isolated Linux environment on a Nullspace server. Holding a
    handle costs nothing; the machine lives until it is killed or its timeout applies. Used as a
    context manager, it kills the machine when the block ends (also on an exception).

    Example::

        from nullspace import Machine

        with Machine.create(template="base", timeout=300) as machine:
            result = machine.commands.run("python3 --version", shell=True)
            print(machine.id, result.stdout.strip())
    """

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.kill()  # type: ignore[attr-defined]
        except NotFoundError:
            pass


class AsyncMachine(_MachineBase):
    """The asyncio twin of :class:`Machine`: every method is a coroutine (iterators are async).

    Example::

        async with await AsyncMachine.create(template="base") as machine:
            r = await machine.commands.run("echo ready", shell=True)
            async for event in machine.stream_events(live_only=True):
                ...
    """

    async def __aenter__(self) -> "AsyncMachine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.kill()  # type: ignore[attr-defined]
        except NotFoundError:
            pass


# ---- templates, pools, volumes, snapshots -------------------------------------------------------


class Template:
    """Templates: ``build`` (cached by content), ``follow``, ``list``, ``get``, ``delete``.

    Example::

        result = Template.build("team/review-api:stable", run=["mkdir -p /srv/app"])
        machine = Machine.create(template="team/review-api:stable")
    """


class AsyncTemplate:
    """The async twin of :class:`Template`."""


class WarmPool:
    """Warm pools: ``create``, ``list``, ``get``, ``delete``."""


class AsyncWarmPool:
    """The async twin of :class:`WarmPool`."""


class Volume:
    """Volumes: durable storage outside every machine: ``create``, ``list``, ``get``, ``delete``."""


class AsyncVolume:
    """The async twin of :class:`Volume`."""


class ApiKey:
    """Tenants' API keys, with the operator's key: ``create``, ``list``, ``revoke``."""


class AsyncApiKey:
    """The async twin of :class:`ApiKey`."""


class Snapshot:
    """Snapshots: ``list``, ``get``, ``delete``."""


class AsyncSnapshot:
    """The async twin of :class:`Snapshot`."""


for _machine_ops in _ops.MACHINE_OPS:
    _install(_machine_ops, Machine, AsyncMachine)
_install(_ops.CommandsOps, Commands, AsyncCommands)
_install(_ops.CommandHandleOps, CommandHandle, AsyncCommandHandle)
_install(_ops.PtyOps, Pty, AsyncPty)
_install(_ops.PtyHandleOps, PtyHandle, AsyncPtyHandle)
_install(_ops.FilesOps, Files, AsyncFiles)
_install(_ops.DesktopOps, Desktop, AsyncDesktop)
_install(_ops.DesktopStreamOps, DesktopStream, AsyncDesktopStream)
_install(_ops.DesktopRecordingsOps, DesktopRecordings, AsyncDesktopRecordings)
_install(_ops.FileWatchPollerOps, FileWatchPoller, AsyncFileWatchPoller)
_install(_ops.GitOps, Git, AsyncGit)
_install(_ops.CodeInterpreterOps, CodeInterpreter, AsyncCodeInterpreter)
_install(_ops.GitConfigOps, GitConfig, AsyncGitConfig)
_install(_ops.PaginatorOps, MachinePaginator, AsyncMachinePaginator)
_install(_ops.TemplateOps, Template, AsyncTemplate)
_install(_ops.WarmPoolOps, WarmPool, AsyncWarmPool)
_install(_ops.VolumeOps, Volume, AsyncVolume)
_install(_ops.SnapshotOps, Snapshot, AsyncSnapshot)
_install(_ops.ApiKeyOps, ApiKey, AsyncApiKey)


def _read_stream_dispatch(sync: bool) -> Any:
    """``files.read(format="stream")`` hands back ``read_stream``'s iterator."""
    read = Files.read if sync else AsyncFiles.read
    if sync:

        @functools.wraps(read)
        def sync_read(self: Any, path: str, *, format: str = "text", **kwargs: Any) -> Any:
            if format == "stream":
                return self.read_stream(path, **kwargs)
            return read(self, path, format=format, **kwargs)

        return sync_read

    @functools.wraps(read)
    async def async_read(self: Any, path: str, *, format: str = "text", **kwargs: Any) -> Any:
        if format == "stream":
            return self.read_stream(path, **kwargs)
        return await read(self, path, format=format, **kwargs)

    return async_read


Files.read = _read_stream_dispatch(True)  # type: ignore[method-assign]
AsyncFiles.read = _read_stream_dispatch(False)  # type: ignore[method-assign]

SYNC = SimpleNamespace(
    client_for=_sync.client_for,
    Machine=Machine,
    Commands=Commands,
    CommandHandle=CommandHandle,
    Pty=Pty,
    PtyHandle=PtyHandle,
    Files=Files,
    Desktop=Desktop,
    DesktopStream=DesktopStream,
    DesktopRecordings=DesktopRecordings,
    FileWatchPoller=FileWatchPoller,
    Git=Git,
    CodeInterpreter=CodeInterpreter,
    GitConfig=GitConfig,
    MachinePaginator=MachinePaginator,
)
ASYNC = SimpleNamespace(
    client_for=_async.client_for,
    Machine=AsyncMachine,
    Commands=AsyncCommands,
    CommandHandle=AsyncCommandHandle,
    Pty=AsyncPty,
    PtyHandle=AsyncPtyHandle,
    Files=AsyncFiles,
    Desktop=AsyncDesktop,
    DesktopStream=AsyncDesktopStream,
    DesktopRecordings=AsyncDesktopRecordings,
    FileWatchPoller=AsyncFileWatchPoller,
    Git=AsyncGit,
    CodeInterpreter=AsyncCodeInterpreter,
    GitConfig=AsyncGitConfig,
    MachinePaginator=AsyncMachinePaginator,
)
Machine._family = SYNC
AsyncMachine._family = ASYNC
