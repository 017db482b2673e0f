"""Measure one workload in a fresh process, so peak memory belongs to that workload alone.

The parent runs ``python -m benchmarks.harness WORKLOAD RUNNER N`` for each measurement and
reads one JSON line back: wall time, tasks per second, peak RSS of the process (and of its
children, for engines with worker processes), and how many task runs the store recorded.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

WORKLOADS: dict[str, Callable[[str, int], Callable[[], Any]]] = {}


def workload(name: str) -> Callable[[Callable[[str, int], Callable[[], Any]]], Callable[[str, int], Callable[[], Any]]]:
    def register(fn: Callable[[str, int], Callable[[], Any]]) -> Callable[[str, int], Callable[[], Any]]:
        WORKLOADS[name] = fn
        return fn

    return register


def inc(x: int) -> int:
    return x + 1


@workload("trivial-map")
def trivial_map(runner: str, n: int) -> Callable[[], Any]:
    """N tasks of ``x + 1`` mapped, results summed: pure per-task overhead."""
    if runner == "raw-loop":
        return lambda: sum(inc(i) for i in range(n))
    if runner == "raw-thread":
        from concurrent.futures import ThreadPoolExecutor

        def run() -> int:
            with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
                return sum(f.result() for f in [pool.submit(inc, i) for i in range(n)])

        return run
    if runner == "raw-asyncio":
        import asyncio

        async def ainc(x: int) -> int:
            return x + 1

        async def gather() -> int:
            return sum(await asyncio.gather(*(ainc(i) for i in range(n))))

        return lambda: asyncio.run(gather())

    from prefect_like import flow, task

    tracked = task(inc)

    @flow(name="bench-trivial-map", task_runner=runner)
    def sweep(n: int) -> int:
        return sum(tracked.map(range(n)).result())

    return lambda: sweep(n)


def measure(workload_name: str, runner: str, n: int) -> dict[str, Any]:
    run = WORKLOADS[workload_name](runner, n)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result: dict[str, Any] = {
        "workload": workload_name,
        "runner": runner,
        "tasks": n,
        "wall_s": round(wall, 4),
        "tasks_per_s": round(n / wall, 1),
        "peak_rss_bytes": own,
        "peak_rss_children_bytes": children,
    }
    if not runner.startswith("raw-"):
        from prefect_like import settings
        from prefect_like.tracking.store import Store

        with Store(settings.database_path()) as store:
            latest = store.list_flow_runs(limit=1)
            result["recorded_task_runs"] = sum(latest[0]["task_runs"].values()) if latest else 0
    return result


def run_isolated(workload_name: str, runner: str, n: int, timeout: float = 1800) -> dict[str, Any]:
    """Measure in a fresh interpreter with a fresh PREFECT_LIKE_HOME."""
    with tempfile.TemporaryDirectory(prefix="prefect-like-bench-") as home:
        env = {**os.environ, "PREFECT_LIKE_HOME": home}
        env.pop("PREFECT_LIKE_API_URL", None)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness", workload_name, runner, str(n)],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{workload_name}/{runner}/{n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    name, runner_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(measure(name, runner_name, count)))
