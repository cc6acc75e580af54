"""Files against a real server, beyond read and write: content search, replace, and signed URLs
used with plain urllib and no API key (sent to the server on 127.0.0.1); sync and async. Each test
works under a directory of its own in the shared machine."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from typing import Any, Optional, Tuple

import pytest

from conftest import TestServer
from nullspace import AsyncMachine, InvalidArgumentError, Machine


def fetch(server: TestServer, url: str, method: str = "GET", data: Optional[bytes] = None) -> Tuple[int, bytes]:
    """One request to a signed URL, without any API key; the URL must point at the test server."""
    assert url.startswith(f"{server.url}/v1/signed/files/"), url
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def make_tree(m: Machine, root: str) -> None:
    m.files.write(f"{root}/a.py", "# TODO: one\nprint('needle')\n")
    m.files.write(f"{root}/sub/b.py", "x = 1  # todo: two\n")
    m.files.write(f"{root}/sub/c.txt", "TODO three\nversion 1.2.3\n")
    m.files.write(f"{root}/skip/d.py", "# TODO: skipped\n")


def test_search(server: TestServer, shared_machine: Machine) -> None:
    root = "/workspace/search"
    make_tree(shared_machine, root)
    files = shared_machine.files
    every = files.search(root, "TODO", exclude=["skip"])
    assert sorted((x.path, x.line, x.column, x.text) for x in every.matches) == [
        (f"{root}/a.py", 1, 3, "# TODO: one"),
        (f"{root}/sub/c.txt", 1, 1, "TODO three"),
    ]
    assert every.truncated is False and every.files_scanned == 3
    folded = files.search(root, "todo", case_sensitive=False, include=["*.py"], exclude=["skip"])
    assert sorted(x.path for x in folded.matches) == [f"{root}/a.py", f"{root}/sub/b.py"]
    regex = files.search(root, r"\d+\.\d+\.\d+$", regex=True)
    assert [(x.path, x.text) for x in regex.matches] == [(f"{root}/sub/c.txt", "version 1.2.3")]
    capped = files.search(root, "o", max_results=2)
    assert len(capped.matches) == 2 and capped.truncated is True
    with pytest.raises(InvalidArgumentError) as bad:
        files.search(root, "(unclosed", regex=True)
    assert bad.value.details["field"] == "pattern"


def test_replace(server: TestServer, shared_machine: Machine) -> None:
    root = "/workspace/replace"
    make_tree(shared_machine, root)
    files = shared_machine.files
    literal = files.replace("TODO", "DONE", paths=[f"{root}/a.py", f"{root}/sub/c.txt"])
    assert literal.files == [{"path": f"{root}/a.py", "replacements": 1}, {"path": f"{root}/sub/c.txt", "replacements": 1}]
    assert (literal.files_changed, literal.total_replacements) == (2, 2)
    assert files.read(f"{root}/a.py") == "# DONE: one\nprint('needle')\n"
    regex = files.replace(r"version (\d+)\.(\d+)\.(\d+)", "version $1.$2.4", path=root, include=["*.txt"], regex=True)
    assert (regex.files_changed, regex.total_replacements) == (1, 1)
    assert files.read(f"{root}/sub/c.txt") == "DONE three\nversion 1.2.4\n"
    under = files.replace("todo", "done", path=root, exclude=["skip"], case_sensitive=False)
    assert under.files == [{"path": f"{root}/sub/b.py", "replacements": 1}]
    assert files.read(f"{root}/skip/d.py") == "# TODO: skipped\n"


def test_signed_urls_upload_and_download_without_a_key(server: TestServer, shared_machine: Machine) -> None:
    m = shared_machine
    payload = os.urandom(256 * 1024 + 3)
    upload = m.files.upload_url("/workspace/signed/up.bin")
    assert fetch(server, upload, "PUT", payload)[0] == 200
    assert m.files.read("/workspace/signed/up.bin", format="bytes") == payload
    down = m.files.download_url("/workspace/signed/up.bin")
    assert fetch(server, down) == (200, payload)
    # The machine-level helpers sign the same way.
    assert fetch(server, m.upload_url("/workspace/signed/m.txt", expires_in=60), "PUT", b"machine")[0] == 200
    assert fetch(server, m.download_url("/workspace/signed/m.txt")) == (200, b"machine")
    signed = m.files.signed_url("/workspace/signed/m.txt", op="read", expires_in=120)
    assert (signed.op, signed.path, signed.method) == ("read", "/workspace/signed/m.txt", "GET")
    assert signed.expires_at is not None and fetch(server, signed.url) == (200, b"machine")
    # Each URL does what it was signed for, on its path only.
    assert fetch(server, upload)[0] == 403
    assert fetch(server, down, "PUT", b"x")[0] == 403
    assert fetch(server, down.replace("up.bin", "m.txt"))[0] == 403


def test_async_search_replace_and_signed_urls(server: TestServer, shared_machine: Machine) -> None:
    root = "/workspace/async-files"

    async def main() -> Any:
        m = AsyncMachine(shared_machine.id)
        await m.files.write(f"{root}/n.txt", "alpha beta alpha\n")
        found = await m.files.search(root, "alpha")
        replaced = await m.files.replace("alpha", "gamma", path=root)
        text = await m.files.read(f"{root}/n.txt")
        return found, replaced, text, await m.files.download_url(f"{root}/n.txt"), await m.upload_url(f"{root}/u.txt")

    found, replaced, text, down, up = asyncio.run(main())
    assert [(x.line, x.column) for x in found.matches] == [(1, 1), (1, 12)] and replaced.total_replacements == 2
    assert text == "gamma beta gamma\n"
    assert fetch(server, down) == (200, b"gamma beta gamma\n")
    assert fetch(server, up, "PUT", b"up")[0] == 200
    assert shared_machine.files.read(f"{root}/u.txt") == "up"
