"""``machine.git``: the machine's own git run with an argv over ``commands``; credentials for one
git process through its environment; porcelain output parsed into models."""

from __future__ import annotations

import base64
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import GitError
from ..models import GitBranch, GitBranches, GitFileStatus, GitStatus
from ._base import Gen, _invalid, op
from .commands import _run


_LOCAL_TIMEOUT = 60.0
_NETWORK_TIMEOUT = 300.0
_DEFAULT_USERNAME = "x-access-token"
_STATE_OF_LETTER = {
    ".": "unmodified",
    "M": "modified",
    "T": "type_changed",
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "U": "unmerged",
}


def _run_git(
    commands: Any,
    subcommand: str,
    args: List[str],
    *,
    path: Optional[str] = None,
    envs: Optional[Dict[str, str]] = None,
    stdin: Optional[str] = None,
    timeout: Optional[float] = None,
    redact: Callable[[str], str] = lambda t: t,
    ok_exit_codes: Sequence[int] = (),
) -> Gen:
    """Runs the machine's git with an argv (never a shell line); a failure becomes a GitError."""
    result = yield from _run(
        commands,
        "git",
        args=args if path is None else ["-C", path, *args],
        envs={**(envs or {}), "GIT_TERMINAL_PROMPT": "0"},
        timeout=_LOCAL_TIMEOUT if timeout is None else timeout,
        stdin=stdin,
    )
    if result.exit_code == 0 or (result.exit_code is not None and result.exit_code in ok_exit_codes):
        return result
    said = redact(result.stdout if result.stderr.strip() == "" else result.stderr)
    explanation = "\n".join(
        line.rstrip() for line in said.split("\n") if line.strip() and not line.startswith("Cloning into ")
    )
    if result.timed_out:
        how = f"timed out after {result.duration_ms} ms"
    elif result.exit_code is None:
        how = f"ended by {result.signal or 'a signal'}"
    else:
        how = f"failed (exit {result.exit_code})"
    raise GitError(
        f"git {subcommand} {how}" + (f": {explanation}" if explanation else ""),
        subcommand=subcommand,
        exit_code=result.exit_code,
        stderr=said,
        timed_out=result.timed_out,
    )


def _repo(path: str) -> str:
    if not isinstance(path, str) or path == "":
        raise _invalid("path", "name the repository directory")
    return path


def _ref(field: str, name: str) -> str:
    if name == "" or name.startswith("-"):
        raise _invalid(field, f'"{name}" is not a valid name')
    return name


def _auth_env(username: Optional[str], token: Optional[str], password: Optional[str]) -> Tuple[Optional[Dict[str, str]], Callable[[str], str]]:
    """Credentials for one git process as an ``http.extraHeader`` given through
    ``GIT_CONFIG_COUNT``: in no file and no argv. Also a redactor for what git prints."""
    if token is not None and password is not None:
        raise _invalid("token", "give token or password, not both")
    secret = token if token is not None else password
    if not secret:
        if username is not None:
            raise _invalid("username", "a username needs a token or password")
        return None, lambda t: t
    user = username or _DEFAULT_USERNAME
    if ":" in user:
        raise _invalid("username", 'must not contain ":"')
    if "\n" in secret or "\r" in secret:
        raise _invalid("token", "must not contain line breaks")
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
    return env, lambda t: t.replace(basic, "***").replace(secret, "***")


def _directory_of(url: str) -> str:
    trimmed = re.sub(r"[/\\]+$", "", url)
    trimmed = re.sub(r"/\.git$", "", trimmed)
    last = re.split(r"[/:]", trimmed)[-1] or trimmed
    return re.sub(r"\.git$", "", last) or trimmed


def _parse_status(out: str) -> GitStatus:
    status = GitStatus()
    records = out.split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if rec == "":
            continue
        if rec.startswith("# "):
            _, name, *rest = rec.split(" ")
            value = " ".join(rest)
            if name == "branch.oid":
                status.commit = None if value == "(initial)" else value
            elif name == "branch.head":
                status.detached = value == "(detached)"
                status.branch = None if status.detached else value
            elif name == "branch.upstream":
                status.upstream = value
            elif name == "branch.ab":
                m = re.match(r"^\+(\d+) -(\d+)$", value)
                if m:
                    status.ahead, status.behind = int(m.group(1)), int(m.group(2))
            continue
        kind = rec[0]
        if kind == "?":
            status.files.append(GitFileStatus(path=rec[2:], orig_path=None, index="untracked", worktree="untracked"))
        elif kind in ("1", "2", "u"):
            before = {"1": 8, "2": 9, "u": 10}[kind]
            fields = rec.split(" ")
            xy = fields[1] if len(fields) > 1 else ".."
            path = " ".join(fields[before:])
            orig = None
            if kind == "2":
                orig = records[i] if i < len(records) else None
                i += 1
            conflict = kind == "u"
            status.files.append(
                GitFileStatus(
                    path=path,
                    orig_path=orig,
                    index="unmerged" if conflict else _STATE_OF_LETTER.get(xy[0], "unmodified"),
                    worktree="unmerged" if conflict else _STATE_OF_LETTER.get(xy[1], "unmodified"),
                )
            )
    status.clean = len(status.files) == 0
    return status


def _parse_branches(out: str) -> GitBranches:
    result = GitBranches()
    for line in out.split("\n"):
        if not line:
            continue
        parts = line.split("\0")
        if len(parts) < 4 or not parts[1].startswith("refs/heads/"):
            continue
        name = parts[1][len("refs/heads/") :]
        current = parts[0] == "*"
        if current:
            result.current = name
        result.branches.append(GitBranch(name=name, current=current, upstream=parts[2] or None, commit=parts[3]))
    return result


def _check_key(key: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]*(\..+)?\.[A-Za-z][A-Za-z0-9-]*$", key):
        raise _invalid("key", f'"{key}" is not a git config key (section.name)')


def _scope_args(scope: Optional[str], path: Optional[str]) -> List[str]:
    if scope is None:
        return []
    if scope == "global":
        return ["--global"]
    if scope == "local":
        if path is None:
            raise _invalid("path", "the local scope needs the repository path")
        return ["--local"]
    raise _invalid("scope", f'expected global or local, got "{scope}"')


class GitOps:
    """``machine.git``: helpers over ``commands.run`` (``self._commands``)."""

    @op
    def clone(
        self,
        url: str,
        *,
        path: Optional[str] = None,
        branch: Optional[str] = None,
        depth: Optional[int] = None,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Clones a repository; returns the directory it went to. Credentials (``token`` or
        ``password``) authenticate this clone only and are stored nowhere.

        Example::

            machine.git.clone("https://github.com/team/app.git", path="/workspace/app", depth=1)
        """
        if url == "":
            raise _invalid("url", "must not be empty")
        env, redact = _auth_env(username, token, password)
        if env is not None and not re.match(r"^https?://", url, re.I):
            raise _invalid("token", "credentials can only be sent to an http:// or https:// URL")
        args = ["clone"]
        if branch is not None:
            args += ["--branch", _ref("branch", branch)]
        if depth is not None:
            if not isinstance(depth, int) or depth < 1:
                raise _invalid("depth", "must be a positive integer")
            args += ["--depth", str(depth)]
        if path is not None and path == "":
            raise _invalid("path", "must not be empty")
        args += ["--", url] + ([path] if path is not None else [])
        yield from _run_git(
            self._commands, "clone", args, envs=env, redact=redact, timeout=_NETWORK_TIMEOUT if timeout is None else timeout
        )
        return {"path": path if path is not None else _directory_of(url)}

    @op
    def status(self, path: str, *, timeout: Optional[float] = None) -> Gen:
        """Branch, upstream, ahead/behind and changed files (``git status --porcelain=v2``)."""
        r = yield from _run_git(
            self._commands, "status", ["status", "--porcelain=v2", "--branch", "-z"], path=_repo(path), timeout=timeout
        )
        return _parse_status(r.stdout)

    @op
    def branches(self, path: str, *, timeout: Optional[float] = None) -> Gen:
        """The local branches and the current one."""
        r = yield from _run_git(
            self._commands,
            "branch",
            ["branch", "--list", "--format=%(HEAD)%00%(refname)%00%(upstream:short)%00%(objectname)%00"],
            path=_repo(path),
            timeout=timeout,
        )
        return _parse_branches(r.stdout)

    @op
    def create_branch(
        self,
        path: str,
        name: str,
        *,
        checkout: bool = False,
        start_point: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Creates a branch at HEAD (or ``start_point``); ``checkout=True`` switches to it."""
        args = ["switch", "--create", _ref("name", name)] if checkout else ["branch", _ref("name", name)]
        if start_point is not None:
            args.append(_ref("start_point", start_point))
        yield from _run_git(
            self._commands, "switch" if checkout else "branch", args, path=_repo(path), timeout=timeout
        )

    @op
    def checkout(self, path: str, target: str, *, timeout: Optional[float] = None) -> Gen:
        """Checks out a branch, tag or commit."""
        yield from _run_git(
            self._commands, "checkout", ["checkout", _ref("ref", target), "--"], path=_repo(path), timeout=timeout
        )

    @op
    def add(self, path: str, files: Optional[List[str]] = None, *, all: bool = False, timeout: Optional[float] = None) -> Gen:
        """Stages ``files``, or every change with ``all=True``.

        Example::

            machine.git.add("/workspace/app", all=True)
        """
        if all:
            args = ["add", "--all"]
        elif files:
            args = ["add", "--", *files]
        else:
            raise _invalid("files", "name at least one path, or pass all=True")
        yield from _run_git(self._commands, "add", args, path=_repo(path), timeout=timeout)

    @op
    def commit(
        self,
        path: str,
        message: str,
        *,
        author_name: Optional[str] = None,
        author_email: Optional[str] = None,
        allow_empty: bool = False,
        timeout: Optional[float] = None,
    ) -> Gen:
        """Commits what is staged; returns ``{"sha": ...}``.

        Example::

            sha = machine.git.commit("/workspace/app", "Add README", author_name="Ada", author_email="ada@example.com")["sha"]
        """
        d = _repo(path)
        if message.strip() == "":
            raise _invalid("message", "must not be empty")
        envs: Dict[str, str] = {}
        if author_name is not None:
            envs["GIT_AUTHOR_NAME"] = envs["GIT_COMMITTER_NAME"] = author_name
        if author_email is not None:
            envs["GIT_AUTHOR_EMAIL"] = envs["GIT_COMMITTER_EMAIL"] = author_email
        args = ["commit", "--file=-"] + (["--allow-empty"] if allow_empty else [])
        yield from _run_git(self._commands, "commit", args, path=d, envs=envs, stdin=message, timeout=timeout)
        head = yield from _run_git(self._commands, "rev-parse", ["rev-parse", "--verify", "HEAD"], path=d, timeout=timeout)
        return {"sha": head.stdout.strip()}

    @op
    def diff(
        self, path: str, *, staged: bool = False, files: Optional[List[str]] = None, timeout: Optional[float] = None
    ) -> Gen:
        """The unified diff of the work tree (or with ``staged`` of the index)."""
        args = ["diff", "--no-color", "--no-ext-diff"] + (["--cached"] if staged else []) + ["--", *(files or [])]
        r = yield from _run_git(self._commands, "diff", args, path=_repo(path), timeout=timeout)
        return r.stdout

    @op
    def pull(
        self,
        path: str,
        *,
        remote: Optional[str] = None,
        branch: Optional[str] = None,
        rebase: Optional[bool] = None,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """``git pull`` with credentials for this pull only; returns ``{"output": ...}``."""
        args = ["pull"]
        if rebase is not None:
            args.append("--rebase" if rebase else "--no-rebase")
        remote = remote if remote is not None else ("origin" if branch is not None else None)
        if remote is not None:
            args.append(_ref("remote", remote))
        if branch is not None:
            args.append(_ref("branch", branch))
        env, redact = _auth_env(username, token, password)
        r = yield from _run_git(
            self._commands,
            "pull",
            args,
            path=_repo(path),
            envs=env,
            redact=redact,
            timeout=_NETWORK_TIMEOUT if timeout is None else timeout,
        )
        return {"output": redact(r.stderr + r.stdout)}

    @op
    def push(
        self,
        path: str,
        *,
        remote: Optional[str] = None,
        branch: Optional[str] = None,
        set_upstream: bool = False,
        username: Optional[str] = None,
        token: Optional[str] = None,
        password: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Gen:
        """``git push`` of the current branch (or ``branch``); returns ``{"output": ...}``."""
        args = ["push"] + (["--set-upstream"] if set_upstream else [])
        named = branch is not None or set_upstream
        remote = remote if remote is not None else ("origin" if named else None)
        if remote is not None:
            args.append(_ref("remote", remote))
        if branch is not None:
            args.append(_ref("branch", branch))
        elif named:
            args.append("HEAD")
        env, redact = _auth_env(username, token, password)
        r = yield from _run_git(
            self._commands,
            "push",
            args,
            path=_repo(path),
            envs=env,
            redact=redact,
            timeout=_NETWORK_TIMEOUT if timeout is None else timeout,
        )
        return {"output": redact(r.stderr + r.stdout)}


class GitConfigOps:
    """``machine.git.config``."""

    @op
    def get(self, key: str, *, scope: Optional[str] = None, path: Optional[str] = None, timeout: Optional[float] = None) -> Gen:
        """A config value, or None when it is not set."""
        _check_key(key)
        scope_args = _scope_args(scope, path)
        repo = None if path is None or scope == "global" else _repo(path)
        r = yield from _run_git(
            self._commands, "config", ["config", *scope_args, "--get", "--", key], path=repo, timeout=timeout, ok_exit_codes=(1,)
        )
        if r.exit_code == 1 and r.stderr.strip():
            raise GitError(f"git config failed (exit 1): {r.stderr.strip()}", subcommand="config", exit_code=1, stderr=r.stderr)
        return None if r.exit_code == 1 else re.sub(r"\n$", "", r.stdout)

    @op
    def set(
        self, key: str, value: str, *, scope: Optional[str] = None, path: Optional[str] = None, timeout: Optional[float] = None
    ) -> Gen:
        """Sets a config value (``global`` by default, ``local`` with ``path``)."""
        _check_key(key)
        scope_args = _scope_args(scope or ("global" if path is None else "local"), path)
        repo = None if path is None or scope == "global" else _repo(path)
        yield from _run_git(self._commands, "config", ["config", *scope_args, "--", key, value], path=repo, timeout=timeout)
