"""The code interpreter against real machines of the ``code-interpreter`` template: state across
runs, contexts, streamed callbacks, errors as data, a chart as PNG and artifact, timeouts,
javascript and bash, an offline wheel install, InstallError, re-attach, and the async twin."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from conftest import TEMPLATES_DIR, TestServer
from nullspace import AsyncMachine, CodeResult, InstallError, InvalidArgumentError, Machine

TEMPLATE = "code-interpreter"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ci(server: TestServer) -> Iterator[Machine]:
    if not (Path(TEMPLATES_DIR) / TEMPLATE / "template.json").exists():
        reason = f"no {TEMPLATE} template in {TEMPLATES_DIR} (scripts/setup.sh builds it)"
        if os.environ.get("CI"):
            pytest.fail(f"cannot run in CI: {reason}")
        pytest.skip(reason)
    m = Machine.create(template=TEMPLATE, memory_mb=1024)
    server.machine_ids.add(m.id)
    try:
        yield m
    finally:
        m.kill()


def test_state_results_and_errors(ci: Machine) -> None:
    ci.code_interpreter.run("x = 6 * 7")
    ex = ci.code_interpreter.run("x")
    assert ex.text == "42" and ex.context_id == "default-python" and ex.error is None
    err = ci.code_interpreter.run("1/0")
    assert err.error is not None and err.error.name == "ZeroDivisionError"
    assert ci.code_interpreter.run("x + 1").text == "43"


def test_streams_with_callbacks(ci: Machine) -> None:
    out: List[str] = []
    errs: List[str] = []
    results: List[CodeResult] = []
    ex = ci.code_interpreter.run(
        'import sys\nprint("out")\nprint("err", file=sys.stderr)\n"value"',
        on_stdout=out.append,
        on_stderr=errs.append,
        on_result=results.append,
    )
    assert "".join(out) == "out\n" and "".join(errs) == "err\n"
    assert ex.logs.stdout == out and ex.logs.stderr == errs
    assert [r.text for r in results] == ["'value'"] and results[0].is_main_result


def test_contexts_apart_and_listed(ci: Machine) -> None:
    a = ci.code_interpreter.create_context()
    b = ci.code_interpreter.create_context(language="python")
    ci.code_interpreter.run("v = 'a'", context=a)
    ci.code_interpreter.run("v = 'b'", context=b.id)
    assert ci.code_interpreter.run("v", context=a).text == "'a'"
    assert ci.code_interpreter.run("v", context=b).text == "'b'"
    assert {a.id, b.id} <= {c.id for c in ci.code_interpreter.list_contexts()}
    restarted = ci.code_interpreter.restart_context(a)
    assert restarted.execution_count == 0
    assert ci.code_interpreter.run("v", context=a).error.name == "NameError"
    ci.code_interpreter.delete_context(a)
    ci.code_interpreter.delete_context(b)
    assert a.id not in {c.id for c in ci.code_interpreter.list_contexts()}


def test_chart_as_png_and_artifact(ci: Machine) -> None:
    ex = ci.code_interpreter.run("import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nplt.show()")
    chart = next(r for r in ex.results if r.png)
    data = base64.b64decode(chart.png)
    assert data[:8] == PNG and "png" in chart.formats()
    art = next(a for a in ci.code_interpreter.list_artifacts() if a.execution_id == ex.id)
    assert art.mime_type == "image/png" and art.size == len(data)
    assert ci.code_interpreter.download_artifact(art) == data


def test_timeout_keeps_the_context(ci: Machine) -> None:
    ci.code_interpreter.run("kept = 1")
    ex = ci.code_interpreter.run("import time\ntime.sleep(60)", timeout=1)
    assert ex.error is not None and ex.error.name == "TimeoutError"
    assert ci.code_interpreter.run("kept").text == "1"


def test_javascript_and_bash(ci: Machine) -> None:
    assert ci.code_interpreter.run("[1, 2, 3].map((x) => x * 2)", language="javascript").text == "[ 2, 4, 6 ]"
    sh = ci.code_interpreter.create_context(language="bash")
    ci.code_interpreter.run("N=5", context=sh)
    ex = ci.code_interpreter.run("echo $((N * 2)); exit_code_test() { return 3; }; exit_code_test", context=sh)
    assert ex.logs.stdout == ["10\n"] and ex.exit_code == 3 and ex.error.name == "ExitStatus"


def test_offline_wheel_install_then_import(ci: Machine) -> None:
    r = ci.commands.run(
        "set -e; rm -rf /tmp/pywheel && mkdir -p /tmp/pywheel/pyns && echo 'VALUE = 7' > /tmp/pywheel/pyns/__init__.py\n"
        "printf 'from setuptools import setup\\nsetup(name=\"pyns\", version=\"0.1\", packages=[\"pyns\"])\\n' > /tmp/pywheel/setup.py\n"
        "/opt/nullspace/venv/bin/python -m pip wheel -q --no-deps --no-index --no-build-isolation -w /tmp/pywheel/dist /tmp/pywheel\n"
        "ls /tmp/pywheel/dist",
        shell=True,
        timeout=120,
    )
    assert r.exit_code == 0, r.stderr
    logged: List[str] = []
    done = ci.code_interpreter.install([f"/tmp/pywheel/dist/{r.stdout.strip()}"], no_index=True, on_stdout=logged.append)
    assert "Successfully installed pyns-0.1" in done.stdout and "".join(logged) == done.stdout
    assert ci.code_interpreter.run("import pyns; pyns.VALUE").text == "7"
    with pytest.raises(InstallError) as info:
        ci.code_interpreter.install(["/tmp/pywheel/missing.whl"], no_index=True)
    assert info.value.code == "install_failed" and "missing.whl" in info.value.message


def test_bad_input_is_refused(ci: Machine) -> None:
    with pytest.raises(InvalidArgumentError):
        ci.code_interpreter.run("1", language="cobol")
    with pytest.raises(InvalidArgumentError):
        ci.code_interpreter.run("1", context="ctx_0000000000000000")


def test_attach_replays_a_finished_run(ci: Machine) -> None:
    ex = ci.code_interpreter.run('print("a")\nprint("b")\n"end"')
    again = ci.code_interpreter.attach(ex.id)
    assert again.logs.stdout == ex.logs.stdout and again.text == "'end'" and again.done
    rest = ci.code_interpreter.attach(ex.id, after=ex.event_count - 1)
    assert rest.logs.stdout == [] and rest.done


def test_async_twin(ci: Machine) -> None:
    async def main() -> Any:
        m = AsyncMachine(ci.id)
        ctx = await m.code_interpreter.create_context()
        await m.code_interpreter.run("a = 20", context=ctx)
        seen: List[str] = []
        ex = await m.code_interpreter.run("print('hi')\na + 1", context=ctx, on_stdout=seen.append)
        contexts = await m.code_interpreter.list_contexts()
        await m.code_interpreter.delete_context(ctx)
        return ex, seen, ctx, contexts

    ex, seen, ctx, contexts = asyncio.run(main())
    assert ex.text == "21" and seen == ["hi\n"]
    assert ctx.id in {c.id for c in contexts}
