"""Outages on real processes: the server killed or unreachable during a 100,000-task flow, and
two flow processes and a server writing one SQLite file at once. Afterwards the store holds
every event exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from prefect_like import flow, task
from prefect_like.client import Client
from prefect_like.tracking.recorder import get_recorder, shutdown_recorder
from prefect_like.tracking.store import Store
from tests.polling import wait_until
from tests.server._procs import ROOT, ServerProcess, sweep_events

OUTAGE_SECONDS = 60.0  # "unreachable for a minute"
N = 100_000
MAX_HELD = 20_000  # small, so the outage also goes through the spill file




@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    monkeypatch.setenv("PREFECT_LIKE_API_URL", proc.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_MAX_HELD", str(MAX_HELD))
    monkeypatch.setenv("PREFECT_LIKE_FLUSH_TIMEOUT", str(OUTAGE_SECONDS + 120))
    try:
        yield proc
    finally:
        shutdown_recorder(timeout=30)
        proc.stop()


def _sweep_through(server: ServerProcess, outage: Callable[[], None], end_outage: Callable[[], None]) -> float:
    """A 100,000-task flow whose second half runs while the server is out; returns how long
    that half took to run (the flow must not slow to a crawl while its tracker is away)."""
    gate = threading.Event()
    ran: list[int] = []

    @task
    def work(i: int) -> dict[str, int]:
        if i >= N // 2:
            gate.wait(120)
        ran.append(i)
        return {"loss": i % 97}

    @flow(task_runner="thread")
    def big(n: int) -> int:
        return len(work.map(range(n)).result())

    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("value", big(N)))
    runner.start()
    try:
        with Client(server.url) as client:

            def first_half_recorded() -> bool:
                runs = client.list_flow_runs(limit=1)
                return bool(runs) and client.task_run_counts(runs[0]["id"]).get("Completed", 0) >= N // 4

            wait_until(first_half_recorded, what="a quarter of the sweep on the server")
        outage()
        released = time.monotonic()
        gate.set()
        recorder = get_recorder()
        peak_held = 0

        def all_ran() -> bool:
            nonlocal peak_held
            peak_held = max(peak_held, recorder.backlog())
            return len(ran) >= N

        wait_until(lambda: all_ran() or not runner.is_alive(), timeout=120, what="every task run to run")
        half_took = time.monotonic() - released
        assert runner.is_alive(), "the flow ended while its events could not be delivered"
        # Bounded: what the Recorder holds, plus at most the one batch it is moving.
        assert peak_held <= MAX_HELD + recorder.max_batch, f"{peak_held} events held in memory"
        end_outage()
        runner.join(OUTAGE_SECONDS + 120)
        assert not runner.is_alive() and outcome["value"] == N
    finally:
        gate.set()
        runner.join(OUTAGE_SECONDS + 120)
    return half_took


def _assert_exactly_once(server: ServerProcess) -> None:
    with Client(server.url) as client:
        (run,) = client.list_flow_runs()
        assert run["state"] == "COMPLETED" and run["task_runs"] == {"Completed": N}
        assert client.task_run_counts(run["id"]) == {"Completed": N}
    with server.store() as db:  # SQLite or PostgreSQL, as the server uses
        assert db._one("SELECT COUNT(*), COUNT(DISTINCT id) FROM task_runs") == (N, N)
        assert db._one("SELECT COUNT(*) FROM task_runs WHERE state_type = 'COMPLETED' AND seq = 2") == (N,)
        sample = db._all("SELECT id FROM task_runs ORDER BY random() LIMIT 30")
    with Client(server.url) as client:
        for (task_run_id,) in sample:
            states = [s["state"] for s in client.get_task_run(task_run_id)["states"]]
            assert states == ["PENDING", "RUNNING", "COMPLETED"], (task_run_id, states)


@pytest.mark.slow
def test_the_server_killed_and_restarted_during_a_100k_task_flow(server: ServerProcess, prefect_like_home: Path) -> None:
    half_took = _sweep_through(server, server.kill, server.start)
    assert half_took < 60, f"the flow crawled while the server was down: {half_took:.0f} s"
    _assert_exactly_once(server)
    spill = prefect_like_home / "spill"
    assert not spill.is_dir() or not any(spill.iterdir()), "a spill file is delivered, then removed"


@pytest.mark.slow
def test_the_server_unreachable_for_a_minute_during_a_100k_task_flow(server: ServerProcess) -> None:
    stopped_at: list[float] = []

    def stop() -> None:
        server.stop()
        stopped_at.append(time.monotonic())

    def restart_after_the_outage() -> None:
        wait_until(lambda: time.monotonic() - stopped_at[0] >= OUTAGE_SECONDS, timeout=OUTAGE_SECONDS + 5,
                   what="the end of the outage")
        server.start()

    half_took = _sweep_through(server, stop, restart_after_the_outage)
    assert half_took < OUTAGE_SECONDS, "the flow waited for its tracker instead of running"
    _assert_exactly_once(server)


# -- two flow processes and a server on one SQLite file -------------------------------------

FLOW = textwrap.dedent(
    """
    import sys
    from prefect_like import flow, task

    @task
    def square(i: int) -> int:
        return i * i

    @flow(name=sys.argv[1], task_runner="thread")
    def sweep(n: int) -> int:
        return len(square.map(range(n)).result())

    assert sweep(int(sys.argv[2])) == int(sys.argv[2])
    """
)


@pytest.mark.slow
@pytest.mark.backends("sqlite", reason="flows writing the embedded file a server writes too")
def test_two_flows_and_a_server_write_one_database_without_locked_errors(tmp_path: Path, prefect_like_home: Path) -> None:
    server = ServerProcess(prefect_like_home).start()  # the server's store is the flows' embedded one
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LIKE_HOME": str(prefect_like_home),
           "PREFECT_LIKE_RECORDER_INTERVAL": "0.01", "PREFECT_LIKE_RECORDER_MAX_BATCH": "500"}
    env.pop("PREFECT_LIKE_API_URL", None)
    n = 20_000
    flows = [subprocess.Popen([sys.executable, str(script), name, str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("left", "right")]
    posted: list[str] = []
    try:
        while any(p.poll() is None for p in flows) or len(posted) < 5:  # the server writes meanwhile
            flow_id, events = sweep_events(500)
            response = httpx.post(server.url + "/events", content=msgpack.packb(events),
                                  headers={"Content-Type": "application/msgpack"}, timeout=60)
            assert response.status_code == 200, response.text
            posted.append(flow_id)
        outputs = [p.communicate(timeout=120) for p in flows]
    finally:
        for p in flows:
            if p.poll() is None:
                p.kill()
        server.stop()
    for p, (_, stderr) in zip(flows, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
        assert "locked" not in stderr.lower() and "Traceback" not in stderr, stderr[-3000:]
    with Store(prefect_like_home / "prefect_like.db") as store:
        for name in ("left", "right"):
            (run,) = store.list_flow_runs(flow_name=name)
            assert run["state"] == "COMPLETED" and store.task_run_counts(run["id"]) == {"Completed": n}
        for flow_id in posted:
            assert store.get_flow_run(flow_id)["task_runs"] == {"Completed": 500}
