"""A search streaming to a real tracking server on 127.0.0.1: reports, sweeps and where= over HTTP,
on the SQLite store and on PostgreSQL (the server tests' two backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefect_like import sweep, task
from prefect_like.client import Client
from prefect_like.tracking.recorder import shutdown_recorder
from tests.server._procs import ServerProcess


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    monkeypatch.setenv("PREFECT_LIKE_API_URL", proc.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.05")
    try:
        yield proc
    finally:
        shutdown_recorder(timeout=10)  # while the server still answers
        proc.stop()


@task
def fit(kernel: str, C: float, epochs: int = 4) -> dict[str, float]:
    accuracy = 0.0
    for epoch in range(epochs):
        accuracy = (0.9 if kernel == "rbf" else 0.8) + C / 100 - 0.1 / (epoch + 1)
        sweep.report(step=epoch, accuracy=accuracy)
    return {"accuracy": accuracy}


def test_reports_sweeps_and_where_reach_the_server_batched(server: ServerProcess) -> None:
    search = sweep.optimize(
        fit, sweep.grid(kernel=["rbf", "linear"], C=[1.0, 5.0, 10.0]), sampler="grid", metric="accuracy",
        mode="max", max_concurrent=3, name="svm-remote",
    )
    assert search.best.params == {"kernel": "rbf", "C": 10.0}
    shutdown_recorder(timeout=10)  # every batch delivered before reading back
    base = server.url
    with Client(server.url) as client:
        points = client.metrics(flow_run_id=search.flow_run_id)
        assert len(points) == 6 * 4
        stored = client.get_sweep("svm-remote")
        assert stored["id"] == search.sweep_id and [r["id"] for r in stored["runs"]] == [search.flow_run_id]
        assert client.list_sweeps()[0]["spec"]["metric"] == ["accuracy"]
        chosen = client.list_task_runs(search.flow_run_id, where_text='param.kernel == "rbf" and result.accuracy > 0.92',
                                       order_by="-param.C")
        assert [r["parameters"]["C"] for r in chosen] == [10.0, 5.0]
        assert client.count_task_runs(search.flow_run_id, where_text="param.C < 2") == 2
        # The language's other forms, on this backend's JSON functions.
        for text, count in [("param.kernel in ('rbf') and not (param.C == 1)", 2),
                            ("result.accuracy is not null and param.C in (1, 10)", 4),
                            ("param.C > 2 or param.kernel == 'linear'", 5),
                            ("param.kernel not in ('rbf', 'poly')", 3),
                            ("state == 'COMPLETED' and result.accuracy >= 0.88", 3),
                            ("param.kernel > 5", 0)]:
            assert client.count_task_runs(search.flow_run_id, where_text=text) == count, text
        with pytest.raises(ValueError, match="unknown result key 'result.acuracy'; the known ones are result.accuracy"):
            client.list_task_runs(search.flow_run_id, where_text="result.acuracy > 0.9")
        one = client.metrics(task_run_id=chosen[0]["id"])
        assert [p["step"] for p in one] == [0, 1, 2, 3]

    hostile = httpx.get(f"{base}/flow-runs/{search.flow_run_id}/task-runs",
                        params={"where": "param.C == 1; DELETE FROM task_runs"})
    assert hostile.status_code == 422 and "unexpected character ';'" in hostile.json()["detail"]
    assert httpx.get(f"{base}/sweeps/nope").status_code == 404
    assert httpx.get(f"{base}/flow-runs/{search.flow_run_id}/metrics", params={"limit": 5}).json()["items"][4]["step"] == 0


def test_malformed_reports_are_refused_with_a_4xx_and_store_nothing(server: ServerProcess) -> None:
    event = ["metric", "some-task-run", 0, "some-flow-run", 1.0, None, None, None]
    for data in ({"step": 1, "metrics": "high"}, {"step": 1, "metrics": {"loss": "low"}}, {"step": True, "metrics": {}},
                 {"step": 1, "metrics": {"loss": float("nan")}},
                 # several reports in one event: each is checked as one alone would be
                 {"points": "many"}, {"points": [[0, 1.0, 1]]}, {"points": [[0, 1.0, "one", {}]]},
                 {"points": [[0, 1.7e12, 1, {}]]}, {"points": [[0, 1.0, 1, {"loss": "low"}]]}):
        body = httpx.post(f"{server.url}/events", content=json.dumps([[*event, data]]),
                          headers={"content-type": "application/json"})
        assert body.status_code in (400, 422), (data, body.text)
    from prefect_like.errors import RunNotFoundError

    with Client(server.url) as client, pytest.raises(RunNotFoundError, match="no task run"):
        client.metrics(task_run_id="some-task-run")
