"""What one event may hold, on a real server process: values the store cannot keep sanely are
refused whole (a 422 naming the event and the field, nothing of the batch stored), long texts
are stored cut instead of refused, and no value already in the store breaks a read, over HTTP
or from the CLI on the embedded store.

The cases are what operators met: a JavaScript producer's ``Date.now()`` (milliseconds) made
every later ``GET /api/flow-runs`` a 422 ("year 55840 is out of range"), nanoseconds or 1e300 a
500; a task whose exception message passed 1,000,000 characters lost its only final event to
``rejected/`` in server mode, while the embedded store kept it.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from click.testing import CliRunner

from prefect_like import flow, get_run_logger, settings, task
from prefect_like.cli import cli
from prefect_like.client import Client, connect
from prefect_like.tracking.limits import DEFAULT_MAX_MESSAGE
from prefect_like.tracking.recorder import shutdown_recorder
from prefect_like.tracking.store import Store
from tests.server._procs import ROOT, ServerProcess, free_port, sweep_events

MSGPACK = {"Content-Type": "application/msgpack"}
T0 = 1_700_000_000.0
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield proc
    proc.stop()


def post(server: ServerProcess, events: Any, *, json: bool = False) -> httpx.Response:
    if json:
        return httpx.post(
            server.url + "/events",
            content=orjson.dumps(events),
            headers={"Content-Type": "application/json"},
        )
    return httpx.post(server.url + "/events", content=msgpack.packb(events), headers=MSGPACK)


def fresh_flow() -> tuple[str, list[Any]]:
    """A new flow run's first event: stored if and only if its batch is."""
    flow_id = uuid.uuid4().hex
    return flow_id, [
        "flow",
        flow_id,
        0,
        None,
        T0,
        "RUNNING",
        "Running",
        None,
        {"flow_name": "f", "name": "n"},
    ]


def stored(server: ServerProcess, run_id: str) -> bool:
    return httpx.get(f"{server.url}/runs/{run_id}").status_code == 200


# -- refused on ingest ------------------------------------------------------------------------

MILLIS, NANOS = 1.7e12, 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    "timestamp",
    [MILLIS, NANOS, 1e300, math.inf, -math.inf, math.nan, -1.0],
    ids=["milliseconds", "nanoseconds", "1e300", "inf", "-inf", "nan", "negative"],
)
@pytest.mark.parametrize("where", ["timestamp", "data.created", "data.started"])
def test_a_timestamp_that_is_not_seconds_is_refused_naming_the_event_and_field(
    server: ServerProcess, timestamp: float, where: str
) -> None:
    flow_id, good = fresh_flow()
    task_id = uuid.uuid4().hex
    bad: list[Any] = [
        "task",
        task_id,
        2,
        flow_id,
        T0,
        "COMPLETED",
        "Completed",
        None,
        {"task_name": "t"},
    ]
    if where == "timestamp":
        bad[4] = timestamp
    else:
        bad[8][where.split(".")[1]] = timestamp
    response = post(server, [good, bad])
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events", 1, *where.split(".")]
    assert error["event"] == f"task:{task_id}:2"
    assert "seconds since the epoch" in error["msg"]
    if timestamp in (MILLIS, NANOS):
        assert "milliseconds or nanoseconds?" in error["msg"]
    assert not stored(server, flow_id) and not stored(server, task_id)
    assert httpx.get(server.url + "/flow-runs").status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", INT64_MAX + 1),
        ("data.map_index", INT64_MAX + 1),
        ("data.map_index", "3"),
        ("data.run_count", 2**64 - 1),
        ("data.run_count", -1),
        ("data.duration", math.nan),
        ("data.duration", math.inf),
        ("data.duration", "fast"),
        ("data.task_name", {"a": 1}),
        ("data.tags", "not-a-list"),
        ("data.task_runs", {"Completed": INT64_MAX + 1}),
        ("data.task_runs", {"Completed": "many"}),
        ("data.logger", ["x"]),
    ],
)
def test_a_number_or_name_the_store_cannot_hold_is_refused_and_nothing_is_stored(
    server: ServerProcess, field: str, value: Any
) -> None:
    flow_id, good = fresh_flow()
    task_id = uuid.uuid4().hex
    bad: list[Any] = [
        "task",
        task_id,
        2,
        flow_id,
        T0,
        "COMPLETED",
        "Completed",
        None,
        {"task_name": "t", "map_index": 0, "run_count": 1, "duration": 0.5},
    ]
    if field == "seq":
        bad[2] = value
    else:
        bad[8][field.split(".")[1]] = value
    response = post(server, [good, bad])
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert all(e["event"].startswith(f"task:{task_id}:") for e in errors)
    assert field.split(".")[-1] in orjson.dumps(errors).decode()
    assert not stored(server, flow_id) and not stored(server, task_id)


def test_no_out_of_range_value_gets_a_5xx_over_json_either(server: ServerProcess) -> None:
    flow_id, good = fresh_flow()
    for text in (b"1e400", b"-1e400", b"17000000000000000000000000", b"1.7e12"):
        body = orjson.dumps([good]).replace(str(T0).encode(), text)
        response = httpx.post(
            server.url + "/events", content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (text, response.text)
    assert not stored(server, flow_id)


# -- long texts are cut, not refused ----------------------------------------------------------


def test_a_raw_batch_with_huge_texts_is_stored_cut_with_200(server: ServerProcess) -> None:
    flow_id, good = fresh_flow()
    task_id, log_run = uuid.uuid4().hex, uuid.uuid4().hex
    message = "m" * 1_500_000
    traceback = (
        "Traceback (most recent call last):\n" + "  frame\n" * 300_000 + "ValueError: the end"
    )
    events = [
        good,
        [
            "task",
            task_id,
            2,
            flow_id,
            T0 + 1,
            "FAILED",
            "Failed",
            message,
            {
                "task_name": "t",
                "error": {"type": "ValueError", "message": message, "traceback": traceback},
            },
        ],
        [
            "log",
            log_run,
            0,
            flow_id,
            T0 + 2,
            None,
            "INFO",
            "l" * 1_200_000,
            {"level": 20, "logger": "x"},
        ],
    ]
    for _ in range(2):  # sent twice: cut the same way, stored once
        response = post(server, events)
        assert response.status_code == 200, response.text
    with Client(server.url) as client:
        run = client.get_task_run(task_id)
        assert len(run["message"]) == DEFAULT_MAX_MESSAGE
        assert (
            run["message"].startswith("mmm")
            and "[truncated: 1,500,000 characters in all]" in run["message"]
        )
        assert len(run["error"]["message"]) == DEFAULT_MAX_MESSAGE
        tb = run["error"]["traceback"]
        assert len(tb) == DEFAULT_MAX_MESSAGE and tb.endswith(
            "ValueError: the end"
        )  # the end is kept
        (line,) = client.logs(flow_run_id=flow_id)
        assert len(line["message"]) == DEFAULT_MAX_MESSAGE
        assert "[truncated: 1,200,000 characters in all]" in line["message"]


@pytest.fixture
def streaming(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    monkeypatch.setenv("PREFECT_LIKE_API_URL", server.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.05")
    yield server
    shutdown_recorder(timeout=10)


@task
def step(i: int) -> int:
    if i == 1:
        raise ValueError("x" * 1_200_000)
    if i == 2:
        get_run_logger().info("y" * 1_500_000)
    return i


@flow(task_runner="thread")
def three_steps() -> list[bool]:
    return [f.exception() is None for f in step.map(range(3))]


def test_a_flow_with_a_huge_exception_and_log_line_keeps_every_task_run_on_the_server(
    streaming: ServerProcess, prefect_like_home: Path
) -> None:
    assert three_steps() == [True, False, True]
    with Client(streaming.url) as client:
        run = next(r for r in client.list_flow_runs(limit=100) if r["flow_name"] == "three-steps")
        assert run["task_runs"] == {"Completed": 2, "Failed": 1}
        assert client.count_task_runs(run["id"]) == 3
        (failed,) = client.list_task_runs(run["id"], state="FAILED")
        assert "[truncated: 1,200,000 characters in all]" in failed["error"]["message"]
        assert len(failed["error"]["message"]) == DEFAULT_MAX_MESSAGE
        assert failed["message"] is None or len(failed["message"]) <= DEFAULT_MAX_MESSAGE
        lines = [
            line["message"]
            for line in client.logs(flow_run_id=run["id"])
            if line["message"].startswith("yyy")
        ]
        assert len(lines) == 1 and "[truncated: 1,500,000 characters in all]" in lines[0]
    assert not (prefect_like_home / "rejected").exists()


def test_the_embedded_store_keeps_the_same_cut_texts(prefect_like_home: Path) -> None:
    assert three_steps() == [True, False, True]
    shutdown_recorder(timeout=10)
    with connect() as store:
        (run,) = store.list_flow_runs()
        assert run["task_runs"] == {"Completed": 2, "Failed": 1}
        (failed,) = store.list_task_runs(run["id"], state="FAILED")
        assert len(failed["error"]["message"]) == DEFAULT_MAX_MESSAGE


def test_the_limit_is_a_setting_and_a_bad_one_stops_the_server_with_one_line(
    tmp_path: Path,
) -> None:
    small = ServerProcess(tmp_path / "small", env={"PREFECT_LIKE_MAX_MESSAGE": "5000"}).start()
    try:
        flow_id, good = fresh_flow()
        good[7] = "z" * 20_000
        assert post(small, [good]).status_code == 200
        assert len(httpx.get(f"{small.url}/flow-runs/{flow_id}").json()["message"]) == 5000
    finally:
        small.stop()
    env = {**small.env, "PREFECT_LIKE_MAX_MESSAGE": "lots"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect_like.server",
            "--port",
            str(free_port()),
            "--home",
            str(tmp_path / "bad"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        done.returncode == 2
        and done.stderr.strip() == "Error: PREFECT_LIKE_MAX_MESSAGE must be a number, got 'lots'"
    )
    assert not (tmp_path / "bad").exists()


# -- no stored value breaks a read ------------------------------------------------------------


def poison(database: Path) -> tuple[str, str, str]:
    """A good flow run written by the Store, then rows spoiled the ways older versions and bad
    writers did, straight in the SQLite file. Returns (flow run, spoiled task run, good task run)."""
    flow_id, events = sweep_events(12, fail=(3,))
    sick, healthy = f"{flow_id[:12]}-{3:07x}", f"{flow_id[:12]}-{5:07x}"
    with Store(database) as store:
        store.write(events)
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE flow_runs SET created = 1.7e12, start_time = 'yesterday', end_time = 1e300, "
            "duration = 'slow', parameters = '{not json', task_runs = '[1, 2]', "
            'error = \'{"message": NaN, "n": 123456789012345678901234567890}\', heartbeat = 9e99 WHERE id = ?',
            (flow_id,),
        )
        db.execute(
            "UPDATE task_runs SET created = -5e20, start_time = 1.7e18, end_time = 'soon', "
            "duration = 'x', map_index = 'three', run_count = 'many', result = '{\"loss\": ', "
            "tags = 'oops', error = '{oops', parameters = X'00ff' WHERE id = ?",
            (sick,),
        )
        db.execute(
            "UPDATE task_runs SET result = 'NaN', end_time = 1e308 WHERE id = ?",
            (f"{flow_id[:12]}-{7:07x}",),
        )
        db.execute(
            "INSERT INTO state_history VALUES (?, 5, 'RUNNING', 'Retrying', 1.7e12, NULL)", (sick,)
        )
        db.execute(
            "INSERT INTO state_history VALUES (?, 'six', 'RUNNING', 'Retrying', 'then', NULL)",
            (sick,),
        )
        db.execute("UPDATE logs SET timestamp = 'later' WHERE run_id = ?", (flow_id,))
    return flow_id, sick, healthy


@pytest.mark.backends("sqlite", reason="text in number columns: only SQLite holds it (test_postgres_servers copies it)")
def test_spoiled_rows_are_served_with_those_fields_null_over_http(tmp_path: Path) -> None:
    home = tmp_path / "spoiled"
    home.mkdir()
    flow_id, sick, healthy = poison(home / "prefect_like.db")
    server = ServerProcess(home).start()

    def get(path: str, **params: Any) -> httpx.Response:
        response = httpx.get(server.url + path, params=params)
        assert response.status_code == 200, (path, params, response.text)
        return response

    try:
        (run,) = get("/flow-runs").json()["items"]
        assert (run["start_time"], run["end_time"], run["duration"], run["heartbeat"]) == (
            None,
        ) * 4
        assert run["parameters"] == {}
        assert run["task_runs"] == {
            "Completed": 11,
            "Failed": 1,
        }  # stored counts that are not: counted now
        assert run["error"] == {"message": None, "n": pytest.approx(1.2345678901234568e29)}
        assert get(f"/flow-runs/{flow_id}").json()["id"] == flow_id
        one = get(f"/task-runs/{sick}").json()
        assert (one["created"], one["start_time"], one["end_time"], one["duration"]) == (None,) * 4
        assert (one["map_index"], one["run_count"], one["parameters"], one["tags"]) == (
            "three",
            "many",
            None,
            [],
        )
        assert (one["result"], one["error"]) == ('{"loss": ', "{oops")  # not JSON: shown as stored
        assert [s["seq"] for s in one["states"]][-2:] == [5, "six"]
        assert get(f"/task-runs/{healthy}").json()["result"]["loss"] >= 0
        for params in (
            {},
            {"order_by": "result.loss"},
            {"order_by": "-result"},
            {"order_by": "duration"},
            {"order_by": "end_time"},
            {"state": "failed"},
        ):
            assert get(f"/flow-runs/{flow_id}/task-runs", **params).json()["total"] >= 1
        for path in (
            f"/flow-runs/{flow_id}/task-run-counts",
            f"/flow-runs/{flow_id}/logs",
            f"/task-runs/{sick}/logs",
            "/dashboard/flow-names",
            f"/dashboard/flow-runs/{flow_id}/facets",
            f"/dashboard/flow-runs/{flow_id}/subflows",
        ):
            get(path)
        buckets = get(f"/flow-runs/{flow_id}/throughput").json()
        assert (
            sum(b["count"] for b in buckets) == 10
        )  # the two end times that are not times are left out
    finally:
        server.stop()


def test_spoiled_rows_are_shown_by_the_cli_from_the_embedded_store(prefect_like_home: Path) -> None:
    flow_id, sick, _ = poison(settings.database_path())
    runner = CliRunner()
    for args in (
        ["runs", "ls"],
        ["runs", "ls", "--json"],
        ["runs", "show", flow_id],
        ["runs", "show", sick],
        ["runs", "show", sick, "--json"],
        ["runs", "tasks", flow_id, "--order-by", "result.loss"],
        ["runs", "tasks", flow_id, "--json"],
        ["runs", "logs", flow_id],
        ["runs", "export", flow_id, "-o", str(prefect_like_home / "runs.csv")],
        ["runs", "export", flow_id, "-o", str(prefect_like_home / "runs.parquet")],
    ):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    listed = orjson.loads(runner.invoke(cli, ["runs", "ls", "--json"]).output)
    assert listed[0]["id"] == flow_id and listed[0]["start_time"] is None
    shown = runner.invoke(cli, ["runs", "show", sick]).output
    assert "three" in shown and "{oops" in shown
