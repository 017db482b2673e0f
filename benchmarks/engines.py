"""The Dask and Ray runners against their raw engines, measured in the same run.

For each engine, on one 2-worker local cluster shared by both sides of the comparison:

- trivial tasks: ``--tasks`` mapped calls of ``x + 1``; raw ``client.map`` + ``gather`` (Dask) or
  raw ``.remote`` calls + ``ray.get`` (Ray), against ``inc.map(...).result()`` in a flow on the
  runner, fully tracked (every run stored before the flow returns; the store is checked).
- 50 ms tasks: ``--slow-tasks`` sleeps of 50 ms, for parallel efficiency (ideal time / wall time).

Prints a Markdown table: wall time, tasks/s and the runner's throughput as a ratio of raw.

    python -m benchmarks.engines --tasks 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "runners"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ["PYTHONPATH"] = os.pathsep.join(
    dict.fromkeys([str(ROOT), str(ROOT / "runners"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
)

from prefect_like import flow, task  # noqa: E402

SLOW = 0.05


def inc(x: int) -> int:
    return x + 1


def nap(x: int) -> int:
    time.sleep(SLOW)
    return x


inc_task = task(inc, name="inc")
nap_task = task(nap, name="nap")


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def tracked(runner: Any, fn_task: Any, n: int) -> float:
    """Wall time of a flow mapping ``fn_task`` over ``n`` items; checks every run was stored."""
    from prefect_like import settings
    from prefect_like.tracking.store import Store

    @flow(task_runner=runner, name="benchmark")
    def sweep(count: int) -> int:
        return len(fn_task.map(range(count)).result())

    started = time.perf_counter()
    state = sweep(n, return_state=True)
    elapsed = time.perf_counter() - started
    store = Store(settings.database_path())
    counts = store.get_flow_run(state.run_id)["task_runs"]
    if counts != {"Completed": n}:
        raise SystemExit(f"not fully tracked: {counts}")
    if hasattr(store, "close"):
        store.close()
    return elapsed


def bench_dask(n: int, slow: int, workers: int) -> list[tuple[str, int, float, float | None]]:
    from distributed import Client, LocalCluster
    from prefect_like_dask import DaskTaskRunner

    rows = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.gather(client.map(inc, range(200), pure=False))
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        tracked(runner, inc_task, 200)  # warm up both sides alike
        raw = timed(lambda: client.gather(client.map(inc, range(n), pure=False)))
        ours = tracked(runner, inc_task, n)
        rows += [("Dask raw client.map", n, raw, None), ("DaskTaskRunner", n, ours, raw / ours)]
        raw = timed(lambda: client.gather(client.map(nap, range(slow), pure=False)))
        ours = tracked(runner, nap_task, slow)
        rows += [(f"Dask raw client.map, {SLOW * 1000:g} ms tasks", slow, raw, None),
                 (f"DaskTaskRunner, {SLOW * 1000:g} ms tasks", slow, ours, raw / ours)]
    return rows


def bench_ray(n: int, slow: int, workers: int) -> list[tuple[str, int, float, float | None]]:
    import ray
    from prefect_like_ray import RayTaskRunner

    rows = []
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    try:
        remote_inc, remote_nap = ray.remote(inc), ray.remote(nap)
        ray.get([remote_inc.remote(i) for i in range(200)])
        runner = RayTaskRunner()
        tracked(runner, inc_task, 200)
        raw = timed(lambda: ray.get([remote_inc.remote(i) for i in range(n)]))
        ours = tracked(runner, inc_task, n)
        rows += [("Ray raw .remote", n, raw, None), ("RayTaskRunner", n, ours, raw / ours)]
        raw = timed(lambda: ray.get([remote_nap.remote(i) for i in range(slow)]))
        ours = tracked(runner, nap_task, slow)
        rows += [(f"Ray raw .remote, {SLOW * 1000:g} ms tasks", slow, raw, None),
                 (f"RayTaskRunner, {SLOW * 1000:g} ms tasks", slow, ours, raw / ours)]
    finally:
        ray.shutdown()
    return rows


def table(rows: list[tuple[str, int, float, float | None]], workers: int) -> str:
    lines = [
        "| what | tasks | wall time (s) | tasks/s | vs raw | parallel efficiency |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for what, n, seconds, ratio in rows:
        efficiency = ""
        if "ms tasks" in what:
            efficiency = f"{n * SLOW / workers / seconds:.0%}"
        vs = f"{ratio:.2f}x" if ratio is not None else "1x"
        lines.append(f"| {what} | {n} | {seconds:.2f} | {n / seconds:,.0f} | {vs} | {efficiency} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="trivial tasks per measurement")
    parser.add_argument("--slow-tasks", type=int, default=200, help=f"{SLOW * 1000:g} ms tasks per measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="dask,ray")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LIKE_HOME", tempfile.mkdtemp(prefix="prefect-like-bench-"))
    import logging

    logging.getLogger("prefect_like").setLevel(logging.WARNING)
    rows = []
    engines = args.engines.split(",")
    if "dask" in engines:
        rows += bench_dask(args.tasks, args.slow_tasks, args.workers)
    if "ray" in engines:
        rows += bench_ray(args.tasks, args.slow_tasks, args.workers)
    print(f"\n{args.workers} workers, {os.cpu_count()} cores, every runner row fully tracked in SQLite\n")
    print(table(rows, args.workers))


if __name__ == "__main__":
    main()
