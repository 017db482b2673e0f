"""The PostgreSQL store reads what the SQLite store reads, after the same batches: whole, twice,
split, out of order, verdicts from silence and their withdrawal, runs ended with task runs
unfinished. Each case feeds both stores and compares every read a user sees (CLI, API).

Needs PostgreSQL (Debian's ``postgresql`` package): skipped without it, failed under CI=true.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.tracking import dialect, schema
from prefect_like.tracking.events import Event
from prefect_like.tracking.postgres import VERSION_TABLE, PgStore
from prefect_like.tracking.store import Store
from tests import pg
from tests.polling import wait_until
from tests.tracking.test_store import FLOW_ID, T0, flow_events, task_events, tid

pg.require_psycopg()
import psycopg  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[pg.Cluster]:
    yield pg.cluster()


@pytest.fixture
def stores(cluster: pg.Cluster, tmp_path: Path) -> Iterator[tuple[Store, PgStore]]:
    sqlite, postgres = Store(tmp_path / "prefect_like.db"), PgStore(cluster.fresh())
    yield sqlite, postgres
    sqlite.close()
    postgres.close()


def reads(store: Store, flow_id: str = FLOW_ID) -> dict[str, Any]:
    """Everything a reader is shown of one flow run, through the store's public reads."""
    out: dict[str, Any] = {
        "flows": store.list_flow_runs(),
        "flow": store.get_flow_run(flow_id),
        "tasks": store.list_task_runs(flow_id, limit=1000),
        "by_result": store.list_task_runs(flow_id, order_by="-result.loss", limit=1000),
        "by_duration": store.list_task_runs(flow_id, order_by="duration", limit=5, offset=1),
        "failed": store.list_task_runs(flow_id, state="failed"),
        "counts": store.task_run_counts(flow_id),
        "count_completed": store.count_task_runs(flow_id, state="COMPLETED"),
        "logs": store.logs(flow_run_id=flow_id),
        "throughput": store.throughput(flow_id, buckets=4),
        "all": list(store.iter_task_runs(flow_id, batch=3)),
    }
    out["histories"] = [store.get_task_run(t["id"])["states"] for t in out["tasks"]]
    return out


def write_both(stores: tuple[Store, PgStore], *batches: list[Event]) -> None:
    for store in stores:
        for batch in batches:
            store.write(batch)


def sweep(n: int = 12) -> list[Event]:
    events = flow_events()
    for i in range(n):
        final = ("FAILED", "Failed") if i % 5 == 3 else ("COMPLETED", "Completed")
        events += task_events(tid(i), i, final=final, result={"loss": (i * 7) % n / n, "acc": i})
    events.append(Event("log", tid(1), 0, FLOW_ID, T0 + 3, None, "INFO", "step 1", {"logger": "t"}))
    events.append(Event("log", FLOW_ID, 0, None, T0 + 4, None, "WARNING", "flow says", {"logger": "f"}))
    return events


def test_a_batch_whole_twice_split_or_reversed_reads_the_same_on_both(stores: tuple[Store, PgStore]) -> None:
    # The SQLite store's own cases (tests/tracking/test_store.py), on both stores at once.
    events = sweep()
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    write_both(stores, events, events, shuffled[:20], shuffled[20:], list(reversed(events)))
    sqlite, postgres = stores
    assert reads(postgres) == reads(sqlite)
    assert reads(postgres)["counts"] == {"Completed": 10, "Failed": 2}


def test_a_bulk_batch_goes_by_copy_and_reads_the_same(stores: tuple[Store, PgStore]) -> None:
    events = sweep(400)  # past the COPY threshold for every table
    write_both(stores, events[: len(events) // 2], events, events[len(events) // 3 :])
    sqlite, postgres = stores
    assert reads(postgres) == reads(sqlite)
    assert postgres.count_task_runs(FLOW_ID) == 400


def test_a_verdict_from_silence_and_its_withdrawal_read_the_same(stores: tuple[Store, PgStore]) -> None:
    # A flow run goes silent (killed): both stores end it Crashed at its last sign of life;
    # a late event withdraws the verdict, and its own end wins.
    old = time.time() - 600
    start = [Event("flow", FLOW_ID, 0, None, old, "RUNNING", "Running", None,
                   {"name": "n", "flow_name": "f", "parameters": {}, "parent_task_run_id": None,
                    "runner": "thread", "heartbeat_timeout": 0.3})]
    tasks = [Event("task", tid(i), 0, FLOW_ID, old + i, "PENDING", "Pending", None,
                   {"task_name": "t", "map_index": i, "name": f"t-{i}", "tags": []}) for i in range(3)]
    tasks.append(Event("task", tid(0), 1, FLOW_ID, old + 3, "RUNNING", "Running", None, {"run_count": 1}))
    write_both(stores, start + tasks)
    sqlite, postgres = stores
    for store in stores:  # silent past its own 0.3 s since the store last heard of it
        wait_until(lambda store=store: store.mark_crashed(3600), timeout=10, what="the verdict")
    assert postgres.get_flow_run(FLOW_ID)["state"] == "CRASHED"
    assert reads(postgres) == reads(sqlite)
    late = [Event("heartbeat", FLOW_ID, 0, None, time.time(), None, None, None, None),
            Event("task", tid(0), 2, FLOW_ID, time.time(), "COMPLETED", "Completed", None, {"result": 1})]
    write_both(stores, late)
    assert postgres.get_flow_run(FLOW_ID)["state"] == "RUNNING"
    assert reads(postgres) == reads(sqlite)
    end = [Event("flow", FLOW_ID, 1, None, time.time(), "COMPLETED", "Completed", None, {"task_runs": {}})]
    write_both(stores, end)
    after = reads(postgres)
    assert after == reads(sqlite)
    # _close_ended: what never ended is Cancelled, and the counts are what the store holds
    assert after["counts"] == {"Cancelled": 2, "Completed": 1}


def test_text_postgresql_cannot_hold_is_stored_with_a_replacement_character(stores: tuple[Store, PgStore]) -> None:
    # SQLite stores a NUL; PostgreSQL refuses it. The batch is kept, the NUL shown as U+FFFD.
    events = flow_events() + task_events(tid(0), final=("FAILED", "Failed"))
    events[-1] = events[-1]._replace(message="bad\x00message")
    stores[1].write(events)
    task = stores[1].get_task_run(tid(0))
    assert task["message"] == "bad\ufffdmessage"
    assert stores[1].task_run_counts(FLOW_ID) == {"Failed": 1}


def test_a_malformed_batch_is_refused_in_one_line_and_stores_nothing(stores: tuple[Store, PgStore]) -> None:
    bad = [*flow_events(), Event("task", tid(0), "x", FLOW_ID, T0, "PENDING", "Pending", None, None)]  # type: ignore[arg-type]
    for store in stores:
        with pytest.raises(TrackingError):
            store.write(bad)
    with pytest.raises(RunNotFoundError):
        stores[1].get_flow_run(FLOW_ID)


def test_a_newer_schema_is_refused_in_one_line_and_left_alone(cluster: pg.Cluster) -> None:
    url = cluster.fresh()
    PgStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version = version + 1")
    with pytest.raises(TrackingError, match=r"made by a newer prefect-like: schema \d+, this one reads up to") as info:
        PgStore(url)
    assert "\n" not in str(info.value)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone() == (schema.SCHEMA_VERSION + 1,)


def test_an_older_schema_is_brought_forward_by_the_same_steps(cluster: pg.Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    url = cluster.fresh()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    PgStore(url).close()  # a store as version 1 made it
    monkeypatch.undo()
    with pytest.raises(TrackingError, match="has schema 1, .*run `prefect-like server database upgrade`"):
        PgStore(url, migrate=False)
    with PgStore(url) as store:
        store.write(flow_events(heartbeat_timeout=30))  # a column step 2 added
        assert store.get_flow_run(FLOW_ID)["state"] == "COMPLETED"
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone() == (schema.SCHEMA_VERSION,)


def test_a_schema_holding_another_programs_flow_runs_is_refused(cluster: pg.Cluster) -> None:
    url = cluster.fresh()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE flow_runs (x int)")
    with pytest.raises(TrackingError, match="not a prefect-like database"):
        PgStore(url)


def test_an_unreachable_database_is_one_line_naming_it_without_its_password() -> None:
    with pytest.raises(TrackingError) as info:
        PgStore("postgresql://team:s3cret@127.0.0.1:1/tracking")
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = :name", "SELECT a FROM t WHERE b = %s AND c = %(name)s"),
        ("SELECT ?1, ?2, ?1", "SELECT %(p1)s, %(p2)s, %(p1)s"),
        ("INSERT OR IGNORE INTO logs VALUES (?, ?)", "INSERT INTO logs VALUES (%s, %s) ON CONFLICT DO NOTHING"),
        ("SET x = MIN(COALESCE(a, b), COALESCE(b, a)), y = MAX(t.seq, e.seq)",
         "SET x = LEAST(COALESCE(a, b), COALESCE(b, a)), y = GREATEST(t.seq, e.seq)"),
        ("SELECT MIN(end_time), MAX(x) FROM t", "SELECT MIN(end_time), MAX(x) FROM t"),
        ("SELECT MIN(CAST((e - ?) / ? AS INTEGER), ?)", "SELECT LEAST(CAST(trunc((e - %s) / %s) AS BIGINT), %s)"),
        ("SELECT 'it''s ? 50%' WHERE a LIKE 'x%' AND b = ?", "SELECT 'it''s ? 50%' WHERE a LIKE 'x%' AND b = %s"),
        ("SELECT v FROM json_each(?) AS j CROSS JOIN t ON t.rowid = j.value LIMIT ? OFFSET ?",
         "SELECT v FROM sqlite_json_each(%s) AS j JOIN t ON t.rowid = j.value::bigint LIMIT NULLIF(%s, -1) OFFSET %s"),
        ("SELECT x::text, instr(a, ?)", "SELECT x::text, strpos(a, %s)"),
        ("ORDER BY CASE WHEN json_valid(result) THEN json_extract(result, ?) END DESC NULLS LAST",
         "ORDER BY sqlite_json_at(result, %s) DESC NULLS LAST"),
        ("SELECT total(n), total", "SELECT CAST(COALESCE(SUM(n), 0) AS DOUBLE PRECISION), total"),
    ],
)
def test_sqlite_statements_are_translated(sqlite: str, postgres: str) -> None:
    assert dialect.translate(sqlite) == postgres


def test_migration_steps_are_translated_to_postgresql_types() -> None:
    table = dialect.ddl("CREATE TABLE t (\n    key INTEGER PRIMARY KEY,\n    x REAL, -- seconds\n    y TEXT NOT NULL\n)")
    assert "key BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in table
    assert "x DOUBLE PRECISION" in table and 'y TEXT COLLATE "C" NOT NULL' in table
    assert table.endswith("rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE\n)")
    assert "rowid" not in dialect.ddl("CREATE TABLE h (a INTEGER, PRIMARY KEY (a)) WITHOUT ROWID")


def test_workers_racing_over_three_connections_claim_each_deployment_run_once(cluster: pg.Cluster) -> None:
    # tests/tracking/test_control.py's race, each Control on its own PostgreSQL connection as a
    # server process has: the claim's transaction holds the store's write lock.
    from prefect_like.tracking.postgres import control

    url = cluster.fresh()
    setup = control(url)
    setup.put_deployment({"name": "nightly", "flow_name": "train", "entrypoint": "/src/train.py:train",
                          "work_pool": "gpu", "parameters": {"n": 1},
                          "parameter_schema": {"properties": {"n": {"type": "integer"}}, "required": ["n"]}})
    made = {setup.create_run("nightly", {"n": i})["id"] for i in range(60)}
    got: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    start = threading.Barrier(len(got))

    def work(name: str) -> None:
        mine = control(url)
        start.wait()
        try:
            while runs := mine.claim("gpu", name, 1):
                got[name].extend(r["id"] for r in runs)
        finally:
            mine.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    setup.close()
    assert sorted(got["a"] + got["b"] + got["c"]) == sorted(made)  # every run claimed, none twice
    with PgStore(url) as store:  # and each is a flow run the store lists, Scheduled
        assert store.count_flow_runs() == 60


def test_a_store_whose_sql_functions_an_earlier_version_made_gets_this_versions(cluster: pg.Cluster) -> None:
    # An earlier version made json_valid PARALLEL SAFE, which a parallel plan cannot run.
    url = cluster.fresh()
    PgStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER FUNCTION json_valid PARALLEL SAFE")
        conn.execute("COMMENT ON FUNCTION json_valid IS 'an earlier one'")
    PgStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        (parallel,) = conn.execute("SELECT proparallel FROM pg_proc WHERE proname = 'json_valid' "
                                   "AND pronamespace = current_schema()::regnamespace").fetchone()
    assert parallel == "u"


def test_deployments_are_read_by_name_after_the_database_connection_is_lost(cluster: pg.Cluster) -> None:
    # PostgreSQL restarted, or the network dropped the connection: the next call reconnects.
    from prefect_like.tracking.postgres import control

    url = cluster.fresh()
    ctl = control(url)
    try:
        ctl.set_pool_limit("gpu", 2)
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                          "AND query NOT ILIKE '%pg_stat_activity%' AND backend_type = 'client backend'")
        assert ctl.list_pools() == [{"name": "gpu", "concurrency_limit": 2, "queued": 0}]
    finally:
        ctl.close()
