"""A flow process killed with SIGKILL: its run ends CRASHED at its last sign of life, the task runs
it was running Crashed, those it never started Cancelled; nothing delivered is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect_like import settings
from prefect_like.tracking.store import Store
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]

# Four workers: the first ten trials end at once, the next four block until the process is
# killed, the last six never start.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task
    from prefect_like.task_runners import ThreadPoolTaskRunner

    never = Path(sys.argv[1])

    @task
    def trial(i: int) -> int:
        while i >= 10 and not never.exists():
            time.sleep(0.05)
        return i

    @flow(name="killed", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def killed():
        return trial.map(range(20)).result()

    killed()
    """
)
MID_SWEEP = {"Completed": 10, "Running": 4, "Pending": 6}
AFTER_KILL = {"Completed": 10, "Crashed": 4, "Cancelled": 6}
# The flow process's own settings: its run carries this timeout; the readers below have others.
FLOW_HEARTBEATS = {"PREFECT_LIKE_HEARTBEAT_SECONDS": "0.2", "PREFECT_LIKE_HEARTBEAT_TIMEOUT": "3"}


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LIKE_RECORDER_INTERVAL": "0.05",
        **FLOW_HEARTBEATS,
        **extra,
    }


def _counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with Store(path) as store:
        runs = store.list_flow_runs(limit=1)
        return store.task_run_counts(runs[0]["id"]) if runs else {}


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _kill_mid_sweep(tmp_path: Path, env: dict[str, str], progress: Callable[[], Any]) -> float:
    """Start the flow, wait until ``progress()`` says the sweep is mid-way, SIGKILL it; returns
    when it was killed."""
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "never")], env=env)
    try:
        wait_until(progress, what=f"task runs {MID_SWEEP}")
        killed_at = time.time()
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return killed_at


def test_killed_flow_is_marked_crashed_and_keeps_what_was_delivered(tmp_path):
    path = settings.database_path()
    killed_at = _kill_mid_sweep(tmp_path, _env(), lambda: _counts(path) == MID_SWEEP)

    with Store(path) as store:
        flow_run = store.list_flow_runs(limit=1)[0]
        assert flow_run["state"] == "RUNNING"  # nobody has noticed yet
        # Its own timeout (3 s) counts, not this reader's: a second after the kill it is not stale.
        assert store.mark_crashed(default_timeout=0.001) == 0
        wait_until(lambda: store.mark_crashed(default_timeout=3600), what="the run to go stale")
        flow_run = store.get_flow_run(flow_run["id"])
        assert flow_run["state"] == "CRASHED" and "heartbeat" in flow_run["message"]
        assert (
            store.task_run_counts(flow_run["id"]) == AFTER_KILL
        )  # all ten delivered Completed kept

        # The crash time is the last sign of life (within a heartbeat of the kill), not when noticed.
        last_seen = _ts(flow_run["heartbeat"])
        assert _ts(flow_run["end_time"]) == last_seen
        assert killed_at - 0.2 - 0.5 <= last_seen <= killed_at
        tasks = store.list_task_runs(flow_run["id"], limit=100)
        ended = [t for t in tasks if t["state"] in ("CRASHED", "CANCELLED")]
        assert {_ts(t["end_time"]) for t in ended} == {last_seen}
        never_started = [t for t in tasks if t["state"] == "CANCELLED"]
        assert {t["map_index"] for t in never_started} == set(range(14, 20))
        assert all(
            t["start_time"] is None and "never started" in t["message"] for t in never_started
        )

        # A replay of what the dead run had sent before cannot revive it.
        running = next(t for t in tasks if t["state"] == "CRASHED")
        from prefect_like.tracking.events import Event

        store.write(
            [
                Event(
                    "task",
                    running["id"],
                    1,
                    flow_run["id"],
                    _ts(running["start_time"]),
                    "RUNNING",
                    "Running",
                    None,
                    {"run_count": 1},
                )
            ]
        )
        assert store.get_flow_run(flow_run["id"])["state"] == "CRASHED"
        assert store.task_run_counts(flow_run["id"]) == AFTER_KILL
        assert store.mark_crashed(default_timeout=3600) == 0


# -- the same kill, seen through the CLI (embedded) and through a real server ------------------


def _cli_json(*args: str, env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_like", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_a_killed_flow_is_shown_crashed_by_the_next_cli_command(tmp_path):
    path = settings.database_path()
    _kill_mid_sweep(tmp_path, _env(), lambda: _counts(path) == MID_SWEEP)
    # The CLI's own setting would wait an hour; the run's own 3 s decide.
    reader = _env(PREFECT_LIKE_HEARTBEAT_TIMEOUT="3600")

    def shown_crashed():
        (run,) = _cli_json("runs", "ls", env=reader)
        return run if run["state"] == "CRASHED" else None

    run = wait_until(shown_crashed, what="`prefect-like runs ls` to show the run CRASHED")
    assert "heartbeat" in run["message"]
    tasks = _cli_json("runs", "tasks", run["id"], "--limit", "100", env=reader)
    states = [t["state"] for t in tasks]
    assert (states.count("COMPLETED"), states.count("CRASHED"), states.count("CANCELLED")) == (
        10,
        4,
        6,
    )


def test_a_killed_flow_is_marked_crashed_by_the_server(tmp_path):
    from prefect_like.client import Client
    from tests.server._procs import ServerProcess

    server = ServerProcess(tmp_path / "server", env=FLOW_HEARTBEATS).start()
    try:
        env = _env(PREFECT_LIKE_API_URL=server.url)
        with Client(server.url) as client:

            def progress():
                runs = client.list_flow_runs(limit=1)
                return runs and client.task_run_counts(runs[0]["id"]) == MID_SWEEP

            _kill_mid_sweep(tmp_path, env, progress)
            # Nobody reads the store: the server notices the silence on its own.
            run = wait_until(
                lambda: (r := client.list_flow_runs(limit=1)[0])["state"] == "CRASHED" and r,
                what="the server to mark the run CRASHED",
            )
            assert "heartbeat" in run["message"]
            assert run["end_time"] == run["heartbeat"]
            assert client.task_run_counts(run["id"]) == AFTER_KILL
    finally:
        server.stop()
