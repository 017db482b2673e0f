"""Measure one workload in a fresh process, so peak memory belongs to that workload alone.

The parent runs ``python -m benchmarks.harness WORKLOAD RUNNER N`` for each measurement and
reads one JSON line back: wall time, tasks per second, peak RSS of the process, peak RSS of the
whole process tree (for Dask and Ray: worker processes, Ray's raylet, sampled with psutil
every 100 ms during the run; the in-process runners have no children), RSS just before the run, and how many task runs the tracker (embedded
store, or the server at PREFECT_LIKE_API_URL) holds for the flow run when the flow call returns.

The workloads live in ``benchmarks.workloads`` and register here (``@workload``); their setup
(clusters, warm-up) is done before the timed call and closed through ``CLEANUP`` after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLEANUP = ExitStack()
WORKLOADS: dict[str, Callable[[str, int], Callable[[], Any]]] = {}


def workload(name: str) -> Callable[[Callable[[str, int], Callable[[], Any]]], Callable[[str, int], Callable[[], Any]]]:
    def register(fn: Callable[[str, int], Callable[[], Any]]) -> Callable[[str, int], Callable[[], Any]]:
        WORKLOADS[name] = fn
        return fn

    return register


class TreeSampler:
    """Peak RSS of this process and of all its descendants, sampled on a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.peak_tree = self.peak_own = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        import psutil

        own = self.me.memory_info().rss
        tree = own
        for child in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a worker that just exited
                tree += child.memory_info().rss
        self.peak_own, self.peak_tree = max(self.peak_own, own), max(self.peak_tree, tree)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):  # the sampling period
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def recorded_task_runs(flow_name: str) -> dict[str, Any]:
    """Task runs the tracker holds for the newest run of ``flow_name``, by state."""
    from prefect_like.client import connect

    with connect() as reader:
        runs = reader.list_flow_runs(flow_name=flow_name, limit=1)
        if not runs:
            return {"recorded_task_runs": 0, "recorded_states": {}}
        counts = reader.task_run_counts(runs[0]["id"])
    return {"recorded_task_runs": sum(counts.values()), "recorded_states": counts}


def measure(workload_name: str, runner: str, n: int) -> dict[str, Any]:
    import psutil

    run = WORKLOADS[workload_name](runner, n)
    rss_before = psutil.Process().memory_info().rss
    # Only engines with worker processes are sampled: a scan of /proc every few ms costs the GIL.
    tree = TreeSampler(0.1) if runner.endswith(("dask", "ray")) else contextlib.nullcontext(None)
    with tree as sampler:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result: dict[str, Any] = {
        "workload": workload_name,
        "runner": runner,
        "tracking": "none" if runner.startswith("raw-") else ("server" if os.environ.get("PREFECT_LIKE_API_URL") else "embedded"),
        "tasks": n,
        "wall_s": round(wall, 4),
        "tasks_per_s": round(n / wall, 1),
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": own,
        "peak_rss_tree_bytes": max(sampler.peak_tree, own) if sampler else own,
    }
    if not runner.startswith("raw-"):
        result.update(recorded_task_runs(f"bench-{workload_name}"))  # read before anything else
    CLEANUP.close()
    return result


def run_isolated(workload_name: str, runner: str, n: int, timeout: float = 1800,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """Measure in a fresh interpreter with a fresh PREFECT_LIKE_HOME; ``env`` adds variables
    (PREFECT_LIKE_API_URL for server mode)."""
    with tempfile.TemporaryDirectory(prefix="prefect-like-bench-") as home:
        path = [str(ROOT), str(ROOT / "runners"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        child_env = {**os.environ, "PREFECT_LIKE_HOME": home, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
        child_env.pop("PREFECT_LIKE_API_URL", None)
        child_env.update(env or {})
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness", workload_name, runner, str(n)],
            capture_output=True, text=True, env=child_env, timeout=timeout, check=False, cwd=ROOT,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{workload_name}/{runner}/{n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> None:
    import logging

    logging.getLogger("prefect_like").setLevel(logging.WARNING)
    name, runner_name, count = argv[0], argv[1], int(argv[2])
    print(json.dumps(measure(name, runner_name, count)), flush=True)


from benchmarks import workloads as _workloads  # noqa: E402,F401  - registers the workloads

if __name__ == "__main__":
    from benchmarks import harness  # this module under its own name, whose registry is filled

    harness.main(sys.argv[1:])
