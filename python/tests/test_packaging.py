"""The SDK builds into a wheel offline (``pip wheel --no-build-isolation``), has no runtime
dependency, and installs and imports in a fresh venv. Needs no server."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT


def test_wheel_builds_installs_and_imports(tmp_path: Path) -> Any:
    if subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is missing (python3-pip; scripts/setup.sh installs it)")
    # Built from a copy, so the checkout gets no build/ or egg-info directories.
    src = tmp_path / "python"
    shutil.copytree(ROOT / "python", src, ignore=shutil.ignore_patterns("__pycache__", "tests", "build", "*.egg-info"))
    out = tmp_path / "dist"
    subprocess.run(
        ["/usr/bin/python3", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    wheels = list(out.glob("nullspace-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as whl:
        names = whl.namelist()
        assert "nullspace/__init__.py" in names and "nullspace/py.typed" in names
        meta = next(n for n in names if n.endswith("METADATA"))
        text = whl.read(meta).decode()
    assert "Requires-Python: >=3.9" in text
    assert "Requires-Dist" not in text, "the SDK must have no runtime dependency"
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-index", "--no-deps", "-q", str(wheels[0])], check=True
    )
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import nullspace; print(nullspace.__file__, nullspace.Machine.__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)) and where.strip().endswith("Machine")
