"""The scheduler and the workers: does the server keep up, and how soon does a triggered run start?

    python -m benchmarks.deployments                      # 1,000 deployments, 20 triggered runs
    python -m benchmarks.deployments --deployments 200 --runs 5 --json out.json

1. **Scheduler**: ``--deployments`` deployments with a one-minute cron schedule each, in a fresh
   SQLite store; ``Control.tick`` (what the server's scheduler loop calls every second) is run
   until every schedule has its runs an hour ahead, then for a while more. It reports the
   longest tick while runs are being made (each tick is one transaction, holding the write lock
   events wait for), the CPU those ticks took, and the steady tick once they are made.
2. **Pickup**: a real ``python -m prefect_like.server`` and ``prefect-like worker start``; a
   deployment is triggered ``--runs`` times, one after the other, over HTTP. For each run it
   reports the seconds from the request to the worker's claim and to the flow's RUNNING state.
   The issue asks for a median pickup within 2 s.
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from prefect_like.tracking.control import Control
from prefect_like.tracking.store import Store

ROOT = Path(__file__).resolve().parents[1]
FLOW = "from prefect_like import flow\n\n\n@flow\ndef ping(i: int = 0) -> int:\n    return i\n"


def scheduler(deployments: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="prefect-like-sched-"))
    Store(folder / "prefect_like.db").close()
    control = Control(folder / "prefect_like.db")
    for i in range(deployments):
        control.put_deployment({"name": f"d{i}", "flow_name": "ping", "entrypoint": "/srv/ping.py:ping",
                                "work_pool": "bench", "schedules": [{"cron": "* * * * *"}]})
    walls: list[float] = []
    cpu = time.process_time()
    while True:
        started = time.perf_counter()
        made_before = control._all("SELECT COUNT(*) FROM deployment_runs")[0][0]
        control.tick()
        walls.append(time.perf_counter() - started)
        if control._all("SELECT COUNT(*) FROM deployment_runs")[0][0] == made_before:
            break
    making_cpu = time.process_time() - cpu
    steady = []
    for _ in range(50):
        started = time.perf_counter()
        control.tick()
        steady.append(time.perf_counter() - started)
    runs = control._all("SELECT COUNT(*) FROM deployment_runs")[0][0]
    control.close()
    return {
        "deployments": deployments, "runs_made": runs, "ticks_to_make_them": len(walls),
        "longest_tick_s": round(max(walls), 3), "cpu_to_make_them_s": round(making_cpu, 2),
        "steady_tick_median_ms": round(statistics.median(steady) * 1000, 3),
        # One new run per deployment a minute, once the hour ahead is made.
        "runs_a_minute_steady": deployments,
    }


def pickup(runs: int) -> dict[str, Any]:
    from tests.server._procs import ServerProcess

    folder = Path(tempfile.mkdtemp(prefix="prefect-like-pickup-"))
    (folder / "ping.py").write_text(FLOW)
    server = ServerProcess(folder / "server").start()
    env = {**os.environ, "PREFECT_LIKE_API_URL": server.url, "PREFECT_LIKE_HOME": str(folder / "worker"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "prefect_like", "deploy", f"{folder / 'ping.py'}:ping", "--name", "ping",
                    "--pool", "bench"], env=env, check=True, capture_output=True)
    worker = subprocess.Popen([sys.executable, "-m", "prefect_like", "worker", "start", "--pool", "bench"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    claims: list[float] = []
    starts: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            deadline = time.monotonic() + 60
            while not client.get("/workers").json():  # the worker has polled once
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker never polled the server")
                time.sleep(0.1)
            for i in range(runs):
                asked = time.time()
                run_id = client.post("/deployments/ping/runs", json={"parameters": {"i": i}}).json()["id"]
                while True:
                    run = client.get(f"/deployment-runs/{run_id}").json()
                    if run["state"] in ("COMPLETED", "FAILED", "CRASHED"):
                        break
                    time.sleep(0.02)  # polling the run's state, as a client waiting for it does
                row = client.get(f"/flow-runs/{run_id}").json()
                starts.append(datetime.fromisoformat(row["start_time"]).timestamp() - asked)
                claims.append(_claimed(server.database, run_id) - asked)
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()
    return {
        "runs": runs, "claimed_median_s": round(statistics.median(claims), 2), "claimed_max_s": round(max(claims), 2),
        "running_median_s": round(statistics.median(starts), 2), "running_max_s": round(max(starts), 2),
    }


def _claimed(database: Path, flow_run_id: str) -> float:
    import sqlite3

    with sqlite3.connect(database) as db:
        return float(db.execute("SELECT claimed FROM deployment_runs WHERE flow_run_id = ?", (flow_run_id,)).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    result = {"scheduler": scheduler(args.deployments), "pickup": pickup(args.runs)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
