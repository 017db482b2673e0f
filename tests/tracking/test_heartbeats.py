"""Verdicts from silence: a flow run is judged by its own heartbeat timeout, ends CRASHED at its last
sign of life, and anything it sends later withdraws the verdict; replays and order do not matter,
and decisions from outside (a cancellation) still hold.

The real faults: a flow process stopped with SIGSTOP until a reader has judged it, then continued;
a reader whose own timeout is far shorter than the flow's. The store cases below feed it the
events those processes send, in every order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from prefect_like import settings
from prefect_like.errors import TrackingError
from prefect_like.tracking.events import OVERRIDE_SEQ, Event
from prefect_like.tracking.store import Store
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
FLOW_ID = "fa11ed00-0000-4000-8000-000000000001"
NOW = time.time()
T0 = NOW - 600  # the run went silent ten minutes ago


def tid(i: int) -> str:
    return f"7a5c{i:04d}-0000-4000-8000-000000000000"


def start(timeout: float | None = 0.2) -> list[Event]:
    """A flow run that started at T0 and was last heard from at T0 + 3: task run 0 completed,
    1 running, 2 never started."""
    data: dict[str, Any] = {
        "name": "quiet-heron",
        "flow_name": "sweep",
        "parameters": {},
        "parent_task_run_id": None,
        "runner": "thread",
    }
    if timeout is not None:
        data["heartbeat_timeout"] = timeout
    events = [Event("flow", FLOW_ID, 0, None, T0, "RUNNING", "Running", None, data)]
    for i in range(3):
        events.append(
            Event(
                "task",
                tid(i),
                0,
                FLOW_ID,
                T0 + 1,
                "PENDING",
                "Pending",
                None,
                {"task_name": "train", "map_index": i},
            )
        )
    events += [
        Event("task", tid(0), 1, FLOW_ID, T0 + 1.5, "RUNNING", "Running", None, {"run_count": 1}),
        Event("task", tid(0), 2, FLOW_ID, T0 + 2, "COMPLETED", "Completed", None, {"result": 0}),
        Event("task", tid(1), 1, FLOW_ID, T0 + 2, "RUNNING", "Running", None, {"run_count": 1}),
        Event("heartbeat", FLOW_ID, 0, None, T0 + 3, None, None, None, None),
    ]
    return events


def heartbeat(at: float, seq: int = 1) -> Event:
    return Event("heartbeat", FLOW_ID, seq, None, at, None, None, None, None)


def completed(task: int, seq: int, at: float) -> Event:
    return Event(
        "task", tid(task), seq, FLOW_ID, at, "COMPLETED", "Completed", None, {"result": task}
    )


def the_rest(at: float) -> list[Event]:
    """What the process sent after it was judged: task runs 1 and 2 end, then the flow run."""
    return [
        heartbeat(at),
        completed(1, 2, at + 1),
        Event("task", tid(2), 1, FLOW_ID, at + 1, "RUNNING", "Running", None, {"run_count": 1}),
        completed(2, 2, at + 2),
        Event(
            "flow",
            FLOW_ID,
            1,
            None,
            at + 3,
            "COMPLETED",
            "Completed",
            None,
            {"task_runs": {"Completed": 3}, "duration": at + 3 - T0},
        ),
    ]


def record(store: Store) -> tuple[Any, ...]:
    """Everything a reader can see of the run."""
    return (store.get_flow_run(FLOW_ID), [store.get_task_run(tid(i)) for i in range(3)])


def names(states: list[dict[str, Any]]) -> list[str]:
    return [s["state_name"] for s in states]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "store.db") as s:
        yield s


def judge(store: Store, default_timeout: float = 3600) -> None:
    """Wait until the run's own timeout has passed since the store last received anything of
    it, and a reader judges it (this reader's own setting would wait an hour)."""
    wait_until(
        lambda: store.mark_crashed(default_timeout=default_timeout),
        timeout=10,
        what="a reader to judge the silent run",
    )


@pytest.fixture
def judged(store: Store) -> Store:
    """The run as a reader left it: Crashed by its silence."""
    store.write(start())
    judge(store)
    return store


def test_silence_past_the_runs_own_timeout_ends_it_crashed_at_its_last_sign_of_life(
    judged: Store,
) -> None:
    flow_run, (done, running, waiting) = record(judged)
    assert flow_run["state"] == "CRASHED" and "no heartbeat" in flow_run["message"]
    assert "its timeout is 0.2 s" in flow_run["message"]
    last_seen = flow_run["heartbeat"]
    assert flow_run["end_time"] == last_seen == running["end_time"] == waiting["end_time"]
    assert flow_run["task_runs"] == {"Completed": 1, "Crashed": 1, "Cancelled": 1}
    assert done["state"] == "COMPLETED"
    assert (running["state"], waiting["state"]) == ("CRASHED", "CANCELLED")
    assert "never started" in waiting["message"]
    assert names(running["states"]) == ["Pending", "Running", "Crashed"]
    assert names(waiting["states"]) == ["Pending", "Cancelled"]
    assert names(flow_run["states"]) == ["Running", "Crashed"]
    assert judged.mark_crashed(default_timeout=3600) == 0  # judged once


def test_a_run_stored_without_a_timeout_is_judged_by_the_readers(store: Store) -> None:
    store.write(start(timeout=None))  # as versions before the run carried its own
    assert store.mark_crashed(default_timeout=3600) == 0
    judge(store, default_timeout=0.2)
    assert store.get_flow_run(FLOW_ID)["state"] == "CRASHED"


def test_a_backlog_still_arriving_is_not_silence_however_old_its_events(store: Store) -> None:
    store.write(start(timeout=2.0))
    judge(store)
    # What the process kept through an outage arrives: ten minutes old, yet later than the
    # verdict's last sign of life. Withdrawn, and not judged again while it arrives.
    store.write([heartbeat(T0 + 10), completed(1, 2, T0 + 11)])
    assert store.get_flow_run(FLOW_ID)["state"] == "RUNNING"
    assert store.mark_crashed(default_timeout=3600) == 0


@pytest.mark.parametrize(
    "sign",
    [
        pytest.param([heartbeat(NOW)], id="a heartbeat"),
        pytest.param([completed(1, 2, NOW)], id="a task run's event"),
        pytest.param(
            [Event("log", tid(1), 0, FLOW_ID, NOW, None, "INFO", "x", None), heartbeat(NOW)],
            id="a log line and a heartbeat",
        ),
    ],
)
def test_any_later_sign_of_life_withdraws_the_verdict(judged: Store, sign: list[Event]) -> None:
    judged.write(sign)
    flow_run, (done, running, waiting) = record(judged)
    assert flow_run["state"] == "RUNNING" and flow_run["end_time"] is None
    assert done["state"] == "COMPLETED"
    # The run's own later event wins; what sent nothing says again what it said before.
    assert running["state"] == ("COMPLETED" if sign[0].kind == "task" else "RUNNING")
    assert (waiting["state"], waiting["end_time"], waiting["message"]) == ("PENDING", None, None)
    assert names(flow_run["states"]) == ["Running", "Crashed", "Running"]
    assert "withdrawn" in flow_run["states"][-1]["message"]


def test_the_flow_runs_own_end_withdraws_it_and_the_record_adds_up(judged: Store) -> None:
    judged.write(the_rest(NOW))
    flow_run, tasks = record(judged)
    assert flow_run["state"] == "COMPLETED" and flow_run["task_runs"] == {"Completed": 3}
    assert judged.task_run_counts(FLOW_ID) == {"Completed": 3}
    assert names(flow_run["states"]) == ["Running", "Crashed", "Running", "Completed"]
    # A task run's own history is its own: the verdict it came back from leaves no trace there.
    assert [names(t["states"]) for t in tasks] == [["Pending", "Running", "Completed"]] * 3


def test_a_replay_of_what_the_verdict_already_knew_changes_nothing(judged: Store) -> None:
    before = record(judged)
    judged.write(start())
    assert record(judged) == before


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param(lambda rest: [rest], id="in one batch"),
        pytest.param(lambda rest: [[e] for e in rest], id="one event at a time"),
        pytest.param(lambda rest: [[e] for e in reversed(rest)], id="in reverse"),
        pytest.param(lambda rest: [rest, rest, rest[2:], rest[:2]], id="twice and split"),
        pytest.param(lambda rest: [rest[3:], rest[:3], rest], id="the end first"),
    ],
)
def test_late_events_in_any_order_or_twice_give_the_same_record(
    tmp_path: Path, batches: Any
) -> None:
    with Store(tmp_path / "once.db") as once:
        once.write(start())
        judge(once)
        once.write(the_rest(NOW))
        expected = record(once)
    with Store(tmp_path / "any.db") as store:
        store.write(start())
        judge(store)
        for batch in batches(the_rest(NOW)):
            store.write(batch)
        assert _without_verdict_times(record(store)) == _without_verdict_times(expected)


def _without_verdict_times(record: tuple[Any, ...]) -> tuple[Any, ...]:
    # The verdict's message says how long the run had been silent when it was judged: a time of
    # the store's own, different in each store; everything else must match exactly.
    flow_run, tasks = record
    states = [
        {**s, "message": s["message"].split(" (")[0]} if s["state_name"] == "Crashed" else s
        for s in flow_run["states"]
    ]
    return {**flow_run, "states": states}, tasks


@pytest.mark.parametrize("heartbeat_first", [True, False], ids=["heartbeat first", "cancel first"])
def test_a_cancellation_from_outside_still_holds(judged: Store, heartbeat_first: bool) -> None:
    cancel = Event(
        "task",
        tid(1),
        OVERRIDE_SEQ,
        FLOW_ID,
        NOW,
        "CANCELLED",
        "Cancelled",
        "Cancelled: the flow process was interrupted (Ctrl-C)",
        {},
    )
    for batch in ([heartbeat(NOW)], [cancel]) if heartbeat_first else ([cancel], [heartbeat(NOW)]):
        judged.write(batch)
    judged.write([completed(1, 2, NOW + 1)])  # what the abandoned call still sent
    running = judged.get_task_run(tid(1))
    assert (running["state"], running["message"]) == ("CANCELLED", cancel.message)
    assert judged.get_task_run(tid(2))["state"] == "PENDING"
    assert judged.get_flow_run(FLOW_ID)["state"] == "RUNNING"


def test_a_withdrawn_run_that_goes_silent_again_is_judged_again(judged: Store) -> None:
    judged.write([heartbeat(T0 + 100)])  # heard from once more, then silent again
    assert judged.get_flow_run(FLOW_ID)["state"] == "RUNNING"
    judge(judged)
    flow_run = judged.get_flow_run(FLOW_ID)
    assert flow_run["state"] == "CRASHED" and flow_run["end_time"] == flow_run["heartbeat"]
    assert names(flow_run["states"]) == ["Running", "Crashed", "Running", "Crashed"]
    judged.write(the_rest(NOW))
    assert judged.get_flow_run(FLOW_ID)["state"] == "COMPLETED"
    assert judged.task_run_counts(FLOW_ID) == {"Completed": 3}


@pytest.mark.parametrize("bad", ["soon", -1.0, 0, float("nan"), float("inf")])
def test_a_bad_heartbeat_timeout_is_refused_and_nothing_is_written(store: Store, bad: Any) -> None:
    events = start()
    events[0] = events[0]._replace(data={**events[0].data, "heartbeat_timeout": bad})
    with pytest.raises(TrackingError, match="malformed event batch"):
        store.write(events)
    assert store.count_flow_runs() == 0


def test_a_timeout_not_longer_than_the_heartbeat_interval_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_LIKE_HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("PREFECT_LIKE_HEARTBEAT_TIMEOUT", "5")
    with pytest.raises(
        ValueError, match="HEARTBEAT_TIMEOUT .* must be longer than .*HEARTBEAT_SECONDS"
    ):
        settings.heartbeat_timeout()


# -- real processes ----------------------------------------------------------------------------

N = 2000
PAUSED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task
    from prefect_like.task_runners import ThreadPoolTaskRunner

    gate, n = Path(sys.argv[1]), int(sys.argv[2])

    @task
    def trial(i: int) -> int:
        while i >= n // 2 and not gate.exists():  # the second half waits for the gate
            time.sleep(0.02)
        return i

    @flow(name="paused", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def paused():
        return trial.map(range(n)).result()

    paused()
    """
)


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LIKE_RECORDER_INTERVAL": "0.05",
        **extra,
    }


def _counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with Store(path) as store:
        runs = store.list_flow_runs(limit=1)
        return store.task_run_counts(runs[0]["id"]) if runs else {}


def _judge_while_stopped(process: subprocess.Popen[bytes], path: Path) -> None:
    """SIGSTOP the flow process and judge it. A process stopped in the middle of a write keeps
    SQLite's write lock until it runs again, so then it is let go a moment and stopped again."""
    with Store(path, busy_timeout=0.2, retry_for=1.0) as reader:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            process.send_signal(signal.SIGSTOP)
            try:
                if wait_until(
                    lambda: reader.mark_crashed(default_timeout=3600),
                    timeout=10,
                    what="a reader to judge the stopped run",
                ):
                    return
            except TrackingError:  # stopped while holding the write lock
                process.send_signal(signal.SIGCONT)
                time.sleep(0.1)  # lets it finish its transaction
        raise AssertionError("never judged the stopped flow run")


def test_a_flow_stopped_until_judged_crashed_then_continued_ends_completed_with_every_run(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    script = tmp_path / "paused.py"
    script.write_text(PAUSED)
    env = _env(PREFECT_LIKE_HEARTBEAT_SECONDS="0.2", PREFECT_LIKE_HEARTBEAT_TIMEOUT="1")
    process = subprocess.Popen([sys.executable, str(script), str(gate), str(N)], env=env)
    path = settings.database_path()
    try:
        wait_until(
            lambda: (c := _counts(path)).get("Completed") == N // 2 and c.get("Running") == 4,
            what="half the sweep completed and four runs waiting at the gate",
        )
        _judge_while_stopped(process, path)
        with Store(path) as store:
            (flow_run,) = store.list_flow_runs()
            assert flow_run["state"] == "CRASHED"
            judged = store.task_run_counts(flow_run["id"])
            assert judged["Completed"] == N // 2 and judged["Crashed"] == 4
            assert set(judged) <= {"Completed", "Crashed", "Cancelled"}
        gate.touch()
        process.send_signal(signal.SIGCONT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()

    with Store(path) as store:
        flow_run = store.get_flow_run(flow_run["id"])
        assert flow_run["state"] == "COMPLETED"
        assert store.task_run_counts(flow_run["id"]) == {"Completed": N}
        assert store.count_task_runs(flow_run["id"]) == N
        assert flow_run["task_runs"] == {"Completed": N}
        assert names(flow_run["states"]) == ["Running", "Crashed", "Running", "Completed"]
    shown = subprocess.run(
        [sys.executable, "-m", "prefect_like", "runs", "show", flow_run["id"]],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "verdict is withdrawn" in shown.stdout and "no heartbeat from its process" in shown.stdout
    )


QUIET = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task

    @task
    def think() -> int:
        while not Path(sys.argv[1]).exists():  # quiet: no events but heartbeats, one a second
            time.sleep(0.02)
        return 42

    @flow(name="quiet")
    def quiet():
        return think()

    quiet()
    """
)


def test_a_reader_with_a_much_shorter_timeout_leaves_a_healthy_flow_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_like.client import connect

    script, gate = tmp_path / "quiet.py", tmp_path / "gate"
    script.write_text(QUIET)
    flow_env = _env(PREFECT_LIKE_HEARTBEAT_SECONDS="1", PREFECT_LIKE_HEARTBEAT_TIMEOUT="10")
    process = subprocess.Popen([sys.executable, str(script), str(gate)], env=flow_env)
    # This reader would call a run crashed after 0.3 s of silence; the flow is silent for ~1 s
    # between its heartbeats.
    monkeypatch.setenv("PREFECT_LIKE_HEARTBEAT_SECONDS", "0.1")
    monkeypatch.setenv("PREFECT_LIKE_HEARTBEAT_TIMEOUT", "0.3")
    path = settings.database_path()
    try:
        wait_until(lambda: _counts(path).get("Running") == 1, what="the task run to start")
        deadline = time.monotonic() + 3.5  # past three heartbeat gaps
        while time.monotonic() < deadline:
            with connect() as reader:  # what every CLI command does first
                (flow_run,) = reader.list_flow_runs()
                assert flow_run["state"] == "RUNNING"
            time.sleep(0.05)  # the interval between readers, not a wait for the flow
        cli = subprocess.run(
            [sys.executable, "-m", "prefect_like", "runs", "ls", "--json"],
            env=_env(PREFECT_LIKE_HEARTBEAT_SECONDS="0.1", PREFECT_LIKE_HEARTBEAT_TIMEOUT="0.3"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0 and '"RUNNING"' in cli.stdout, cli.stderr
        gate.touch()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with Store(path) as store:
        flow_run = store.get_flow_run(flow_run["id"])
        assert flow_run["state"] == "COMPLETED" and flow_run["task_runs"] == {"Completed": 1}
        assert names(flow_run["states"]) == ["Running", "Completed"]  # never judged
