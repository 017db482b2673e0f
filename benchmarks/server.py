"""Tracking server throughput, and what streaming to it costs a flow, measured in the same run.

    python -m benchmarks.server --tasks 100000            # events/s in; 100k-task flow, server vs embedded
    python -m benchmarks.server --tasks 20000 --repeat 3
    python -m benchmarks.server --database-url postgresql://... [--workers 2]   # on PostgreSQL

1. Ingestion: a client process POSTs msgpack batches of 10,000 events (a finished sweep: PENDING,
   RUNNING, COMPLETED per task run) to a fresh server, one request at a time; events per second
   is events over the time until the last response (every event stored).
2. A ``--tasks`` task thread-runner map (``benchmarks.harness``' trivial-map), each run in a
   fresh process with a fresh PREFECT_LIKE_HOME, alternating embedded store and server. Wall time
   is the flow call, which returns only when every event is stored (the flow's final flush).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Server:
    def __init__(self, home: Path, database_url: str | None = None, workers: int = 1) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect_like.server", "--port", str(self.port), "--home", str(home),
             "--log-level", "warning", "--workers", str(workers)],
            env=_env(PREFECT_LIKE_API_URL=None, PREFECT_LIKE_DATABASE_URL=database_url), cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.05)  # polling /health

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _sweep_events(n_tasks: int) -> list[tuple[Any, ...]]:
    flow_id = uuid.uuid4().hex
    now = time.time()
    events: list[tuple[Any, ...]] = [("flow", flow_id, 0, None, now, "RUNNING", "Running", None,
                                      {"name": "bench", "flow_name": "bench", "parameters": {}})]
    for i in range(n_tasks):
        task_id = f"{flow_id[:12]}-{i:x}"
        events.append(("task", task_id, 0, flow_id, now, "PENDING", "Pending", None,
                       {"task_name": "inc", "map_index": i, "name": None, "tags": []}))
        events.append(("task", task_id, 1, flow_id, now, "RUNNING", "Running", None, {"run_count": 1}))
        events.append(("task", task_id, 2, flow_id, now, "COMPLETED", "Completed", None,
                       {"parameters": {"x": i}, "result": i + 1, "run_count": 1, "duration": 1e-5}))
    return events


def ingest(url: str, n_tasks: int, batch: int = 10_000) -> dict[str, Any]:
    """In a client process: POST the events of an ``n_tasks`` sweep in batches; events/s."""
    import msgpack

    events = _sweep_events(n_tasks)
    bodies = [msgpack.packb(events[i : i + batch]) for i in range(0, len(events), batch)]
    with httpx.Client(headers={"Content-Type": "application/msgpack"}, timeout=120) as client:
        start = time.perf_counter()
        for body in bodies:
            client.post(url + "/events", content=body).raise_for_status()
        wall = time.perf_counter() - start
    return {"events": len(events), "wall_s": round(wall, 3), "events_per_s": round(len(events) / wall)}


def flow_wall(n: int) -> dict[str, Any]:
    """In a fresh process: the trivial-map flow's wall time, and how many task runs were recorded."""
    from benchmarks.harness import WORKLOADS
    from prefect_like.client import connect

    run = WORKLOADS["trivial-map"]("thread", n)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    with connect() as reader:
        latest = reader.list_flow_runs(limit=1)[0]
        recorded = reader.count_task_runs(latest["id"])
    return {"wall_s": round(wall, 3), "recorded": recorded}


def _child(*args: str, **env: str | None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.server", *args], capture_output=True,
                         text=True, env=_env(**env), cwd=ROOT, check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--ingest-tasks", type=int, default=100_000, help="sweep size for the ingestion test")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--database-url", help="the server's store, e.g. postgresql://... (default: SQLite)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = ingest(rest[0], int(rest[1])) if kind == "ingest" else flow_wall(int(rest[0]))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="prefect-like-bench-") as tmp:
        server = Server(Path(tmp) / "server", args.database_url, args.workers)
        try:
            rates = [_child("--child", "ingest", server.url, str(args.ingest_tasks)) for _ in range(args.repeat)]
            embedded, remote = [], []
            for i in range(args.repeat):
                with tempfile.TemporaryDirectory() as home:
                    embedded.append(_child("--child", "flow", str(args.tasks),
                                           PREFECT_LIKE_HOME=home, PREFECT_LIKE_API_URL=None))
                with tempfile.TemporaryDirectory() as home:
                    remote.append(_child("--child", "flow", str(args.tasks),
                                         PREFECT_LIKE_HOME=home, PREFECT_LIKE_API_URL=server.url))
                print(f"round {i + 1}: embedded {embedded[-1]['wall_s']} s, server {remote[-1]['wall_s']} s",
                      file=sys.stderr)
        finally:
            server.stop()

    best_rate = max(rates, key=lambda r: r["events_per_s"])
    ratios = [r["wall_s"] / e["wall_s"] for r, e in zip(remote, embedded, strict=True)]
    emb = min(e["wall_s"] for e in embedded)
    srv = min(r["wall_s"] for r in remote)
    print(f"| measurement | value |\n|---|---:|\n"
          f"| ingestion: events into the server (10k-event msgpack batches) | {best_rate['events_per_s']:,} events/s |\n"
          f"| {args.tasks:,}-task flow, embedded store: wall | {emb:.2f} s |\n"
          f"| {args.tasks:,}-task flow, tracking server: wall | {srv:.2f} s |\n"
          f"| server / embedded (median of {args.repeat} paired runs) | {statistics.median(ratios):.2f}x |\n"
          f"| task runs recorded (embedded, server) | {embedded[0]['recorded']:,}, {remote[0]['recorded']:,} |")


if __name__ == "__main__":
    main()
