"""Test fixtures: a real server (the ``nullspace serve`` CLI as a child process) on 127.0.0.1 with
its own data directory and API key, the real SDK pointed at it, and a teardown that deletes
everything through the API, stops the server and checks nothing of it is left on the host.

Without root or the ``base`` template the tests that need machines skip with the reason; with
``CI`` set that is an error instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "packages" / "cli" / "bin" / "nullspace.js"
PYTHON_SRC = ROOT / "python" / "src"
TEMPLATES_DIR = os.environ.get("NULLSPACE_TEMPLATES_DIR", "/var/lib/nullspace/templates")

sys.path.insert(0, str(PYTHON_SRC))


def cannot_run_machines() -> Optional[str]:
    """Why machines cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, mounts)"
    if not (Path(TEMPLATES_DIR) / "base" / "rootfs").is_dir():
        return f"no base template in {TEMPLATES_DIR}; run scripts/setup.sh"
    if not CLI.exists() or not (ROOT / "packages" / "cli" / "dist").is_dir():
        return "the CLI is not built; run scripts/setup.sh"
    return None


class TestServer:
    """One server process on a data directory; ``restart`` keeps the directory and the port."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        # Short path: agents' Unix sockets live under it, and socket paths are limited to 108 bytes.
        self.data_dir = tempfile.mkdtemp(prefix="nst-", dir="/tmp")
        self.api_key = f"test-key-{secrets.token_hex(8)}"
        self.url = ""
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.logs: List[str] = []
        self.machine_ids: Set[str] = set()
        # Machine addresses in a corner of the default pool (10.213.0.0/16) that servers on the
        # default, which take the lowest free blocks, do not reach: host interfaces are named after
        # the block, and two servers on one pool can pick the same free block at once (the second
        # create then fails with "a host error"; see bench/README.md). One /20 of four, at random,
        # apart from other sessions' servers running this suite too.
        self.machine_network = f"10.213.{64 + 16 * secrets.randbelow(4)}.0/20"

    def start(self, port: int = 0) -> None:
        env = {
            **os.environ,
            "NULLSPACE_DATA_DIR": self.data_dir,
            "NULLSPACE_TEMPLATES_DIR": TEMPLATES_DIR,
            "NULLSPACE_PORT": str(port),
            "NULLSPACE_HOST": "127.0.0.1",
            "NULLSPACE_API_KEY": self.api_key,
            # Tests never change the host's own interfaces, and build templates offline.
            "NULLSPACE_UPLINKS": "none",
            "NULLSPACE_PACKAGES_OFFLINE": "1",
            "NULLSPACE_MACHINE_NETWORK": self.machine_network,
        }
        for attempt in range(5):
            proc = subprocess.Popen(
                ["node", str(CLI), "serve"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            url = self._wait_listening(proc)
            if url is not None:
                self.proc = proc
                self.url = url
                self.port = int(url.rsplit(":", 1)[1])
                threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
                os.environ["NULLSPACE_API_URL"] = self.url
                os.environ["NULLSPACE_API_KEY"] = self.api_key
                return
            # The port of a restart may still be taken for a moment: try again.
            if port == 0 or "EADDRINUSE" not in "".join(self.logs[-20:]) or attempt == 4:
                raise RuntimeError("server did not start:\n" + "".join(self.logs[-50:]))
            time.sleep(0.5)

    def _wait_listening(self, proc: subprocess.Popen) -> Optional[str]:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                return None
            self.logs.append(line)
            m = re.search(r"Nullspace is listening on (http://\S+)", line)
            if m:
                return m.group(1)
        proc.kill()
        proc.wait()
        return None

    def _drain(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.logs.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server process by its pid (machines keep running)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server and starts it again on the same data directory and port."""
        self.stop(sig)
        self.start(self.port)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {self.api_key}")
        if data is not None:
            req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=120) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def teardown(self) -> None:
        """Deletes pools, machines, templates, snapshots and volumes through the API, stops the
        server, then fails if anything of it is left on the host (cleaning up anyway)."""
        ids = set(self.machine_ids)
        try:
            if self.proc is not None and self.proc.poll() is None:
                for pool in self.api("GET", "/v1/warm_pools")["items"]:
                    self.api("DELETE", f"/v1/warm_pools/{pool['id']}")
                states = "&".join(
                    f"state={s}"
                    for s in ("starting", "running", "pausing", "paused", "hibernating", "hibernated", "resuming", "killing", "failed")
                )
                for m in self.api("GET", f"/v1/machines?limit=1000&{states}")["items"]:
                    ids.add(m["id"])
                    try:
                        self.api("DELETE", f"/v1/machines/{m['id']}")
                    except Exception:  # killed meanwhile; the leftovers check below tells
                        pass
                for _ in range(10):
                    # Shipped templates (base, code-interpreter ...) belong to the host, not the test.
                    items = self.api("GET", "/v1/templates")["items"]
                    names = [n for t in items if not t.get("shipped") for n in t["names"]]
                    if not names:
                        break
                    for n in names:
                        try:
                            self.api("DELETE", "/v1/templates/" + urllib.request.quote(n, safe=""))
                        except Exception:  # used by another template of the chain: next round
                            pass
                for s in self.api("GET", "/v1/snapshots")["items"]:
                    self.api("DELETE", f"/v1/snapshots/{s['id']}")
                for v in self.api("GET", "/v1/volumes")["items"]:
                    self.api("DELETE", f"/v1/volumes/{v['id']}")
        finally:
            self.stop()
            if self.proc is not None and self.proc.poll() is None:
                self.stop(signal.SIGKILL)
        machines_dir = Path(self.data_dir) / "machines"
        if machines_dir.is_dir():
            ids.update(d.name for d in machines_dir.iterdir())
        leaks = leftovers(self.data_dir, ids)
        if leaks:
            force_clean(self.data_dir, ids)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if leaks:
            raise AssertionError("left behind after teardown:\n  " + "\n  ".join(leaks))


def _run(args: List[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return ""


def _mounts_under(directory: str) -> List[str]:
    base = os.path.realpath(directory)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split(" ")[4].encode().decode("unicode_escape")
            if point == base or point.startswith(base + "/"):
                out.append(point)
    return sorted(out, key=len, reverse=True)


def _cgroup_roots() -> List[str]:
    roots = ["/sys/fs/cgroup"]
    try:
        roots += [os.path.join("/sys/fs/cgroup", c) for c in os.listdir("/sys/fs/cgroup")]
    except OSError:
        pass
    return roots


def leftovers(data_dir: str, ids: Iterable[str]) -> List[str]:
    """Everything of these machines still on the host: mounts, runc containers, network
    namespaces, cgroups, machine and snapshot directories, nft tables, loop devices. (One
    function, so it can later call the runtime's own inventory of host resources.)"""
    out = [f"mount {m}" for m in _mounts_under(data_dir)]
    runc_root = os.path.join(data_dir, "runc")
    if os.path.isdir(runc_root):
        out += [f"runc container {c}" for c in _run(["runc", "--root", runc_root, "list", "--quiet"]).split()]
    tables = _run(["nft", "list", "tables", "ip"])
    for mid in ids:
        if os.path.exists(f"/run/netns/ns-{mid}"):
            out.append(f"netns ns-{mid}")
        for root in _cgroup_roots():
            if os.path.exists(os.path.join(root, "nullspace", mid)):
                out.append(f"cgroup {root}/nullspace/{mid}")
        if os.path.exists(os.path.join(data_dir, "machines", mid)):
            out.append(f"machine dir {mid}")
        if f"table ip ns_{mid}\n" in tables:
            out.append(f"nft table ns_{mid}")
    snaps = os.path.join(data_dir, "snapshots")
    if os.path.isdir(snaps):
        out += [f"snapshot files {os.path.join(snaps, n)}" for n in os.listdir(snaps)]
    for line in _run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"]).splitlines():
        if line.strip().startswith(data_dir):
            out.append(f"loop device on {line.strip()}")
    return out


def force_clean(data_dir: str, ids: Iterable[str]) -> None:
    runc_root = os.path.join(data_dir, "runc")
    for mid in ids:
        _run(["runc", "--root", runc_root, "delete", "--force", mid])
        _run(["ip", "netns", "delete", f"ns-{mid}"])
        _run(["nft", "delete", "table", "ip", f"ns_{mid}"])
    for m in _mounts_under(data_dir):
        _run(["umount", "-l", m])


@pytest.fixture(scope="session")
def server() -> Any:
    reason = cannot_run_machines()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"cannot run in CI: {reason}")
        pytest.skip(reason)
    srv = TestServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.teardown()


def _a_machine(server: TestServer) -> Iterator[Any]:
    """A running machine, killed when the generator is closed."""
    from nullspace import Machine

    m = Machine.create(template="base")
    server.machine_ids.add(m.id)
    try:
        yield m
    finally:
        try:
            m.kill()
        except Exception:  # the test may have killed it; the teardown's leftovers check tells
            pass


@pytest.fixture
def machine(server: TestServer) -> Iterator[Any]:
    """A running machine for one test, killed after it."""
    yield from _a_machine(server)


@pytest.fixture(scope="module")
def shared_machine(server: TestServer) -> Iterator[Any]:
    """One running machine for the tests of a module that leave its lifecycle alone (each test
    works in paths of its own), killed after them: fewer creates, tests still independent."""
    yield from _a_machine(server)


def until(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.1) -> Any:
    """Polls ``check`` until it returns something truthy and returns that; fails naming ``what``
    after ``timeout`` seconds (a guard against a hang, not a measure)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def venv_python(tmp_root: str) -> str:
    """A venv without site-packages (and without pip): the SDK must run on the standard library."""
    path = os.path.join(tmp_root, "venv")
    if not os.path.exists(os.path.join(path, "bin", "python")):
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", path], check=True)
    return os.path.join(path, "bin", "python")


def sdk_env(server: TestServer, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        {
            "NULLSPACE_API_URL": server.url,
            "NULLSPACE_API_KEY": server.api_key,
            "PYTHONPATH": str(PYTHON_SRC),
            "PYTHONNOUSERSITE": "1",
        }
    )
    env.update(extra or {})
    return env
