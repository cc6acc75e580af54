"""The Python quick start (docs/python.md): python3 examples/quickstart.py, with
NULLSPACE_API_URL and NULLSPACE_API_KEY set (or a server on http://127.0.0.1:7070)."""

import sys
from pathlib import Path

# Runs from a checkout without installing the SDK.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python" / "src"))

from nullspace import Machine  # noqa: E402

with Machine.create(template="base", timeout=300, metadata={"project": "docs"}) as machine:
    result = machine.commands.run("python3 --version", shell=True)
    print(machine.id, result.stdout.strip())
    info = machine.get_info()
    print(info.status, f"{info.vcpus} vcpu", f"{info.memory_mb} MiB", info.cwd)
    machine.files.write("/workspace/hello.txt", "hello\n")
    print(machine.commands.run("cat /workspace/hello.txt", shell=True).stdout, end="")
