"""Several real server processes on one PostgreSQL store: concurrent ingest, the same batches
through two processes, a process killed mid-ingest, ``--workers``; the schema checks at start;
``server database upgrade`` and ``copy``.

Needs PostgreSQL (Debian's ``postgresql`` package): skipped without it, failed under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import psutil
import pytest
from click.testing import CliRunner

from prefect_like.cli import cli
from prefect_like.tracking import databases, schema
from prefect_like.tracking.postgres import VERSION_TABLE
from prefect_like.tracking.store import Store
from tests import pg
from tests.polling import wait_until
from tests.server._procs import ROOT, ServerProcess, sweep_events

pg.require_psycopg()
import psycopg  # noqa: E402

pytestmark = pytest.mark.backends("postgres")

MSGPACK = {"Content-Type": "application/msgpack"}


def post(url: str, events: list[Any]) -> httpx.Response:
    return httpx.post(url + "/events", content=msgpack.packb(events), headers=MSGPACK, timeout=60)


def batches(events: list[Any], size: int) -> list[list[Any]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes, each with its own home, on the test's one PostgreSQL schema."""
    a = ServerProcess(tmp_path / "a").start()
    b = ServerProcess(tmp_path / "b").start()
    assert a.database_url == b.database_url and databases.is_postgres(a.database_url)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_two_processes_ingest_different_flows_at_once_and_store_each_run_once(
    two: tuple[ServerProcess, ServerProcess],
) -> None:
    runs = [sweep_events(3000, fail=(5, 17)) for _ in range(4)]
    errors: list[BaseException] = []

    def send(url: str, events: list[Any]) -> None:
        try:
            for batch in batches(events, 1000):
                assert post(url, batch).status_code == 200
        except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(two[i % 2].url, events)) for i, (_, events) in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with two[0].store() as store:
        assert store.count_flow_runs() == 4
        for flow_id, _ in runs:
            assert store.task_run_counts(flow_id) == {"Completed": 2998, "Failed": 2}
            assert store.get_flow_run(flow_id)["task_runs"] == {"Completed": 2998, "Failed": 2}
    # Both processes read the one store: either one answers for a run the other stored.
    for proc in two:
        body = httpx.get(f"{proc.url}/flow-runs/{runs[0][0]}/task-runs", params={"limit": 1}).json()
        assert body["total"] == 3000


def test_the_same_batches_through_both_processes_at_once_are_stored_once(
    two: tuple[ServerProcess, ServerProcess],
) -> None:
    # A client retrying a batch whose answer it lost may reach another process behind the
    # load balancer: the store is idempotent by event id across processes too.
    flow_id, events = sweep_events(2000, fail=(3,))
    parts = batches(events, 500)
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def send(url: str, order: list[list[Any]]) -> None:
        barrier.wait(10)
        codes.extend(post(url, batch).status_code for batch in order)

    threads = [threading.Thread(target=send, args=(two[0].url, parts)),
               threading.Thread(target=send, args=(two[1].url, parts[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert codes == [200] * (2 * len(parts))
    with two[1].store() as store:
        assert store.count_task_runs(flow_id) == 2000
        assert store.task_run_counts(flow_id) == {"Completed": 1999, "Failed": 1}
        assert len(store.logs(flow_run_id=flow_id)) == 201
        assert store.get_flow_run(flow_id)["state"] == "COMPLETED"


def test_a_process_killed_mid_ingest_loses_nothing_and_half_stores_nothing(
    two: tuple[ServerProcess, ServerProcess],
) -> None:
    # SIGKILL one process while batches stream to it; the client sends what it could not
    # confirm to the other. Each batch is stored whole or not at all, and all of them once.
    a, b = two
    flow_id, events = sweep_events(20_000)
    parts = batches(events, 2000)
    confirmed: list[int] = []
    stop = threading.Event()

    def send() -> None:
        for i, batch in enumerate(parts):
            if stop.is_set():
                return
            try:
                if post(a.url, batch).status_code == 200:
                    confirmed.append(i)
            except httpx.HTTPError:
                return

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(confirmed) >= 3, timeout=60, what="three batches confirmed by process a")
    a.kill()
    stop.set()
    sender.join(60)
    with b.store() as store:
        stored = store.count_task_runs(flow_id)
    # Whole batches only: what is stored is what a prefix of batches holds, nothing between.
    whole = {len({e.run_id for part in parts[:k] for e in part if e.kind == "task"}) for k in range(len(parts) + 1)}
    assert stored in whole, f"{stored} task runs stored: not a whole number of batches"
    for i, batch in enumerate(parts):
        if i not in confirmed:
            assert post(b.url, batch).status_code == 200
    with b.store() as store:
        assert store.count_task_runs(flow_id) == 20_000
        assert store.task_run_counts(flow_id) == {"Completed": 20_000}
        assert store.get_flow_run(flow_id)["state"] == "COMPLETED"


def workers_of(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    return [p for p in psutil.Process(server.proc.pid).children()
            if "multiprocessing.spawn" in " ".join(p.cmdline())]


@pytest.mark.slow
def test_workers_are_that_many_processes_on_one_port(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", workers=2).start()
    try:
        workers = wait_until(lambda: len(w := workers_of(server)) == 2 and w, timeout=30,
                             what="two worker processes")
        runs = [sweep_events(1000) for _ in range(4)]
        threads = [threading.Thread(target=lambda e=e: [post(server.url, b) for b in batches(e, 250)])
                   for _, e in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with server.store() as store:
            assert [store.count_task_runs(flow_id) for flow_id, _ in runs] == [1000] * 4
    finally:
        server.stop()
    # SIGTERM to the server ends its workers too
    wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
               timeout=20, what="the workers to end with the server")


def start_error(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """What ``python -m prefect_like.server`` says when it refuses to start (it must exit)."""
    proc = subprocess.run(
        [sys.executable, "-m", "prefect_like.server", "--port", "1", "--home", str(home), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    return proc.stderr.strip()


@pytest.mark.backends("sqlite")
def test_workers_on_a_sqlite_store_are_refused_in_one_line(tmp_path: Path) -> None:
    said = start_error(tmp_path, "--workers", "2")
    assert said.startswith("Error: --workers 2 needs a PostgreSQL store") and "\n" not in said
    assert not (tmp_path / "prefect_like.db").exists()


def test_a_server_refuses_a_newer_schema_in_one_line(tmp_path: Path) -> None:
    url = os.environ["PREFECT_LIKE_DATABASE_URL"]
    databases.open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version = version + 1")
    said = start_error(tmp_path)
    assert "made by a newer prefect-like" in said and "\n" not in said


def test_upgrade_brings_an_older_store_forward_and_a_server_may_refuse_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ["PREFECT_LIKE_DATABASE_URL"]
    with monkeypatch.context() as mp:
        mp.setattr(schema, "SCHEMA_VERSION", 1)
        databases.open_store(url).close()  # as version 1 made it
    said = start_error(tmp_path, env={"PREFECT_LIKE_DATABASE_MIGRATE_ON_START": "false"})
    assert "has schema 1" in said and "prefect-like server database upgrade" in said
    result = CliRunner().invoke(cli, ["server", "database", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"upgraded from schema 1 to {schema.SCHEMA_VERSION}" in result.output
    again = CliRunner().invoke(cli, ["server", "database", "upgrade"])
    assert "already up to date" in again.output
    server = ServerProcess(tmp_path / "srv", env={"PREFECT_LIKE_DATABASE_MIGRATE_ON_START": "false"}).start()
    server.stop()


def test_copy_moves_sqlite_stores_into_one_postgresql_and_again_adds_nothing(tmp_path: Path) -> None:
    url = os.environ["PREFECT_LIKE_DATABASE_URL"]
    files = []
    for name in ("alice", "bob"):  # two people's stores: their flow runs' keys are both 1
        path = tmp_path / f"{name}.db"
        with Store(path) as store:
            flow_id, events = sweep_events(1500, fail=(7,))
            store.write(events)
        files.append((path, flow_id))
    runner = CliRunner()
    for path, _ in files:
        result = runner.invoke(cli, ["server", "database", "copy", "--from", f"sqlite:///{path}", "--to", url])
        assert result.exit_code == 0, result.output
        assert "task_runs: 1,500 rows read, 1,500 new" in result.output
    again = runner.invoke(cli, ["server", "database", "copy", "--from", f"sqlite:///{files[0][0]}", "--to", url])
    assert "task_runs: 1,500 rows read, 0 new" in again.output
    with databases.open_store(url) as team:
        assert team.count_flow_runs() == 2
        for path, flow_id in files:
            with Store(path) as own:
                assert team.get_flow_run(flow_id) == own.get_flow_run(flow_id)
                assert team.list_task_runs(flow_id, order_by="-result.loss", limit=50) == \
                    own.list_task_runs(flow_id, order_by="-result.loss", limit=50)
                assert team.task_run_counts(flow_id) == {"Completed": 1499, "Failed": 1}
                assert team.logs(flow_run_id=flow_id) == own.logs(flow_run_id=flow_id)


def test_copy_refuses_a_target_that_is_not_postgresql_and_a_missing_file(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["server", "database", "copy", "--from", f"sqlite:///{tmp_path}/none.db",
                                 "--to", "postgresql://x@127.0.0.1:1/y"])
    assert result.exit_code == 1 and "no such file" in result.output
    Store(tmp_path / "a.db").close()
    result = runner.invoke(cli, ["server", "database", "copy", "--from", f"sqlite:///{tmp_path}/a.db",
                                 "--to", f"sqlite:///{tmp_path}/b.db"])
    assert result.exit_code == 1 and "the target of a copy is a PostgreSQL database" in result.output


def test_a_flow_streams_to_a_postgresql_server_while_it_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stateless process: a restart in the middle of a flow changes nothing in the record.
    from prefect_like import flow, task
    from prefect_like.tracking.recorder import shutdown_recorder

    server = ServerProcess(tmp_path / "srv").start()
    monkeypatch.setenv("PREFECT_LIKE_API_URL", server.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.05")
    restarted = threading.Event()

    @task
    def step(i: int) -> int:
        if i == 300 and not restarted.is_set():
            server.kill()
            server.start()
            restarted.set()
        return i

    @flow(task_runner="thread")
    def restarts(n: int) -> int:
        return sum(f.result() for f in step.map(range(n)))

    try:
        assert restarts(1000) == sum(range(1000))
        shutdown_recorder(timeout=30)
        with server.store() as store:
            (run,) = store.list_flow_runs()
            assert run["state"] == "COMPLETED"
            assert store.task_run_counts(run["id"]) == {"Completed": 1000}
    finally:
        shutdown_recorder(timeout=10)
        server.stop()


def test_copy_of_a_store_older_versions_spoiled_keeps_what_postgresql_can_hold(tmp_path: Path) -> None:
    # The spoiled rows of tests/server/test_limits.py: text where numbers belong, broken JSON.
    from tests.server.test_limits import poison

    flow_id, sick, healthy = poison(tmp_path / "old.db")
    url = os.environ["PREFECT_LIKE_DATABASE_URL"]
    result = CliRunner().invoke(cli, ["server", "database", "copy", "--from", f"sqlite:///{tmp_path}/old.db", "--to", url])
    assert result.exit_code == 0, result.output
    assert "state_history: 1 rows left out" in result.output  # its seq is 'six'
    with databases.open_store(url) as team:
        one = team.get_task_run(sick)
        assert (one["map_index"], one["run_count"], one["start_time"]) == (None, None, None)
        assert (one["result"], one["error"]) == ('{"loss": ', "{oops")  # not JSON: shown as stored
        assert team.get_task_run(healthy)["result"]["loss"] >= 0
        assert team.list_task_runs(flow_id, order_by="result.loss", limit=20)[-1]["id"] in (sick, f"{flow_id[:12]}-{7:07x}")
        assert team.count_task_runs(flow_id) == 12
