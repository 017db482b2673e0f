"""A flow process killed with SIGKILL: its run and live task runs end CRASHED; nothing delivered is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prefect_like import settings
from prefect_like.tracking.store import Store
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task

    never = Path(sys.argv[1])

    @task
    def trial(i: int) -> int:
        while i >= 10 and not never.exists():  # the last ten block until the process is killed
            time.sleep(0.05)
        return i

    @flow(name="killed", task_runner="thread")
    def killed():
        return trial.map(range(20)).result()

    killed()
    """
)




def _counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with Store(path) as store:
        runs = store.list_flow_runs(limit=1)
        return store.task_run_counts(runs[0]["id"]) if runs else {}


def test_killed_flow_is_marked_crashed_and_keeps_what_was_delivered(tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LIKE_RECORDER_INTERVAL": "0.05",
        "PREFECT_LIKE_HEARTBEAT_SECONDS": "0.2",
    }
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "never")], env=env)
    try:
        path = settings.database_path()
        wait_until(lambda: _counts(path).get("Completed") == 10 and _counts(path).get("Running", 0) >= 1,
              what="ten completed and some running task runs")
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    with Store(path) as store:
        flow_run = store.list_flow_runs(limit=1)[0]
        assert flow_run["state"] == "RUNNING"  # nobody has noticed yet
        assert store.mark_crashed(stale_after=60) == 0  # heartbeats were recent: not stale yet
        wait_until(lambda: store.mark_crashed(stale_after=1.0), what="the run to go stale")
        flow_run = store.get_flow_run(flow_run["id"])
        assert flow_run["state"] == "CRASHED"
        assert "heartbeat" in flow_run["message"]
        counts = store.task_run_counts(flow_run["id"])
        assert counts["Completed"] == 10  # every event delivered before the kill is kept
        assert set(counts) <= {"Completed", "Crashed", "Pending"} and counts.get("Crashed", 0) >= 1
        assert "Running" not in counts
        # A late event from the dead run's past cannot revive it.
        assert store.mark_crashed(stale_after=1.0) == 0


# -- the same kill, seen through the CLI (embedded) and through a real server ------------------

FAST_HEARTBEATS = {"PREFECT_LIKE_HEARTBEAT_SECONDS": "0.2", "PREFECT_LIKE_HEARTBEAT_TIMEOUT": "1.5"}


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LIKE_RECORDER_INTERVAL": "0.05", **FAST_HEARTBEATS}
    env.update(extra)
    return env


def _kill_mid_sweep(tmp_path: Path, env: dict[str, str], progress) -> None:
    """Start the flow, wait until ``progress()`` says ten completed and some run, SIGKILL it."""
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "never")], env=env)
    try:
        wait_until(progress, what="ten completed and some running task runs")
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def _cli_json(*args: str, env: dict[str, str]) -> dict:
    import json

    done = subprocess.run([sys.executable, "-m", "prefect_like", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_a_killed_flow_is_shown_crashed_by_the_next_cli_command(tmp_path):
    env = _env()
    path = settings.database_path()
    _kill_mid_sweep(tmp_path, env, lambda: _counts(path).get("Completed") == 10 and _counts(path).get("Running", 0) >= 1)

    def shown_crashed():
        (run,) = _cli_json("runs", "ls", env=env)
        return run if run["state"] == "CRASHED" else None

    run = wait_until(shown_crashed, what="`prefect-like runs ls` to show the run CRASHED")
    assert "heartbeat" in run["message"]
    tasks = _cli_json("runs", "tasks", run["id"], "--limit", "100", env=env)
    states = [t["state"] for t in tasks]
    assert states.count("COMPLETED") == 10 and "RUNNING" not in states and "CRASHED" in states


def test_a_killed_flow_is_marked_crashed_by_the_server(tmp_path):
    from prefect_like.client import Client
    from tests.server._procs import ServerProcess

    server = ServerProcess(tmp_path / "server", env=FAST_HEARTBEATS).start()
    try:
        env = _env(PREFECT_LIKE_API_URL=server.url)
        with Client(server.url) as client:

            def progress():
                runs = client.list_flow_runs(limit=1)
                counts = client.task_run_counts(runs[0]["id"]) if runs else {}
                return counts.get("Completed") == 10 and counts.get("Running", 0) >= 1

            _kill_mid_sweep(tmp_path, env, progress)
            # Nobody reads the store: the server notices the silence on its own.
            run = wait_until(lambda: (r := client.list_flow_runs(limit=1)[0])["state"] == "CRASHED" and r,
                        what="the server to mark the run CRASHED")
            assert "heartbeat" in run["message"]
            counts = client.task_run_counts(run["id"])
            assert counts["Completed"] == 10 and "Running" not in counts and counts.get("Crashed", 0) >= 1
    finally:
        server.stop()
