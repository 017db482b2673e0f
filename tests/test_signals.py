"""Ctrl-C and SIGTERM reach every entry point the same way (prefect_like/engine/signals.py).

Each test starts a real process (a script, or ``prefect-like run``), lets task runs finish,
sends it a real signal and then reads the store it wrote. The tasks also note on disk, as they
return, which of them finished, so the tests can count what was lost: every run that finished
must be stored, none may stay PENDING or RUNNING, and the flow run's own counts must be what
the store holds.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from prefect_like import flow, task
from prefect_like.tracking.store import Store
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]
TASKS = 40_000

# Each task notes on disk, as it returns, that it finished.
WORK = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from prefect_like import flow, task

    DONE = os.open(os.environ["DONE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    @task
    def work(i: int) -> int:
        time.sleep(0.001)
        os.write(DONE, b"%d\\n" % i)
        return i
    """
)

FLOWS = WORK + textwrap.dedent(
    """
    @task
    async def awork(i: int) -> int:
        await asyncio.sleep(0.001)
        os.write(DONE, b"%d\\n" % i)
        return i

    @flow(name="sweep")
    def sweep(n: int):
        return sum(work.map(range(n)).result())

    @flow(name="asweep", task_runner="asyncio")
    async def asweep(n: int):
        # A blocking wait on the loop's own thread: the signal must still end the flow now.
        return sum(awork.map(range(n)).result())

    if __name__ == "__main__":
        if sys.argv[1] == "sweep":
            sweep(int(sys.argv[2]))
        else:
            asyncio.run(asweep(int(sys.argv[2])))
    """
)


def _interrupt(
    tmp_path: Path, command: list[str], signum: int, source: str = FLOWS
) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "flows.py").write_text(source)
    done = tmp_path / "done.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DONE_FILE": str(done), "PREFECT_LIKE_RECORDER_INTERVAL": "0.05"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Mid-sweep: 300 task runs done (their own word, written as each returns).
        wait_until(lambda: (done.exists() and len(done.read_bytes().split()) >= 300) or process.poll() is not None,
                   what="300 task runs done")
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)  # bounded: nothing waits for the rest of the map
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, out, err), done


def _assert_true_record(done: Path, signum: int) -> dict[str, int]:
    finished = {int(line) for line in done.read_text().split()}
    with Store(Path(os.environ["PREFECT_LIKE_HOME"]) / "prefect_like.db") as store:
        (flow_run,) = store.list_flow_runs(limit=5)
        task_runs = store.list_task_runs(flow_run["id"], limit=TASKS)
    assert flow_run["state"] == "CANCELLED"
    assert ("SIGTERM" in flow_run["message"]) == (signum == signal.SIGTERM), flow_run["message"]
    by_index = {t["map_index"]: t for t in task_runs}
    assert len(by_index) == len(task_runs)  # no task run stored twice
    stored = collections.Counter(t["state_name"] for t in task_runs)
    assert set(stored) <= {"Completed", "Cancelled"}, stored  # none left Pending or Running
    # Lost: 0. Every run that finished is stored, Completed, or Cancelled while running when it
    # finished only after the signal; the rest never started.
    for index in finished:
        run = by_index[index]
        assert run["state_name"] == "Completed" or "while running" in run["message"], run
    assert {i for i, t in by_index.items() if t["state_name"] == "Completed"} <= finished
    assert len(task_runs) < TASKS, "the queued task runs ran to the end after the signal"
    assert flow_run["task_runs"] == dict(stored)  # the flow's record is what the store holds
    return dict(stored)


@pytest.mark.parametrize(
    ("flow_name", "signum", "progress"),
    [
        ("sweep", signal.SIGINT, True),
        ("sweep", signal.SIGTERM, False),
        ("asweep", signal.SIGINT, False),
        ("asweep", signal.SIGTERM, True),
    ],
)
def test_a_signal_to_prefect_like_run_cancels_the_flow_and_says_in_one_line_what_was_recorded(
    tmp_path, flow_name, signum, progress
):
    command = [sys.executable, "-m", "prefect_like", "run", f"flows.py:{flow_name}", "-p", f"n={TASKS}"]
    if not progress:
        command.append("--no-progress")
    result, done = _interrupt(tmp_path, command, signum)

    assert result.returncode == (130 if signum == signal.SIGINT else 143), result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    said = [line for line in output.splitlines() if "is CANCELLED: the process" in line]
    assert len(said) == 1, output[-3000:]
    stored = _assert_true_record(done, signum)
    assert f"{stored['Completed']:,} Completed" in said[0]
    assert "prefect-like runs show" in said[0] and "run the flow again" in said[0]


@pytest.mark.parametrize(("flow_name", "signum"), [("sweep", signal.SIGINT), ("asweep", signal.SIGTERM)])
def test_a_signal_to_a_script_cancels_the_flow_and_says_one_line_instead_of_a_traceback(tmp_path, flow_name, signum):
    result, done = _interrupt(tmp_path, [sys.executable, "flows.py", flow_name, str(TASKS)], signum)

    # As Python exits on Ctrl-C (130); an uncaught SIGTERM's Interrupted exits 1.
    assert result.returncode == (-signal.SIGINT if signum == signal.SIGINT else 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("is CANCELLED: the process") == 1
    _assert_true_record(done, signum)


# -- a task that raises KeyboardInterrupt or SystemExit itself -----------------------------------


@pytest.mark.parametrize("runner", ["sequential", "thread"])
@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_a_task_that_raises_keyboardinterrupt_or_exits_crashes_only_its_own_run(runner, raised):
    @task
    def step(i: int) -> int:
        if i == 2:
            raise raised(3)
        return i

    @flow(task_runner=runner)
    def sweep():
        return step.map(range(5))

    state = sweep(return_state=True)  # no signal came: the flow is not "interrupted"

    assert state.is_failed()
    assert state.message == "1/5 states failed."  # the returned states decide, as in Prefect
    what = "called sys.exit(3)" if raised is SystemExit else "raised KeyboardInterrupt"
    with Store(Path(os.environ["PREFECT_LIKE_HOME"]) / "prefect_like.db") as store:
        (flow_run,) = store.list_flow_runs(limit=5)
        runs = {t["map_index"]: t for t in store.list_task_runs(flow_run["id"], limit=10)}
    assert flow_run["state"] == "FAILED"
    assert {i: t["state_name"] for i, t in runs.items()} == {0: "Completed", 1: "Completed", 2: "Crashed",
                                                               3: "Completed", 4: "Completed"}
    assert runs[2]["message"] == f"the task {what}"


SUBFLOWS = WORK + textwrap.dedent(
    """
    @flow(name="child")
    def child(n: int):
        return sum(work.map(range(n)).result())

    @flow(name="parent")
    def parent():
        return [child(40_000), child(10)]

    parent()
    """
)


def test_a_signal_during_a_subflow_cancels_it_and_its_parent(tmp_path):
    result, done = _interrupt(tmp_path, [sys.executable, "flows.py"], signal.SIGTERM, SUBFLOWS)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (said,) = [line for line in result.stderr.splitlines() if "is CANCELLED" in line]
    assert said.startswith("Flow run ") and "(with its 1 subflow run)" in said
    with Store(Path(os.environ["PREFECT_LIKE_HOME"]) / "prefect_like.db") as store:
        runs = {run["flow_name"]: run for run in store.list_flow_runs(limit=5)}
        assert set(runs) == {"parent", "child"}  # the second child never began
        assert {run["state"] for run in runs.values()} == {"CANCELLED"}
        task_runs = store.list_task_runs(runs["child"]["id"], limit=TASKS)
    assert {t["state_name"] for t in task_runs} <= {"Completed", "Cancelled"}
    finished = {int(line) for line in done.read_text().split()}
    assert {t["map_index"] for t in task_runs} >= finished  # lost: 0


# -- a second signal ---------------------------------------------------------------------------


def test_a_second_signal_exits_at_once_and_keeps_what_the_tracker_had_not_got(tmp_path):
    from tests.server._procs import ServerProcess, free_port

    (tmp_path / "flows.py").write_text(FLOWS)
    done = tmp_path / "done.txt"
    port = free_port()  # the tracking server is not there yet: the first signal's flush waits
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DONE_FILE": str(done),
           "PREFECT_LIKE_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_LIKE_FLUSH_TIMEOUT": "300"}
    process = subprocess.Popen([sys.executable, "flows.py", "sweep", str(TASKS)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_until(lambda: done.exists() and len(done.read_bytes().split()) >= 300, what="300 task runs done")
        process.send_signal(signal.SIGINT)
        wait_until(lambda: any("interrupt again to exit at once" in line for line in said), what="the first signal")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)  # at once: not the 300 s the first signal's flush would wait
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    output = "".join(said)
    assert process.returncode == 130 and "Traceback" not in output, output[-3000:]
    assert "Interrupted again: exiting now" in output
    assert "are kept in" in output and "prefect-like runs flush" in output

    # What it kept reaches a server by `runs flush`: the flow run CANCELLED, nothing lost.
    server = ServerProcess(tmp_path / "server", port=port).start()
    try:
        flush = subprocess.run([sys.executable, "-m", "prefect_like", "runs", "flush"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert flush.returncode == 0, flush.stdout + flush.stderr
        from prefect_like.client import Client

        with Client(server.url) as client:
            (flow_run,) = client.list_flow_runs(limit=5)
            task_runs = [run for offset in range(0, TASKS, 10_000)
                         for run in client.list_task_runs(flow_run["id"], limit=10_000, offset=offset)]
    finally:
        server.stop()
    assert flow_run["state"] == "CANCELLED" and "exited before every event was written" in flow_run["message"]
    assert {t["state_name"] for t in task_runs} <= {"Completed", "Cancelled"}
    finished = {int(line) for line in done.read_text().split()}
    assert finished <= {t["map_index"] for t in task_runs}  # lost: 0
    stored = collections.Counter(t["state_name"] for t in task_runs)
    assert flow_run["task_runs"] == dict(stored)
