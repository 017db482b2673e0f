"""A real server process on 127.0.0.1, and flows in this process streaming to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from prefect_like import flow, get_run_logger, task
from prefect_like.client import Client
from prefect_like.errors import RunNotFoundError
from prefect_like.tracking.recorder import shutdown_recorder
from tests.polling import wait_until
from tests.server._procs import ServerProcess, sweep_events


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server", env={"PREFECT_LIKE_SERVER_MAX_BODY": str(4 * 2**20)}).start()
    monkeypatch.setenv("PREFECT_LIKE_API_URL", proc.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.05")
    try:
        yield proc
    finally:
        shutdown_recorder(timeout=10)  # while the server still answers
        proc.stop()


@task
def train(lr: float, depth: int) -> dict[str, float]:
    if depth == 4:
        raise ValueError(f"depth {depth} diverged")
    get_run_logger().info("trained lr=%s", lr)
    return {"loss": round(abs(lr - 0.3) * depth, 6), "lr": lr}


@flow(task_runner="thread")
def sweep(n: int) -> int:
    futures = train.map([i / n for i in range(n)], [i % 5 for i in range(n)])
    return sum(1 for f in futures if f.exception() is None)


def test_a_flow_streams_to_the_server_and_the_routes_say_what_happened(server: ServerProcess) -> None:
    assert sweep(100) == 80
    with Client() as client:
        (run,) = client.list_flow_runs()
        assert run["flow_name"] == "sweep" and run["state"] == "COMPLETED"
        assert run["task_runs"] == {"Completed": 80, "Failed": 20}
        assert client.count_task_runs(run["id"]) == 100
        best = client.list_task_runs(run["id"], state="completed", order_by="result.loss", limit=3)
        assert [r["result"]["loss"] for r in best] == sorted(r["result"]["loss"] for r in best)
        failed = client.list_task_runs(run["id"], state="FAILED", limit=100)
        assert len(failed) == 20
        detail = client.get_task_run(failed[0]["id"])
        assert detail["error"]["type"] == "ValueError" and "diverged" in detail["error"]["traceback"]
        assert [s["state"] for s in detail["states"]][0] == "PENDING"
        assert detail["states"][-1]["state"] == "FAILED"
        ok = client.list_task_runs(run["id"], state="COMPLETED", limit=1)[0]
        assert any("trained" in line["message"] for line in client.logs(task_run_id=ok["id"]))
        assert sum("trained" in line["message"] for line in client.logs(flow_run_id=run["id"])) == 80
        with pytest.raises(RunNotFoundError):
            client.get_flow_run("0123456789abcdef")


def test_malformed_and_oversized_batches_get_4xx_and_change_nothing(server: ServerProcess) -> None:
    flow_id, events = sweep_events(10)
    with Client() as client:
        client.send_events(events)
        before = client.get_flow_run(flow_id), client.list_task_runs(flow_id)
    headers = {"Content-Type": "application/msgpack"}
    bad = [list(e) for e in events]
    bad[5][2] = -1  # a negative seq, in the middle of an otherwise good batch
    bad[6][0] = "nonsense"
    response = httpx.post(server.url + "/events", content=msgpack.packb(bad), headers=headers)
    assert response.status_code == 422 and "seq" in response.text and "kind" in response.text
    _, big = sweep_events(40_000)
    response = httpx.post(server.url + "/events", content=msgpack.packb(big), headers=headers)
    assert response.status_code == 413
    response = httpx.post(server.url + "/events", content=b"\x00garbage", headers=headers)
    assert response.status_code == 400
    with Client() as client:
        assert (client.get_flow_run(flow_id), client.list_task_runs(flow_id)) == before
        assert client.count_flow_runs() == 1


@pytest.mark.slow
def test_the_server_killed_mid_flow_and_restarted_loses_and_duplicates_nothing(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, prefect_like_home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Small in-memory bound, so the outage also exercises the spill file.
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_MAX_HELD", "300")
    monkeypatch.setenv("PREFECT_LIKE_FLUSH_TIMEOUT", "60")
    n, half = 2000, 1000
    gate = threading.Event()
    ran: list[int] = []

    @task
    def work(i: int) -> dict[str, int]:
        if i >= half:
            gate.wait(60)
            time.sleep(0.002)  # the work itself: spreads the outage's events over many batches
        ran.append(i)
        return {"loss": i % 97}

    @flow(task_runner="thread")
    def gated(n: int) -> int:
        return len(work.map(range(n)).result())

    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("value", gated(n)))
    runner.start()
    try:
        client = Client()

        def first_half_recorded() -> bool:
            try:
                runs = client.list_flow_runs(limit=1)
                return bool(runs) and client.task_run_counts(runs[0]["id"]).get("Completed", 0) >= half
            except Exception:
                return False

        wait_until(first_half_recorded, what="the first half of the sweep on the server")
        server.kill()
        gate.set()  # the second half runs while the server is down
        wait_until(lambda: "tracking cannot write to" in caplog.text, what="a failed delivery")
        wait_until(lambda: len(ran) == n, timeout=60, what="every task run to run")
        server.start()
        runner.join(90)
        assert not runner.is_alive() and outcome["value"] == n
    finally:
        gate.set()
        runner.join(90)

    with Client() as client:
        (run,) = client.list_flow_runs()
        assert run["state"] == "COMPLETED" and run["task_runs"] == {"Completed": n}
        assert client.task_run_counts(run["id"]) == {"Completed": n}
    with server.store() as db:  # SQLite or PostgreSQL, as the server uses
        assert db._one("SELECT COUNT(*), COUNT(DISTINCT id) FROM task_runs") == (n, n)
        assert db._one("SELECT COUNT(*) FROM task_runs WHERE state_type = 'COMPLETED' AND seq = 2") == (n,)
        assert db._one("SELECT COUNT(*) FROM flow_runs") == (1,)
        # Every task run's history is exactly PENDING, RUNNING, COMPLETED: nothing lost, nothing twice.
        sample = db._all("SELECT id FROM task_runs ORDER BY random() LIMIT 50")
    with Client() as client:
        for (task_run_id,) in sample:
            states = [s["state"] for s in client.get_task_run(task_run_id)["states"]]
            assert states == ["PENDING", "RUNNING", "COMPLETED"], (task_run_id, states)
    spill = prefect_like_home / "spill"
    assert not spill.is_dir() or not any(spill.iterdir()), "a spill file is delivered, then removed"


def test_a_runs_runtime_urls_lead_to_it_on_the_server_and_the_dashboard(server: ServerProcess) -> None:
    # Prefect's runtime.flow_run.api_url / ui_url (tests/runtime/test_flow_run.py::TestApiUrl,
    # TestUiUrl): the API URL is PREFECT_API_URL + /flow-runs/ID, the UI URL the run's page.
    from prefect_like import runtime

    @task
    def where() -> tuple[str | None, str | None, str | None]:
        return runtime.task_run.id, runtime.task_run.api_url, runtime.task_run.ui_url

    @flow
    def linked() -> dict[str, Any]:
        return {"flow": (runtime.flow_run.id, runtime.flow_run.api_url, runtime.flow_run.ui_url),
                "task": where()}

    urls = linked()
    base = server.url.removesuffix("/api")
    for kind, (run_id, api_url, ui_url) in (("flow-runs", urls["flow"]), ("task-runs", urls["task"])):
        assert api_url == f"{server.url}/{kind}/{run_id}"
        assert ui_url == f"{base}/#/{kind}/{run_id}"
        shutdown_recorder(timeout=10)
        stored = wait_until(lambda url=api_url: httpx.get(url).status_code == 200 and httpx.get(url).json(), 30, kind)
        assert stored["id"] == run_id
        assert "<html" in httpx.get(ui_url.partition("#")[0]).text.lower()
