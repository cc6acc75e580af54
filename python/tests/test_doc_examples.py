"""Every Python example of the product docs (docs/product/*.txt, copies of ../shared/spec/*.txt)
runs verbatim against a real server, in a venv without site-packages (so the SDK must be
standard library only).

The examples are read out of the docs when the tests are collected, so a new example is tested
the day it is written. The docs are plain text without code fences: an example is a run of lines
that look like Python statements and that Python parses, mentioning the SDK. Each runs after a
prelude giving it what the page had set up before it (``from nullspace import Machine`` and a
``machine`` handle); the ids the docs make up are swapped for real ones: ``mch_123`` for a running
machine, ``twp_review_api_small`` for a warm pool of the template ``team/review-api:stable``,
which the fixture builds under that very name.
"""

from __future__ import annotations

import ast
import filecmp
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from conftest import ROOT, TestServer, sdk_env, venv_python

DOCS = ROOT / "docs" / "product"
# ../shared/spec next to the repository (NULLSPACE_SHARED_SPEC names it elsewhere, e.g. from a worktree).
SHARED_SPEC = Path(os.environ.get("NULLSPACE_SHARED_SPEC") or ROOT.parent / "shared" / "spec")

# A line that can start or continue an example: a statement, an assignment, a call, a closing
# bracket, or an indented line. Prose ("Use connect when ...") matches none of these.
CODE_LINE = re.compile(
    r"^(\s+\S|from \w|import \w|with \w|for \w|while \w|if \w|print\(|[A-Za-z_][\w.\[\]\"']*\s*=[^=]|[A-Za-z_][\w.]*\(|[)\]}])"
)


def extract_examples(text: str) -> List[str]:
    """The Python examples of one page, in order."""
    lines = text.split("\n")
    examples: List[str] = []
    i = 0
    while i < len(lines):
        if not CODE_LINE.match(lines[i]) or lines[i].startswith((" ", "\t")):
            i += 1
            continue
        j = i
        block: List[str] = []
        while j < len(lines):
            line = lines[j]
            if CODE_LINE.match(line):
                block.append(line)
                j += 1
            elif line.strip() == "" and j + 1 < len(lines) and CODE_LINE.match(lines[j + 1]):
                block.append(line)
                j += 1
            else:
                break
        code = "\n".join(block).strip("\n")
        if _is_example(code):
            examples.append(code + "\n")
        i = max(j, i + 1)
    return examples


def _is_example(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return bool(names & {"Machine", "machine", "AsyncMachine", "Sandbox", "sandbox", "MachineQuery"}) or "nullspace" in code


def all_examples() -> List[Tuple[str, str]]:
    out = []
    for page in sorted(DOCS.glob("*.txt")):
        for n, code in enumerate(extract_examples(page.read_text()), 1):
            out.append((f"{page.stem}#{n}", code))
    return out


EXAMPLES = all_examples()


def test_the_docs_have_examples() -> None:
    # The pages hold nine Python examples today; fewer means the extraction broke.
    assert len(EXAMPLES) >= 9, [name for name, _ in EXAMPLES]


def test_doc_copies_equal_the_shared_spec() -> None:
    if not SHARED_SPEC.is_dir():
        pytest.skip(f"{SHARED_SPEC} is not next to the repository: nothing to compare with")
    originals = sorted(p.name for p in SHARED_SPEC.glob("*.txt"))
    copies = sorted(p.name for p in DOCS.glob("*.txt"))
    assert copies == originals
    for name in originals:
        assert filecmp.cmp(SHARED_SPEC / name, DOCS / name, shallow=False), f"docs/product/{name} differs from the spec"


@pytest.fixture(scope="module")
def doc_world(server: TestServer, tmp_path_factory: Any) -> Any:
    """What the examples name: a running machine, the template team/review-api:stable and a warm
    pool of it, and a venv without site-packages."""
    from nullspace import Machine, Template, WarmPool

    Template.build("team/review-api:stable", run=["mkdir -p /srv/review-api"])
    pool = WarmPool.create(template="team/review-api:stable", size=1)
    machine = Machine.create(template="base", metadata={"project": "docs"})
    server.machine_ids.add(machine.id)
    world: Dict[str, Any] = {
        "python": venv_python(str(tmp_path_factory.mktemp("docvenv"))),
        "ids": {"mch_123": machine.id, "twp_review_api_small": pool.id},
        "machine": machine,
    }
    try:
        yield world
    finally:
        WarmPool.delete(pool.id)
        machine.kill()


@pytest.mark.parametrize("name,code", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_doc_example_runs(name: str, code: str, doc_world: Dict[str, Any], server: TestServer) -> None:
    body = code
    for made_up, real in doc_world["ids"].items():
        body = body.replace(made_up, real)
    prelude = f"from nullspace import Machine\nmachine = Machine.connect({doc_world['machine'].id!r})\n"
    proc = subprocess.run(
        [doc_world["python"], "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); exec(sys.argv[2])", str(ROOT / "python" / "src"), prelude + body],
        env=sdk_env(server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(f"--- {name}\n{body}--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() != "" or "print(" not in body
