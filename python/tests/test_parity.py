"""The Python SDK has a twin of every public method of the TypeScript SDK, sync and async.

Node introspects the built TS SDK (packages/sdk/dist) — the static and prototype members of
``Machine`` and its namespaces and handles, and the members of ``Template``, ``WarmPool``,
``Snapshot``, ``Volume`` — and every one must exist in Python under its snake_case name, on the
sync class and on the async one, where every method doing I/O is a coroutine (or an async
iterator). A new TS method without a Python twin fails here. The TS error codes must all have a
Python class with the same HTTP status.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from typing import Any, Dict, List

import pytest

import nullspace
from conftest import ROOT
from nullspace import errors

# TS class → (sync Python class, async Python class).
TWINS = {
    "Machine": (nullspace.Machine, nullspace.AsyncMachine),
    "Commands": (nullspace.Commands, nullspace.AsyncCommands),
    "CommandHandle": (nullspace.CommandHandle, nullspace.AsyncCommandHandle),
    "Files": (nullspace.Files, nullspace.AsyncFiles),
    "Desktop": (nullspace.Desktop, nullspace.AsyncDesktop),
    "DesktopStream": (nullspace.machine.DesktopStream, nullspace.machine.AsyncDesktopStream),
    "DesktopRecordings": (nullspace.machine.DesktopRecordings, nullspace.machine.AsyncDesktopRecordings),
    "Git": (nullspace.Git, nullspace.AsyncGit),
    "CodeInterpreter": (nullspace.CodeInterpreter, nullspace.AsyncCodeInterpreter),
    "GitConfig": (nullspace.machine.GitConfig, nullspace.machine.AsyncGitConfig),
    "Pty": (nullspace.Pty, nullspace.AsyncPty),
    "PtyHandle": (nullspace.PtyHandle, nullspace.AsyncPtyHandle),
    "MachinePaginator": (nullspace.MachinePaginator, nullspace.AsyncMachinePaginator),
    "Template": (nullspace.Template, nullspace.AsyncTemplate),
    "WarmPool": (nullspace.WarmPool, nullspace.AsyncWarmPool),
    "Snapshot": (nullspace.Snapshot, nullspace.AsyncSnapshot),
    "Volume": (nullspace.Volume, nullspace.AsyncVolume),
    "ApiKey": (nullspace.ApiKey, nullspace.AsyncApiKey),
}
# Deliberate differences, each with its reason.
RENAMED = {
    # A Python iterator (`for event in files.watch_dir(...)`) instead of TS's onEvent callback.
    "Files.watch": "watch_dir",
}
NOT_PUBLIC = {
    # Marked @internal in TSDoc: the re-attach plumbing CommandHandle uses.
    "Commands.attachment",
    # Python's Volume calls are class methods returning VolumeInfo; TS also gives the instance it
    # returns these two, which in Python are Volume.get(id) and Volume.delete(id).
    "Volume#getInfo",
    "Volume#delete",
}
# Methods that do no I/O, so they stay plain functions on the async classes too.
NO_IO = {"stream", "disconnect", "mkdir"}

INTROSPECT = r"""
const sdk = await import(process.argv[1]);
const protocol = await import(process.argv[2]);
const names = process.argv.slice(3);
const members = (o) => Object.getOwnPropertyNames(o).filter((n) => n !== 'constructor' && n !== 'prototype' &&
  n !== 'length' && n !== 'name' && !n.startsWith('_'));
// Inherited members count (Machine gets its networking and volume helpers from MachineHandle).
const chain = (o, stop) => {
  const seen = new Set();
  for (let p = o; p && p !== stop; p = Object.getPrototypeOf(p)) for (const n of members(p)) seen.add(n);
  return [...seen];
};
const out = { classes: {}, errors: protocol.ERROR_STATUS };
for (const name of names) {
  const v = sdk[name];
  if (v === undefined) { out.classes[name] = null; continue; }
  out.classes[name] = typeof v === 'function'
    ? { static: chain(v, Function.prototype), instance: chain(v.prototype, Object.prototype) }
    : { static: Object.keys(v), instance: [] };
}
console.log(JSON.stringify(out));
"""


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@pytest.fixture(scope="module")
def ts() -> Dict[str, Any]:
    dist = ROOT / "packages" / "sdk" / "dist" / "index.js"
    protocol = ROOT / "packages" / "protocol" / "dist" / "index.js"
    if shutil.which("node") is None or not dist.exists():
        pytest.skip("the TS SDK is not built (run scripts/setup.sh)")
    out = subprocess.run(
        ["node", "--input-type=module", "-e", INTROSPECT, str(dist), str(protocol), *TWINS],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def expected(ts: Dict[str, Any]) -> List[Any]:
    rows = []
    for cls, found in ts["classes"].items():
        assert found is not None, f"the TS SDK no longer exports {cls}"
        for kind, sep in (("static", "."), ("instance", "#")):
            for member in found[kind]:
                key = f"{cls}{sep}{member}"
                if key in NOT_PUBLIC or f"{cls}.{member}" in NOT_PUBLIC:
                    continue
                rows.append((cls, member, RENAMED.get(f"{cls}.{member}", snake(member))))
    return rows


def test_every_ts_method_has_a_python_twin(ts: Dict[str, Any]) -> None:
    missing = []
    for cls, member, py_name in expected(ts):
        for py_cls in TWINS[cls]:
            if not hasattr(py_cls, py_name) and py_name not in _instance_attributes(py_cls):
                missing.append(f"{cls}.{member} -> {py_cls.__name__}.{py_name}")
    assert missing == [], "TS methods without a Python twin:\n  " + "\n  ".join(missing)


def _instance_attributes(cls: type) -> List[str]:
    """Attributes a handle sets in __init__ (namespaces, ids)."""
    if issubclass(cls, nullspace.machine._MachineBase):
        return ["id", "commands", "files", "pty", "git", "desktop", "code_interpreter"]
    return []


def test_every_async_method_is_a_coroutine() -> None:
    for sync_cls, async_cls in TWINS.values():
        for name, member in vars(sync_cls).items():
            if name.startswith("_") or name in NO_IO or isinstance(member, property):
                continue
            fn = getattr(async_cls, name)
            assert inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn), (
                f"{async_cls.__name__}.{name} is neither a coroutine nor an async iterator"
            )
        for name in dir(async_cls):
            fn = getattr(async_cls, name)
            if name.startswith("_") or name in NO_IO or not callable(fn) or isinstance(fn, type):
                continue
            assert inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn), f"{async_cls.__name__}.{name}"


def test_sync_and_async_have_the_same_methods() -> None:
    for sync_cls, async_cls in TWINS.values():
        public = lambda c: {n for n in dir(c) if not n.startswith("_")}  # noqa: E731
        assert public(sync_cls) == public(async_cls), (sync_cls.__name__, public(sync_cls) ^ public(async_cls))


def test_aliases_and_documented_names() -> None:
    assert nullspace.Sandbox is nullspace.Machine
    assert nullspace.AsyncSandbox is nullspace.AsyncMachine
    for name in ("Machine", "AsyncMachine", "MachineQuery", "VolumeMount", "Template", "Volume", "WarmPool",
                 "redact_preview_url", "redact_preview_token", "MachineNotFoundError"):
        assert hasattr(nullspace, name), name


def test_every_error_code_has_a_class_and_the_same_status(ts: Dict[str, Any]) -> None:
    assert errors.ERROR_STATUS == ts["errors"]
    assert set(errors.CLASS_OF_CODE) == set(ts["errors"])
    for code, status in ts["errors"].items():
        err = errors.error_from_code(code, "x")
        assert isinstance(err, errors.NullspaceError)
        assert (err.code, err.status) == (code, status)


