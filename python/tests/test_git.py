"""git against a real machine, with a bare repository inside the same machine as the remote (no
network beyond the machine): clone, status, add, commit, push, a second clone, pull, branches,
checkout, diff, config and GitError; sync and async. Each test has repositories of its own."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any, Tuple

import pytest

from conftest import TestServer
from nullspace import AsyncMachine, GitError, InvalidArgumentError, Machine

AUTHOR = {"author_name": "Ada Lovelace", "author_email": "ada@example.com"}


def bare_repo(m: Machine) -> Tuple[str, str]:
    """A bare repository (branch main) and a directory for its clones, both new."""
    base = f"/srv/git-{secrets.token_hex(4)}"
    r = m.commands.run("git", args=["init", "-q", "--bare", "--initial-branch=main", f"{base}/remote.git"])
    assert r.exit_code == 0, r.stderr
    return f"{base}/remote.git", base


def test_clone_commit_push_and_pull_through_a_bare_repository(server: TestServer, shared_machine: Machine) -> None:
    m = shared_machine
    remote, base = bare_repo(m)
    a, b = f"{base}/a", f"{base}/b"
    assert m.git.clone(remote, path=a) == {"path": a}
    empty = m.git.status(a)
    assert (empty.branch, empty.commit, empty.clean) == ("main", None, True)

    m.files.write(f"{a}/hello.txt", "hello\n")
    assert [(f.path, f.index, f.worktree) for f in m.git.status(a).files] == [("hello.txt", "untracked", "untracked")]
    m.git.add(a, ["hello.txt"])
    assert [(f.path, f.index, f.worktree) for f in m.git.status(a).files] == [("hello.txt", "added", "unmodified")]
    first = m.git.commit(a, "Add hello", **AUTHOR)["sha"]
    assert re.fullmatch("[0-9a-f]{40}", first), first
    log = m.commands.run("git", args=["-C", a, "log", "-1", "--format=%H|%an <%ae>|%s"]).stdout
    assert log == f"{first}|Ada Lovelace <ada@example.com>|Add hello\n"
    pushed = m.git.push(a)
    assert "main -> main" in pushed["output"]

    assert m.git.clone(remote, path=b)["path"] == b
    status_b = m.git.status(b)
    assert (status_b.commit, status_b.upstream, status_b.clean) == (first, "origin/main", True)
    branches = m.git.branches(b)
    assert branches.current == "main"
    assert [(x.name, x.current, x.upstream, x.commit) for x in branches.branches] == [("main", True, "origin/main", first)]

    m.files.write(f"{a}/hello.txt", "hello\nworld\n")
    m.git.add(a, all=True)
    second = m.git.commit(a, "Add world", **AUTHOR)["sha"]
    ahead = m.git.status(a)
    assert (ahead.ahead, ahead.behind) == (1, 0)
    m.git.push(a, remote="origin", branch="main")
    assert m.git.status(a).ahead == 0
    pulled = m.git.pull(b)
    assert "Fast-forward" in pulled["output"]
    assert m.git.status(b).commit == second
    assert m.files.read(f"{b}/hello.txt") == "hello\nworld\n"


def test_branches_checkout_diff_config_and_errors(server: TestServer, shared_machine: Machine) -> None:
    m = shared_machine
    remote, base = bare_repo(m)
    repo = f"{base}/work"
    m.git.clone(remote, path=repo)
    m.git.config.set("user.name", "Local Name", scope="local", path=repo)
    m.git.config.set("user.email", "local@example.com", path=repo)
    assert m.git.config.get("user.name", scope="local", path=repo) == "Local Name"
    assert m.git.config.get("user.email", path=repo) == "local@example.com"
    assert m.git.config.get("nullspace.nothing", path=repo) is None
    m.files.write(f"{repo}/f.txt", "one\n")
    m.git.add(repo, all=True)
    m.git.commit(repo, "one")
    author = m.commands.run("git", args=["-C", repo, "log", "-1", "--format=%an <%ae>"]).stdout
    assert author == "Local Name <local@example.com>\n"

    m.git.create_branch(repo, "feature", checkout=True)
    assert m.git.branches(repo).current == "feature"
    m.files.write(f"{repo}/f.txt", "one\ntwo\n")
    unstaged = m.git.diff(repo)
    assert "+two" in unstaged and m.git.diff(repo, staged=True) == ""
    m.git.add(repo, ["f.txt"])
    assert "+two" in m.git.diff(repo, staged=True) and m.git.diff(repo) == ""
    m.git.commit(repo, "two")
    m.git.checkout(repo, "main")
    assert m.files.read(f"{repo}/f.txt") == "one\n"
    m.git.create_branch(repo, "later")
    assert sorted(x.name for x in m.git.branches(repo).branches) == ["feature", "later", "main"]
    assert m.git.branches(repo).current == "main"

    with pytest.raises(GitError) as failed:
        m.git.checkout(repo, "no-such-branch")
    assert (failed.value.code, failed.value.subcommand) == ("git_error", "checkout")
    assert failed.value.exit_code not in (None, 0) and "no-such-branch" in failed.value.stderr
    with pytest.raises(GitError) as unknown_remote:
        m.git.push(repo, remote="nowhere", branch="main")
    assert unknown_remote.value.subcommand == "push"
    # Checked before anything runs in the machine.
    with pytest.raises(InvalidArgumentError):
        m.git.clone(remote, path=f"{base}/x", token="secret")  # credentials need an http(s) URL
    with pytest.raises(InvalidArgumentError):
        m.git.add(repo)
    with pytest.raises(InvalidArgumentError):
        m.git.create_branch(repo, "--force")


def test_async_git(server: TestServer, shared_machine: Machine) -> None:
    remote, base = bare_repo(shared_machine)
    repo = f"{base}/async"

    async def main() -> Any:
        m = AsyncMachine(shared_machine.id)
        cloned = await m.git.clone(remote, path=repo)
        await m.files.write(f"{repo}/a.txt", "async\n")
        await m.git.add(repo, all=True)
        sha = (await m.git.commit(repo, "async commit", **AUTHOR))["sha"]
        await m.git.push(repo, set_upstream=True)
        status = await m.git.status(repo)
        await m.git.config.set("core.autocrlf", "false", path=repo)
        value = await m.git.config.get("core.autocrlf", path=repo)
        return cloned, sha, status, value

    cloned, sha, status, value = asyncio.run(main())
    assert cloned == {"path": repo} and value == "false"
    assert (status.commit, status.upstream, status.ahead, status.clean) == (sha, "origin/main", 0, True)
    bare_head = shared_machine.commands.run("git", args=["--git-dir", remote, "rev-parse", "main"]).stdout.strip()
    assert bare_head == sha
