"""The benchmark suite: every workload on every runner, tracked, next to its raw baseline.

    python -m benchmarks --quick                       # tiny sizes, in-process runners, < 2 minutes
    python -m benchmarks --full --peers prefect --docs # the whole table, Prefect 3 too, into docs/
    python -m benchmarks --quick --tasks 200 --runners thread --modes embedded

Each measurement is a fresh process (``harness.run_isolated``), so its peak RSS is its own. For
every (workload, runner, size) row the raw baseline, the tracked run with the embedded store and
the tracked run streaming to a real tracking server (``python -m prefect_like.server`` on
127.0.0.1, started for the row and stopped after) are measured alternately, ``repeat`` rounds;
wall times are medians and the ratio is the median of the per-round ratios. Results go to
``benchmarks/results/bench-STAMP.json`` and ``.md``; ``--docs`` also rewrites the generated block
of ``docs/benchmarks.md`` and the plot ``docs/images/benchmarks-throughput.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.harness import run_isolated
from benchmarks.workloads import BASELINE, EXPECTED_TASK_RUNS

IN_PROCESS = ("sequential", "thread", "asyncio")
ENGINES = ("dask", "ray")
OTHER_WORKLOADS = ("chain", "diamond", "sleep-10ms", "cpu-10ms", "big-results", "retries", "cache-hits")
SMALLER = {"sleep-10ms": 5, "cpu-10ms": 5, "big-results": 5}  # n divided by this: 10 ms or 1 MB each


def plan(full: bool, tasks: int | None) -> list[tuple[str, str, int, tuple[str, ...], int]]:
    """(workload, runner, n, tracking modes, rounds) for every row."""
    both = ("embedded", "server")
    if not full:
        n = tasks or 200
        rows = [("trivial-map", r, n, both, 1) for r in IN_PROCESS]
        rows += [(w, r, max(n // SMALLER.get(w, 1), 2), both, 1) for w in OTHER_WORKLOADS for r in IN_PROCESS]
        return rows
    sizes = [tasks] if tasks else [1_000, 10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        rounds = 3 if n <= 10_000 else 2 if n <= 100_000 else 1
        for runner in ("sequential", "thread"):
            rows.append(("trivial-map", runner, n, both if n < 1_000_000 else ("embedded",), rounds))
        if n <= 100_000:
            rows.append(("trivial-map", "asyncio", n, both, min(rounds, 2)))
        if 10_000 <= n <= 100_000:
            rows += [("trivial-map", engine, n, both if n < 100_000 else ("embedded",), 1) for engine in ENGINES]
    if not tasks:  # the size of the core issue's 2x target
        rows.append(("trivial-map", "thread", 200_000, ("embedded",), 2))
    other = tasks or 1_000
    rows += [(w, r, other // SMALLER.get(w, 1), both, 1) for w in OTHER_WORKLOADS for r in IN_PROCESS]
    rows += [(w, r, 200, ("embedded",), 1) for w in ("diamond", "sleep-10ms") for r in ENGINES]
    return rows


def measure_row(workload: str, runner: str, n: int, modes: tuple[str, ...], rounds: int) -> list[dict[str, Any]]:
    from benchmarks.server import Server

    baseline = BASELINE[runner]
    raws: list[dict[str, Any]] = []
    ours: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="prefect-like-bench-server-") as home:
        server = Server(Path(home)) if "server" in modes else None
        try:
            for _ in range(rounds):
                raws.append(run_isolated(workload, baseline, n))
                for mode in modes:
                    env = {"PREFECT_LIKE_API_URL": server.url} if mode == "server" and server else None
                    ours[mode].append(run_isolated(workload, runner, n, env=env))
        finally:
            if server is not None:
                server.stop()
    expected = EXPECTED_TASK_RUNS.get(workload, lambda k: k)(n)
    return [report.row(workload, runner, baseline, mode, n, expected, raws, ours[mode]) for mode in modes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny sizes, in-process runners (the default)")
    size.add_argument("--full", action="store_true", help="the whole table: up to 1,000,000 tasks, Dask and Ray")
    parser.add_argument("--tasks", type=int, help="one size instead of the plan's sizes")
    parser.add_argument("--runners", help="comma-separated: only these runners")
    parser.add_argument("--workloads", help="comma-separated: only these workloads")
    parser.add_argument("--modes", help="comma-separated: embedded, server")
    parser.add_argument("--peers", default="", help="'prefect': Prefect 3 in its own venv under benchmarks/work/")
    parser.add_argument("--peer-sizes", default="1000,10000")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md and its plot")
    args = parser.parse_args(argv)

    rows_plan = plan(args.full, args.tasks)
    if args.runners:
        rows_plan = [p for p in rows_plan if p[1] in args.runners.split(",")]
    if args.workloads:
        rows_plan = [p for p in rows_plan if p[0] in args.workloads.split(",")]
    if args.modes:
        keep = tuple(args.modes.split(","))
        rows_plan = [(w, r, n, tuple(m for m in modes if m in keep), k) for w, r, n, modes, k in rows_plan]
        rows_plan = [p for p in rows_plan if p[3]]
    started, load_before = time.time(), [round(x, 2) for x in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    for i, (workload, runner, n, modes, rounds) in enumerate(rows_plan, 1):
        print(f"[{i}/{len(rows_plan)}] {workload} {runner} {n:,} tasks ({', '.join(modes)}; {rounds} round(s))",
              file=sys.stderr, flush=True)
        rows += measure_row(workload, runner, n, modes, rounds)
        for r in rows[-len(modes):]:
            print(f"    {r['tracking']}: {r['wall_s']} s vs raw {r['raw_wall_s']} s ({r['ratio']}x), "
                  f"{r['tasks_per_s']:,.0f} tasks/s, recorded {r['recorded_min']}/{r['expected']}", file=sys.stderr, flush=True)
    peer = None
    if "prefect" in args.peers.split(","):
        from benchmarks import peers

        peer = peers.run([int(s) for s in args.peer_sizes.split(",")])
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
              "elapsed_s": round(time.time() - started), "load_before": load_before, "machine": report.machine(),
              "rows": rows, "peer": peer}
    text = report.markdown(result)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.output / f"bench-{stamp}.json").write_text(json.dumps(result, indent=2))
    (args.output / f"bench-{stamp}.md").write_text(text)
    if args.docs:
        report.plot(rows, peer)
        report.update_docs(text)
    print(text)


if __name__ == "__main__":
    main()
