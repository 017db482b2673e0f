"""The trivial-map workload in Prefect 3, run by the peer venv's Python (never imported here).

    python _prefect_flow.py N DB_PATH

Prints one JSON line: wall time of the flow call, the flow run id, RSS before and peak, and how
many of its task runs Prefect's own database holds (as COMPLETED) right when the call returns.
"""

import json
import logging
import resource
import sqlite3
import sys
import time

from prefect import flow, task


@task
def inc(x: int) -> int:
    return x + 1


@flow(name="bench-trivial-map", log_prints=False)
def sweep(n: int) -> int:
    return sum(inc.map(range(n)).result())


def recorded(db: str, flow_run_id: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(
            "SELECT count(*) FROM task_run WHERE flow_run_id = ? AND state_type = 'COMPLETED'",
            (flow_run_id,),
        ).fetchone()[0]


if __name__ == "__main__":
    n, db = int(sys.argv[1]), sys.argv[2]
    logging.getLogger("prefect").setLevel(logging.WARNING)
    sweep(10)  # warm-up: the ephemeral server (if any) and the client start here, not in the timing
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * resource.getpagesize()
    started = time.perf_counter()
    state = sweep(n, return_state=True)
    wall = time.perf_counter() - started
    flow_run_id = str(state.state_details.flow_run_id)
    print(json.dumps({
        "wall_s": round(wall, 3), "flow_run_id": flow_run_id, "state": state.type.value,
        "rss_before_bytes": before,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "recorded_at_return": recorded(db, flow_run_id), "returned_at": time.time(),
    }), flush=True)
