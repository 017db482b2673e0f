"""The Dask and Ray runners against their raw engines on workloads that are not ``x + 1``.

    python -m benchmarks.cluster                      # every case, both engines, full size
    python -m benchmarks.cluster --cases fanout-1mb --engines dask --scale 0.02

Three cases from issue 15, each side (runner, raw) in a fresh process on the same local cluster
shape (2 workers of 1 thread on Dask, 2 CPUs on Ray):

- ``fanout-1mb``: 5,000 tasks returning 1 MB numpy arrays and one fan-in task over all of them;
  wall time and the flow (driver) process's peak RSS growth, against raw ``client.map`` /
  ``.remote``.
- ``mixed``: 20 runs of 1 ms then 40 of 0.5 s; parallel efficiency (the runs' own time over
  wall x slots) against raw.
- ``global-10mb``: 200 runs of a task in an importable module with a 10 MB module-level table;
  wall time against raw (the runner ships the function by reference when workers import it).

``--scale`` multiplies every count (0.02 for a quick check that it works).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = ("fanout-1mb", "mixed", "global-10mb")
MB = 1 << 20

TABLE_MODULE = textwrap.dedent(
    """
    import numpy

    TABLE = numpy.arange(10 * 2**20 // 8, dtype="float64")  # 10 MB at import


    def lookup(i):
        return float(TABLE[i % TABLE.size])
    """
)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _counts(case: str, scale: float) -> dict[str, int]:
    return {
        "fanout-1mb": {"n": max(4, int(5000 * scale))},
        "mixed": {"fast": max(2, int(20 * scale)), "slow": max(4, int(40 * scale))},
        "global-10mb": {"n": max(4, int(200 * scale))},
    }[case]


def child(case: str, engine: str, side: str, scale: float, folder: str) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    import numpy

    sys.path.insert(0, folder)  # the module with the 10 MB table
    import bench_table  # type: ignore[import-not-found]

    from prefect_like import flow, task

    counts = _counts(case, scale)
    env_path = os.pathsep.join([str(ROOT), str(ROOT / "runners"), folder])
    if engine == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", env={"PYTHONPATH": env_path}
        )
        client = Client(cluster)
        slots = 2
    else:
        import ray

        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": env_path}},
        )
        slots = 2

    def make(i: int) -> Any:
        return numpy.full(MB // 8, float(i))

    def total(arrays: list) -> float:
        return float(sum(a[0] for a in arrays))

    def sleep_for(seconds: float) -> float:
        started = time.perf_counter()
        time.sleep(seconds)
        return time.perf_counter() - started

    durations = [0.001] * counts.get("fast", 0) + [0.5] * counts.get("slow", 0)
    make_t, total_t, sleep_t, lookup_t = (task(f) for f in (make, total, sleep_for, bench_table.lookup))
    runner: Any = None
    if side == "runner" and engine == "dask":
        from prefect_like_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=cluster.scheduler_address)
    elif side == "runner":
        from prefect_like_ray import RayTaskRunner

        runner = RayTaskRunner()
    # Set-up is not timed, as in the main harness: one round trip through the engine on each
    # side (for the runner, a one-task flow: the store's schema, imports, the first connection).
    if runner is not None:
        flow(task_runner=runner)(lambda: sleep_t.submit(0.0).result())()
    elif engine == "dask":
        client.submit(sleep_for, 0.0, pure=False).result()
    else:
        ray.get(ray.remote(sleep_for).remote(0.0))
    baseline = _peak_rss()
    started = time.perf_counter()
    busy = 0.0
    fanned_in: Any = None
    if side == "raw" and engine == "dask":
        if case == "fanout-1mb":
            futures = client.map(make, range(counts["n"]))
            fanned_in = client.submit(lambda *a: total(list(a)), *futures).result()
        elif case == "mixed":
            busy = sum(client.gather(client.map(sleep_for, durations, pure=False)))
        else:
            client.gather(client.map(bench_table.lookup, range(counts["n"])))
    elif side == "raw":
        make_r, total_r, sleep_r = (
            ray.remote(f) for f in (make, lambda *a: total(list(a)), sleep_for)
        )
        if case == "fanout-1mb":
            fanned_in = ray.get(total_r.remote(*[make_r.remote(i) for i in range(counts["n"])]))
        elif case == "mixed":
            busy = sum(ray.get([sleep_r.remote(d) for d in durations]))
        else:
            ray.get([ray.remote(bench_table.lookup).remote(i) for i in range(counts["n"])])
    else:

        @flow(task_runner=runner)
        def sweep() -> Any:
            if case == "fanout-1mb":
                return total_t.submit(make_t.map(range(counts["n"]))).result()
            if case == "mixed":
                return sum(sleep_t.map(durations).result())
            return lookup_t.map(range(counts["n"])).result()

        value = sweep()
        busy = value if case == "mixed" else 0.0
        fanned_in = value
    wall = time.perf_counter() - started
    if case == "fanout-1mb" and fanned_in != float(sum(range(counts["n"]))):
        raise AssertionError(f"the fan-in summed {fanned_in}, not {float(sum(range(counts['n'])))}")
    row: dict[str, Any] = {
        "case": case,
        "engine": engine,
        "side": side,
        **counts,
        "wall_s": round(wall, 3),
        "peak_rss_growth_mb": round((_peak_rss() - baseline) / MB, 1),
    }
    if case == "mixed":
        row["efficiency"] = round(busy / (wall * slots), 3)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--engines", default="dask,ray")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count")
    parser.add_argument(
        "--child", nargs=4, metavar=("CASE", "ENGINE", "SIDE", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        case, engine, side, folder = args.child
        print(json.dumps(child(case, engine, side, args.scale, folder)))
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "bench_table.py").write_text(TABLE_MODULE)
        env = {
            **os.environ,
            "PREFECT_LIKE_HOME": str(Path(folder, "home")),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners"), folder]),
        }
        for case in args.cases.split(","):
            for engine in args.engines.split(","):
                for side in ("raw", "runner"):
                    done = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.cluster",
                            "--scale",
                            str(args.scale),
                            "--child",
                            case,
                            engine,
                            side,
                            folder,
                        ],
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=3600,
                    )
                    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                    if done.returncode or not lines:
                        print(
                            f"{case} {engine} {side}: failed\n{done.stderr[-2000:]}",
                            file=sys.stderr,
                        )
                        continue
                    print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
