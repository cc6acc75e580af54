#!/usr/bin/env python3
"""The code interpreter's bridge, inside a machine of the `code-interpreter` template.

It keeps the machine's code contexts — a Jupyter kernel (ipykernel, driven through jupyter_client
over IPC sockets), a persistent bash, or a Node.js `vm` context per context — and serves the
machine's agent over a Unix socket: one JSON request line per connection, answered by JSON lines
(one `{"ok": ...}` or `{"error": ...}` line, or a stream of events for a run or an install).
Nothing listens on the machine's network.

Everything lives in this process and its children, so pause, hibernate and fork keep it. A kernel
restored from a memory image would draw the same random numbers as its twin: the agent passes the
machine's id and execution id with every run, and when they change every context is reseeded
before its next run.
"""

import asyncio
import base64
import hashlib
import json
import mimetypes
import os
import queue
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback

STATE_DIR = os.environ.get("NULLSPACE_CODE_STATE", "/var/lib/nullspace-code")
SOCKET = os.path.join(STATE_DIR, "bridge.sock")
READY = os.path.join(STATE_DIR, "ready")
HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("NULLSPACE_CODE_VENV", "/opt/nullspace/venv")
JS_HOME = "/opt/nullspace/js"
ARTIFACTS = os.environ.get("NULLSPACE_ARTIFACTS_DIR", "/workspace/artifacts")
KERNEL_NAME = "nullspace-python"
LANGUAGES = ("python", "javascript", "bash")
# Executions kept for re-attach (finished ones beyond this are forgotten, oldest first).
KEEP_EXECUTIONS = 200
IMAGE_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg", "application/pdf": "pdf"}
# Jupyter MIME type -> the result's field.
RESULT_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/svg+xml": "svg",
    "application/pdf": "pdf",
    "application/json": "json",
    "text/latex": "latex",
    "application/javascript": "javascript",
}


class BridgeError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def new_id(prefix):
    return prefix + secrets.token_hex(8)


# ---- executions -------------------------------------------------------------------------------


class Execution:
    """One run: its events in order, kept so that a client can re-attach and get the rest."""

    def __init__(self, context):
        self.id = new_id("cex_")
        self.context_id = context.id
        self.language = context.language
        self.events = []
        self.done = False
        self.started_at = time.time()
        self.waiters = set()

    def emit(self, event):
        self.events.append(event)
        for w in list(self.waiters):
            w.set()

    def finish(self):
        self.done = True
        for w in list(self.waiters):
            w.set()

    async def follow(self, after=0):
        """Yields the events from index `after`, then each new one until the run ends."""
        i = after
        ev = asyncio.Event()
        self.waiters.add(ev)
        try:
            while True:
                while i < len(self.events):
                    yield self.events[i]
                    i += 1
                if self.done:
                    return
                ev.clear()
                await ev.wait()
        finally:
            self.waiters.discard(ev)


# ---- artifacts --------------------------------------------------------------------------------


class Artifacts:
    """Files under the artifacts directory: images a run displayed, and whatever code wrote there."""

    def __init__(self):
        self.owner = {}  # relative path -> execution id

    @staticmethod
    def id_of(rel):
        return "art_" + hashlib.sha256(rel.encode()).hexdigest()[:20]

    def save_result(self, execution_id, n, mime, b64):
        d = os.path.join(ARTIFACTS, "results")
        os.makedirs(d, exist_ok=True)
        rel = f"results/{execution_id}-{n}.{IMAGE_EXT[mime]}"
        data = base64.b64decode(b64) if mime != "image/svg+xml" else b64.encode()
        with open(os.path.join(ARTIFACTS, rel), "wb") as f:
            f.write(data)
        self.owner[rel] = execution_id
        return self.id_of(rel)

    def claim_new(self, execution_id, since):
        """Files changed since a run started are that run's."""
        for rel, st in self.walk():
            if st.st_mtime >= since - 0.001 and rel not in self.owner:
                self.owner[rel] = execution_id

    def walk(self):
        if not os.path.isdir(ARTIFACTS):
            return
        for root, _dirs, files in os.walk(ARTIFACTS):
            for name in files:
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                yield os.path.relpath(full, ARTIFACTS), st

    def list(self):
        out = []
        for rel, st in self.walk():
            out.append(
                {
                    "id": self.id_of(rel),
                    "name": rel,
                    "path": os.path.join(ARTIFACTS, rel),
                    "mime_type": mimetypes.guess_type(rel)[0] or "application/octet-stream",
                    "size": st.st_size,
                    "execution_id": self.owner.get(rel),
                    "created_at": iso(st.st_mtime),
                }
            )
        out.sort(key=lambda a: a["name"])
        return out

    def get(self, artifact_id):
        for a in self.list():
            if a["id"] == artifact_id:
                return a
        raise BridgeError("not_found", f"no artifact {artifact_id}")


ARTS = Artifacts()


# ---- contexts ---------------------------------------------------------------------------------


class Context:
    language = ""

    def __init__(self, cid, cwd, envs, default=False):
        self.id = cid
        self.cwd = cwd
        self.envs = dict(envs)
        self.default = default
        self.lock = asyncio.Lock()
        self.execution_count = 0
        self.created_at = iso()
        self.seeded_for = None  # the generation this context's random state was last seeded for
        self.pending = []  # silent code to run before the next run (after an install)

    def info(self):
        return {
            "id": self.id,
            "language": self.language,
            "cwd": self.cwd,
            "default": self.default,
            "created_at": self.created_at,
            "execution_count": self.execution_count,
        }

    def env(self):
        e = dict(os.environ)
        e.update(self.envs)
        e["NULLSPACE_ARTIFACTS_DIR"] = ARTIFACTS
        e["PATH"] = f"{VENV}/bin:{e.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        e["VIRTUAL_ENV"] = VENV
        return e

    async def ensure_seeded(self, generation, envs):
        """After a restore into another machine or execution: fresh random state, and the
        machine's envs (its id among them) as they are now."""
        if generation and self.seeded_for != generation:
            await self.reseed(envs or {})
            self.seeded_for = generation


class PythonContext(Context):
    language = "python"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.km = None
        self.kc = None
        self.died = None

    async def start(self):
        from jupyter_client.manager import AsyncKernelManager

        kdir = os.path.join(STATE_DIR, "kernels")
        os.makedirs(kdir, exist_ok=True)
        os.makedirs(self.cwd, exist_ok=True)
        km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc")
        km.ip = os.path.join(kdir, self.id)
        km.connection_file = os.path.join(kdir, f"{self.id}.json")
        env = self.env()
        env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        await km.start_kernel(cwd=self.cwd, env=env)
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        self.km, self.kc, self.died = km, kc, None

    async def stop(self):
        if self.kc:
            self.kc.stop_channels()
        if self.km:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception:
                pass
            for suffix in (".json",):
                try:
                    os.unlink(os.path.join(STATE_DIR, "kernels", self.id + suffix))
                except OSError:
                    pass
        self.km = self.kc = None

    async def alive(self):
        return self.km is not None and await self.km.is_alive()

    async def silent(self, code):
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                msg = await self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not await self.alive():
                    return
                continue
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return

    async def reseed(self, envs):
        await self.silent(
            "import random as _ns_r, os as _ns_o, sys as _ns_s\n"
            f"_ns_o.environ.update(__import__('json').loads({json.dumps(envs)!r}))\n"
            "_ns_r.seed(_ns_o.urandom(32))\n"
            "if 'numpy' in _ns_s.modules:\n"
            "    _ns_n = _ns_s.modules['numpy']\n"
            "    _ns_n.random.seed(_ns_n.frombuffer(_ns_o.urandom(32), dtype=_ns_n.uint32))\n"
            "    del _ns_n\n"
            "del _ns_r, _ns_o, _ns_s\n"
        )

    async def run(self, ex, code, timeout):
        for c in self.pending:
            await self.silent(c)
        self.pending.clear()
        kc = self.kc
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout if timeout else None
        interrupted = False
        results = 0
        error = None
        while True:
            if deadline and not interrupted and time.monotonic() > deadline:
                interrupted = True
                await self.km.interrupt_kernel()
            try:
                msg = await kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                if not await self.alive():
                    proc = getattr(getattr(self.km, "provisioner", None), "process", None)
                    code_ = proc.poll() if proc is not None else None
                    self.died = code_
                    ex.emit(
                        {
                            "type": "error",
                            "name": "KernelDied",
                            "value": "the kernel died"
                            + (f" (exit status {code_})" if code_ is not None else "")
                            + "; its state is lost and it restarts on the next run",
                            "traceback": [],
                        }
                    )
                    return None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t, c = msg["msg_type"], msg["content"]
            if t == "stream":
                ex.emit({"type": "stdout" if c["name"] == "stdout" else "stderr", "text": c["text"]})
            elif t in ("execute_result", "display_data"):
                results += 1
                ex.emit(result_event(ex, results, c.get("data", {}), t == "execute_result"))
            elif t == "error":
                error = {"name": c["ename"], "value": c["evalue"], "traceback": c["traceback"]}
                if interrupted and c["ename"] == "KeyboardInterrupt":
                    error = timeout_error(timeout, error["traceback"])
                ex.emit({"type": "error", **error})
            elif t == "status" and c["execution_state"] == "idle":
                break
        count = None
        try:
            while True:
                reply = await kc.get_shell_msg(timeout=5)
                if reply["parent_header"].get("msg_id") == msg_id:
                    count = reply["content"].get("execution_count")
                    break
        except queue.Empty:
            pass
        if interrupted and error is None:
            ex.emit({"type": "error", **timeout_error(timeout, [])})
        return count


def timeout_error(timeout, tb):
    return {
        "name": "TimeoutError",
        "value": f"execution exceeded its timeout of {timeout:g} s and was interrupted; the context is kept",
        "traceback": tb,
    }


def result_event(ex, n, data, main):
    ev = {"type": "result", "is_main_result": main}
    extra = {}
    for mime, value in data.items():
        field = RESULT_FIELDS.get(mime)
        if field is None:
            extra[mime] = value
            continue
        if field == "json":
            ev[field] = value
        else:
            ev[field] = value if isinstance(value, str) else "\n".join(value)
    if extra:
        ev["extra"] = extra
    for mime in IMAGE_EXT:
        field = RESULT_FIELDS[mime]
        if field in ev:
            try:
                ev.setdefault("artifact_ids", []).append(ARTS.save_result(ex.id, n, mime, ev[field]))
            except (OSError, ValueError):
                pass
    return ev


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class BashContext(Context):
    """A persistent bash: each run's code is sourced from a file, then a marker carries its status."""

    language = "bash"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.proc = None

    async def start(self):
        os.makedirs(self.cwd, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env=self.env(),
            start_new_session=True,
        )

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            for p in descendants(self.proc.pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def alive(self):
        return self.proc is not None and self.proc.returncode is None

    async def reseed(self, envs):
        # $RANDOM of a restored shell would repeat its twin's sequence.
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in envs.items())
        self.proc.stdin.write(f"{exports}RANDOM={int.from_bytes(os.urandom(2), 'little')}\n".encode())
        await self.proc.stdin.drain()

    async def run(self, ex, code, timeout):
        marker = "__nullspace_" + secrets.token_hex(8)
        path = os.path.join(STATE_DIR, "bash", f"{self.id}.sh")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(code)
            if not code.endswith("\n"):
                f.write("\n")
        self.proc.stdin.write(
            (
                f". '{path}'\n__ns_rc=$?; printf '\\n{marker}:%d\\n' \"$__ns_rc\"; "
                f"printf '\\n{marker}\\n' >&2\n"
            ).encode()
        )
        await self.proc.stdin.drain()
        status = {}

        async def pump(stream, kind):
            held = ""
            tail = "\n" + marker
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    if held:
                        ex.emit({"type": kind, "text": held})
                    return False
                held += chunk.decode("utf-8", errors="replace")
                i = held.find(tail)
                if i >= 0:
                    if i > 0:
                        ex.emit({"type": kind, "text": held[:i]})
                    rest = held[i + len(tail) :]
                    if kind == "stdout":
                        while "\n" not in rest:
                            more = await stream.read(64)
                            if not more:
                                break
                            rest += more.decode()
                        try:
                            status["rc"] = int(rest.split("\n", 1)[0].lstrip(":"))
                        except ValueError:
                            status["rc"] = None
                    return True
                # Hold back what could be the start of the marker.
                keep = len(tail)
                if len(held) > keep:
                    ex.emit({"type": kind, "text": held[:-keep]})
                    held = held[-keep:]

        tasks = [
            asyncio.ensure_future(pump(self.proc.stdout, "stdout")),
            asyncio.ensure_future(pump(self.proc.stderr, "stderr")),
        ]
        done, _ = await asyncio.wait(tasks, timeout=timeout or None)
        timed_out = False
        if len(done) < 2:
            timed_out = True
            kids = descendants(self.proc.pid)
            for sig in (signal.SIGINT, signal.SIGKILL):
                for p in kids:
                    try:
                        os.kill(p, sig)
                    except OSError:
                        pass
                done, _ = await asyncio.wait(tasks, timeout=1)
                if len(done) == 2:
                    break
            if len(done) < 2:
                # A loop of builtins: only the shell itself can be stopped, and its state with it.
                for t in tasks:
                    t.cancel()
                await self.stop()
                ex.emit(
                    {
                        "type": "error",
                        **timeout_error(timeout, []),
                        "value": f"execution exceeded its timeout of {timeout:g} s; the shell had to be "
                        "killed and restarts (its variables are lost) on the next run",
                    }
                )
                return self.execution_count + 1
        if timed_out:
            ex.emit({"type": "error", **timeout_error(timeout, [])})
        elif not all(t.result() for t in tasks):
            rc = await self.proc.wait() if self.proc else None
            await self.stop()
            ex.emit(
                {
                    "type": "error",
                    "name": "ShellExited",
                    "value": f"the shell exited (status {rc}); it restarts on the next run",
                    "traceback": [],
                }
            )
        else:
            rc = status.get("rc")
            ex.exit_code = rc
            if rc:
                ex.emit(
                    {"type": "error", "name": "ExitStatus", "value": f"exit status {rc}", "traceback": []}
                )
        return self.execution_count + 1


class JavascriptContext(Context):
    """A Node.js process holding one `vm` context (js_runner.mjs): requests on its stdin, events on a pipe."""

    language = "javascript"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.proc = None
        self.events = None
        self.current = None
        self.reader = None

    async def start(self):
        os.makedirs(self.cwd, exist_ok=True)
        r, w = os.pipe()
        node = shutil.which("node") or "/.nullspace/bin/node"
        self.proc = await asyncio.create_subprocess_exec(
            node,
            os.path.join(HERE, "js_runner.mjs"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env={**self.env(), "NULLSPACE_EVENTS_FD": str(w)},
            pass_fds=(w,),
            start_new_session=True,
        )
        os.close(w)
        loop = asyncio.get_running_loop()
        self.events = asyncio.StreamReader(limit=64 * 1024 * 1024)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self.events), os.fdopen(r, "rb", buffering=0)
        )
        self.reader = [
            asyncio.ensure_future(self.forward(self.proc.stdout, "stdout")),
            asyncio.ensure_future(self.forward(self.proc.stderr, "stderr")),
        ]

    async def forward(self, stream, kind):
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            if self.current:
                self.current.emit({"type": kind, "text": chunk.decode("utf-8", errors="replace")})

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for t in self.reader or []:
            t.cancel()
        self.proc = None

    async def alive(self):
        return self.proc is not None and self.proc.returncode is None

    async def send(self, msg):
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()

    async def reseed(self, envs):
        await self.send({"reseed": secrets.token_hex(16), "envs": envs})

    async def run(self, ex, code, timeout):
        rid = secrets.token_hex(6)
        self.current = ex
        try:
            await self.send({"id": rid, "code": code, "timeout_ms": int(timeout * 1000) if timeout else 0})
            while True:
                line = await self.events.readline()
                if not line:
                    await self.stop()
                    ex.emit(
                        {
                            "type": "error",
                            "name": "RuntimeExited",
                            "value": "the JavaScript runtime exited; it restarts on the next run",
                            "traceback": [],
                        }
                    )
                    return None
                msg = json.loads(line)
                if msg.get("id") != rid:
                    continue
                t = msg.pop("type")
                msg.pop("id", None)
                if t == "end":
                    # Output the runtime wrote to its own stdout before the end is forwarded first.
                    await asyncio.sleep(0)
                    return self.execution_count + 1
                if t == "result":
                    ex.emit({"type": "result", "is_main_result": True, **msg})
                else:
                    ex.emit({"type": t, **msg})
        finally:
            self.current = None


KINDS = {"python": PythonContext, "bash": BashContext, "javascript": JavascriptContext}


# ---- the bridge -------------------------------------------------------------------------------


class Bridge:
    def __init__(self):
        self.contexts = {}
        self.executions = {}
        self.generation = None
        self.machine_envs = {}
        self.starting = {}  # language -> the start of its default context, while it starts
        self.default_cwd = os.environ.get("NULLSPACE_CODE_CWD", "/workspace")

    async def create_context(self, language, cwd=None, envs=None, default=False):
        if language not in KINDS:
            raise BridgeError("invalid_argument", f"unknown language {language!r}")
        cid = f"default-{language}" if default else new_id("ctx_")
        ctx = KINDS[language](cid, cwd or self.default_cwd, envs or {}, default)
        await ctx.start()
        # A context started now draws fresh numbers already.
        ctx.seeded_for = self.generation
        self.contexts[cid] = ctx
        return ctx

    async def context_for(self, language, context_id):
        if context_id:
            ctx = self.contexts.get(context_id)
            if ctx is None:
                raise BridgeError("invalid_argument", f"context: no context {context_id} in this machine")
            if language and language != ctx.language:
                raise BridgeError(
                    "invalid_argument", f"context {context_id} runs {ctx.language}, not {language}"
                )
            return ctx
        language = language or "python"
        ctx = self.contexts.get(f"default-{language}")
        if ctx is None:
            # Runs that come at once for a default context not started yet wait for one start.
            starting = self.starting.get(language)
            if starting is None:
                starting = asyncio.ensure_future(self.create_context(language, envs=self.machine_envs, default=True))
                self.starting[language] = starting
                starting.add_done_callback(lambda _f: self.starting.pop(language, None))
            ctx = await asyncio.shield(starting)
        return ctx

    def get(self, cid):
        ctx = self.contexts.get(cid)
        if ctx is None:
            raise BridgeError("not_found", f"no context {cid}")
        return ctx

    async def run(self, req):
        if req.get("generation"):
            self.generation = req["generation"]
            self.machine_envs = req.get("machine_envs") or {}
        ctx = await self.context_for(req.get("language"), req.get("context"))
        ex = Execution(ctx)
        self.executions[ex.id] = ex
        self.forget_old()
        ex.emit({"type": "start", "execution_id": ex.id, "context_id": ctx.id, "language": ctx.language})
        asyncio.ensure_future(self.execute(ctx, ex, req))
        return ex

    async def execute(self, ctx, ex, req):
        async with ctx.lock:
            t0 = time.monotonic()
            started = time.time()
            ex.started_at = started
            count = None
            try:
                if not await ctx.alive():
                    restarted = ctx.km is not None if isinstance(ctx, PythonContext) else False
                    await ctx.stop()
                    await ctx.start()
                    ctx.seeded_for = self.generation
                    if restarted:
                        ex.emit({"type": "stderr", "text": "[the kernel had died: restarted, its state is lost]\n"})
                await ctx.ensure_seeded(self.generation, self.machine_envs)
                count = await ctx.run(ex, req["code"], req.get("timeout") or 0)
                if count is not None:
                    ctx.execution_count = count
            except Exception as e:  # the bridge's own failure, reported as the run's error
                ex.emit(
                    {
                        "type": "error",
                        "name": type(e).__name__,
                        "value": str(e),
                        "traceback": traceback.format_exc().splitlines(),
                    }
                )
            ARTS.claim_new(ex.id, started)
            end = {
                "type": "end",
                "execution_count": count,
                "duration_ms": round((time.monotonic() - t0) * 1000, 3),
            }
            if getattr(ex, "exit_code", None) is not None:
                end["exit_code"] = ex.exit_code
            ex.emit(end)
            ex.finish()

    def forget_old(self):
        if len(self.executions) <= KEEP_EXECUTIONS:
            return
        for eid in [e.id for e in self.executions.values() if e.done][: len(self.executions) - KEEP_EXECUTIONS]:
            del self.executions[eid]

    async def install(self, req, emit):
        language = req.get("language") or "python"
        packages = list(req.get("packages") or [])
        requirements = req.get("requirements")
        tmp = None
        if language == "python":
            cmd = [f"{VENV}/bin/python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            if req.get("no_index"):
                cmd.append("--no-index")
            cmd += packages
            if requirements:
                fd, tmp = tempfile.mkstemp(suffix=".txt", dir=STATE_DIR)
                with os.fdopen(fd, "w") as f:
                    f.write(requirements)
                cmd += ["-r", tmp]
        elif language == "javascript":
            npm = shutil.which("npm")
            if npm is None:
                emit({"type": "error", "name": "InstallError", "value": "npm is not installed in this machine"})
                return
            os.makedirs(JS_HOME, exist_ok=True)
            cmd = [npm, "install", "--prefix", JS_HOME, "--no-audit", "--no-fund", *packages]
        else:
            raise BridgeError("invalid_argument", f"install supports python and javascript, not {language!r}")
        t0 = time.monotonic()
        env = dict(os.environ, PIP_NO_INPUT="1", PIP_ROOT_USER_ACTION="ignore")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=self.default_cwd
        )
        err_tail = []

        async def pump(stream, kind):
            while True:
                line = await stream.readline()
                if not line:
                    return
                text = line.decode("utf-8", errors="replace")
                if kind == "stderr":
                    err_tail.append(text)
                    del err_tail[:-40]
                emit({"type": kind, "text": text})

        await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
        rc = await proc.wait()
        if tmp:
            os.unlink(tmp)
        if rc != 0:
            lines = [ln.strip() for ln in err_tail if ln.strip()]
            message = "\n".join(lines[-8:]) or f"exit status {rc}"
            emit({"type": "error", "name": "InstallError", "value": message, "exit_code": rc})
        elif language == "python":
            for ctx in self.contexts.values():
                if isinstance(ctx, PythonContext):
                    ctx.pending.append("import importlib as _ns_i; _ns_i.invalidate_caches(); del _ns_i")
        emit({"type": "end", "exit_code": rc, "duration_ms": round((time.monotonic() - t0) * 1000, 3)})

    async def handle(self, reader, writer):
        def write(obj):
            writer.write((json.dumps(obj) + "\n").encode())

        try:
            line = await reader.readline()
            if not line:
                return
            req = json.loads(line)
            op = req.get("op")
            if op in ("run", "attach"):
                if op == "run":
                    ex = await self.run(req)
                    after = 0
                else:
                    ex = self.executions.get(req.get("execution_id"))
                    if ex is None:
                        raise BridgeError("not_found", f"no execution {req.get('execution_id')}")
                    after = int(req.get("after") or 0)
                write({"ok": {"execution_id": ex.id}})
                async for ev in ex.follow(after):
                    write(ev)
                    await writer.drain()
                return
            if op == "install":
                write({"ok": {}})
                await self.install(req, write)
                await writer.drain()
                return
            write({"ok": await self.call(op, req)})
        except BridgeError as e:
            write({"error": {"code": e.code, "message": e.message}})
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as e:
            write({"error": {"code": "internal", "message": f"{type(e).__name__}: {e}"}})
        finally:
            try:
                await writer.drain()
                writer.close()
            except Exception:
                pass

    async def call(self, op, req):
        if op == "ping":
            return {"pid": os.getpid(), "contexts": len(self.contexts)}
        if op == "create_context":
            ctx = await self.create_context(req.get("language") or "python", req.get("cwd"), req.get("envs"))
            return ctx.info()
        if op == "list_contexts":
            return {"contexts": [c.info() for c in self.contexts.values()]}
        if op == "delete_context":
            ctx = self.get(req["id"])
            async with ctx.lock:
                await ctx.stop()
            self.contexts.pop(ctx.id, None)
            return ctx.info()
        if op == "restart_context":
            ctx = self.get(req["id"])
            async with ctx.lock:
                await ctx.stop()
                await ctx.start()
                ctx.seeded_for = self.generation
                ctx.execution_count = 0
            return ctx.info()
        if op == "list_artifacts":
            return {"artifacts": ARTS.list()}
        if op == "get_artifact":
            return ARTS.get(req["id"])
        if op == "get_execution":
            ex = self.executions.get(req.get("id"))
            if ex is None:
                raise BridgeError("not_found", f"no execution {req.get('id')}")
            return {"id": ex.id, "context_id": ex.context_id, "done": ex.done, "events": len(ex.events)}
        raise BridgeError("invalid_argument", f"unknown op {op!r}")


def already_serving():
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(SOCKET)
        s.sendall(b'{"op":"ping"}\n')
        return bool(s.recv(1))
    except OSError:
        return False
    finally:
        s.close()


async def main(prestart):
    os.makedirs(STATE_DIR, exist_ok=True)
    if already_serving():
        return
    try:
        os.unlink(SOCKET)
    except FileNotFoundError:
        pass
    try:
        os.unlink(READY)
    except FileNotFoundError:
        pass
    bridge = Bridge()
    server = await asyncio.start_unix_server(bridge.handle, path=SOCKET, limit=64 * 1024 * 1024)
    for language in prestart:
        await bridge.create_context(language, default=True)
    with open(READY, "w") as f:
        f.write(str(os.getpid()))
    print(f"code interpreter bridge ready on {SOCKET} (pid {os.getpid()})", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    pre = []
    if "--prestart" in args:
        pre = [x for x in args[args.index("--prestart") + 1].split(",") if x]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main(pre))
