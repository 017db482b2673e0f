"""Load: many flow processes streaming to one tracking server at once.

``python -m benchmarks.load [--flows 20] [--tasks 10000] [--write-docs] [--database-url URL]
[--workers N]`` starts a real server
(``python -m prefect_like.server``) on a fresh home, then ``--flows`` flow processes at once,
each a thread-runner sweep of ``--tasks`` trivial task runs streaming its events to the server.
Afterwards it checks that the server stored every task run of every flow run (COMPLETED,
exactly once) and reports:

- ingest latency: each ``POST /api/events`` as the flow processes' HTTP sinks timed it (send
  to response, retries included), p50/p95/p99/max over every request of every flow;
- events/s: all events stored, over the time from the first flow's start to the last flow's end
  (a flow ends only when the server holds all its events).

``--write-docs`` replaces the section "Load: 20 flows streaming to one server" of
``docs/benchmarks.md`` (creating the file if needed), leaving the rest of the file alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Load: 20 flows streaming to one server"

FLOW = textwrap.dedent(
    """
    import json, sys, time
    from prefect_like import flow, task
    from prefect_like.tracking import recorder

    @task
    def trial(i: int) -> dict:
        return {"loss": (i * 7919 % 1000) / 1000}

    @flow(name=sys.argv[1], task_runner="thread")
    def sweep(n: int) -> int:
        return len(trial.map(range(n)).result())

    started = time.time()
    assert sweep(int(sys.argv[2])) == int(sys.argv[2])
    ended = time.time()
    timings = list(recorder.get_recorder()._sink.timings)
    print(json.dumps({"started": started, "ended": ended, "timings": timings}))
    """
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run_load(
    flows: int, tasks: int, home: Path, database_url: str | None = None, workers: int = 1
) -> dict[str, Any]:
    """Run the load and verify it; the report as a dict (raises AssertionError if anything was lost).

    ``database_url``: the server's store (``PREFECT_LIKE_DATABASE_URL``; default: as set, else a
    SQLite file in ``home``); ``workers``: its ``--workers``."""
    from prefect_like.client import Client
    from tests.server._procs import ServerProcess

    env = {"PREFECT_LIKE_DATABASE_URL": database_url} if database_url else None
    server = ServerProcess(home / "server", env=env, workers=workers).start()
    script = home / "flow.py"
    script.write_text(FLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PREFECT_LIKE_API_URL": server.url, "PREFECT_LIKE_HOME": str(home / "client"),
           "PREFECT_LIKE_FLUSH_TIMEOUT": "600"}
    try:
        procs = [subprocess.Popen([sys.executable, str(script), f"load-{i}", str(tasks)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(flows)]
        outputs = [p.communicate(timeout=1800) for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            if p.returncode != 0:
                raise AssertionError(f"a flow process failed ({p.returncode}):\n{err[-3000:]}")
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        with Client(server.url) as client:
            runs = client.list_flow_runs(limit=flows + 10)
            assert len(runs) == flows, f"{len(runs)} flow runs stored, not {flows}"
            stored = 0
            for run in runs:
                counts = client.task_run_counts(run["id"])
                assert counts == {"Completed": tasks}, (run["name"], counts)
                assert run["state"] == "COMPLETED"
                stored += counts["Completed"]
    finally:
        server.stop()
    seconds = [t for r in results for t, _ in r["timings"]]
    events = sum(n for r in results for _, n in r["timings"])
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "flows": flows, "tasks_per_flow": tasks, "task_runs_stored": stored,
        "requests": len(seconds), "events": events, "wall_seconds": round(wall, 1),
        "events_per_second": round(events / wall),
        "latency_ms": {q: round(_percentile(seconds, p) * 1000, 1)
                       for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
    }


def markdown(report: dict[str, Any]) -> str:
    lat = report["latency_ms"]
    return textwrap.dedent(f"""\
        {HEADING}

        {report['flows']} flow processes, each a thread-runner sweep of {report['tasks_per_flow']:,} trivial
        task runs, started at once and streaming to one tracking server (`python -m benchmarks.load`,
        {os.cpu_count()} cores, server and flows on one machine). Every one of the
        {report['task_runs_stored']:,} task runs was stored COMPLETED, exactly once.

        | requests | events | wall time | events/s | p50 | p95 | p99 | max |
        |---:|---:|---:|---:|---:|---:|---:|---:|
        | {report['requests']:,} | {report['events']:,} | {report['wall_seconds']} s | {report['events_per_second']:,} | {lat['p50']} ms | {lat['p95']} ms | {lat['p99']} ms | {lat['max']} ms |

        Latency is each `POST /api/events` as the flow processes' HTTP sinks timed it, from sending
        the batch to the server's answer (retries included), over every request of every flow;
        events/s is all events stored over the wall time from the first flow's start to the last
        flow's end (a flow returns only once the server holds all its events).
        """)


def write_docs(section: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace our section of the file (up to the next ``## `` heading), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--database-url", help="the server's store, e.g. postgresql://... (an empty one)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        report = run_load(args.flows, args.tasks, Path(home), args.database_url, args.workers)
    print(json.dumps(report))
    if args.write_docs:
        write_docs(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
