"""The Python half of bench/python-sdk.mjs: runs one measurement with the Python SDK and prints
its samples (milliseconds) as JSON. Standard library only, like the SDK.

    python3 bench/python-sdk.py cycle sync|async N CONCURRENCY
    python3 bench/python-sdk.py run sync|async MACHINE_ID N
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "src"))

from nullspace import AsyncMachine, Machine, NullspaceError  # noqa: E402

Samples = Dict[str, List[Any]]


def ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000


def failed(samples: Samples, err: NullspaceError) -> None:
    machine_id = (err.details or {}).get("machine_id")
    reason = Machine.get_info_by_id(machine_id).status_reason if machine_id else str(err)
    samples["failures"].append(f"{err.code}: {reason}")


def cycle_sync(samples: Samples) -> None:
    t0 = time.perf_counter()
    try:
        m = Machine.create(template="base", timeout=3600)
    except NullspaceError as err:
        failed(samples, err)
        return
    samples["create"].append(ms_since(t0))
    t = time.perf_counter()
    m.commands.run("true")
    samples["run"].append(ms_since(t))
    t = time.perf_counter()
    m.kill()
    samples["kill"].append(ms_since(t))
    samples["cycle"].append(ms_since(t0))


async def cycle_async(samples: Samples) -> None:
    t0 = time.perf_counter()
    try:
        m = await AsyncMachine.create(template="base", timeout=3600)
    except NullspaceError as err:
        failed(samples, err)
        return
    samples["create"].append(ms_since(t0))
    t = time.perf_counter()
    await m.commands.run("true")
    samples["run"].append(ms_since(t))
    t = time.perf_counter()
    await m.kill()
    samples["kill"].append(ms_since(t))
    samples["cycle"].append(ms_since(t0))


def main() -> None:
    what, mode = sys.argv[1], sys.argv[2]
    samples: Samples = {"create": [], "run": [], "kill": [], "cycle": [], "failures": []}
    if what == "cycle":
        n, concurrency = int(sys.argv[3]), int(sys.argv[4])
        if mode == "sync":
            for _ in range(n // concurrency):
                threads = [threading.Thread(target=cycle_sync, args=(samples,)) for _ in range(concurrency)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        else:

            async def go() -> None:
                for _ in range(n // concurrency):
                    await asyncio.gather(*[cycle_async(samples) for _ in range(concurrency)])

            asyncio.run(go())
    else:
        machine_id, n = sys.argv[3], int(sys.argv[4])
        if mode == "sync":
            m = Machine(machine_id)
            m.commands.run("true")  # the connection is opened outside the samples, as in the TS run
            for _ in range(n):
                t = time.perf_counter()
                m.commands.run("true")
                samples["run"].append(ms_since(t))
        else:

            async def runs() -> None:
                am = AsyncMachine(machine_id)
                await am.commands.run("true")
                for _ in range(n):
                    t = time.perf_counter()
                    await am.commands.run("true")
                    samples["run"].append(ms_since(t))

            asyncio.run(runs())
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
