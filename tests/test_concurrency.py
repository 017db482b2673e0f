"""Concurrency limits: ``concurrency()``/``rate_limit()`` (sync and asyncio), tag limits on task
runs, shared across real processes through the embedded store and through a real tracking server,
leases that come back when their holder is killed, and the ``concurrency-limit``/``gcl`` CLI.

Cases from Prefect's docs ("Global concurrency limits": a limit of slots, ``occupy``, a rate limit
with ``slot_decay_per_second``, ``strict=True`` refusing a limit that does not exist,
``timeout_seconds`` raising ``TimeoutError``; "Tag-based concurrency limits": ``concurrency-limit
create TAG N`` / ``inspect`` / ``reset`` / ``delete``, a task run of a limited tag waits for a
slot) and tests/concurrency/test_concurrency_sync.py / test_concurrency_asyncio.py (acquire and
release around a block, a zero-name call is a no-op).

Overlap is checked from the intervals the tasks record (start, end), never from how long
anything took.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefect_like import flow, settings, task
from prefect_like.cli import cli
from prefect_like.concurrency import asyncio as aconcurrency
from prefect_like.concurrency import store as limits
from prefect_like.concurrency import tags as tag_slots
from prefect_like.concurrency.sync import concurrency, rate_limit
from prefect_like.tracking.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_limits() -> None:
    tag_slots.forget_limits()


def make_limit(name: str, n: int, decay: float | None = None) -> None:
    with Store(settings.database_path()) as store:
        limits.create_limit(store, name, n, decay)
    tag_slots.forget_limits()


def intervals(path: Path) -> list[tuple[float, float]]:
    return sorted(tuple(json.loads(line)) for line in path.read_text().splitlines())  # type: ignore[misc]


def assert_no_overlap(spans: list[tuple[float, float]]) -> None:
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two holders of a 1-slot limit overlapped: one ended {end}, the next began {start}"


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


WORKER = textwrap.dedent("""
    import json, sys, time
    from prefect_like import flow, task

    log = sys.argv[1]

    @task(tags=["gpu"])
    def on_gpu(i):
        start = time.time()
        time.sleep(0.02)  # the work that holds the slot
        end = time.time()
        with open(log, "a") as f:
            f.write(json.dumps([start, end]) + "\\n")
        return i

    @flow(task_runner="thread")
    def sweep(n):
        return sum(on_gpu.map(range(n)).result())

    assert sweep(int(sys.argv[2])) == sum(range(int(sys.argv[2])))
""")


# -- tag limits across processes ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_sharing_a_tag_limit_of_1_never_overlap(tmp_path: Path) -> None:
    make_limit("gpu", 1)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "spans.jsonl"
    procs = [subprocess.Popen([sys.executable, str(script), str(log), "12"], env=env()) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    spans = intervals(log)
    assert len(spans) == 24
    assert_no_overlap(spans)
    with Store(settings.database_path()) as store:
        assert store.list_flow_runs()[0]["task_runs"] == {"Completed": 12}
        assert limits.get_limit(store, "gpu")["holders"] == []  # every slot given back


def test_a_tag_limit_of_2_holds_a_thread_pool_of_6_to_2_at_once(tmp_path: Path) -> None:
    make_limit("db", 2)
    log = tmp_path / "spans.jsonl"
    lock = threading.Lock()

    @task(tags=["db", "unlimited-tag"])
    def query(i: int) -> int:
        start = time.time()
        time.sleep(0.01)
        with lock, open(log, "a") as f:
            f.write(json.dumps([start, time.time()]) + "\n")
        return i

    @task
    def untagged(i: int) -> int:
        return i

    @flow(task_runner="thread")
    def queries() -> int:
        return sum(query.map(range(12)).result()) + sum(untagged.map(range(5)).result())

    assert queries() == sum(range(12)) + sum(range(5))
    assert most_at_once(intervals(log)) <= 2


def test_a_tag_limit_of_0_refuses_its_runs_and_the_flow_goes_on() -> None:
    # Prefect docs (tag-based limits): with a limit of 0, a task run with that tag is aborted
    # instead of delayed.
    make_limit("forbidden", 0)

    @task(tags=["forbidden"])
    def refused(i: int) -> int:
        return i

    @task
    def allowed(i: int) -> int:
        return i

    @flow(task_runner="thread")
    def mixed() -> int:
        states = refused.map(range(3), return_state=True)
        assert all(s.is_failed() for s in states)
        return sum(allowed.map(range(3)).result())

    state = mixed(return_state=True)
    assert state.result() == 3
    with Store(settings.database_path()) as store:
        failed = store.list_task_runs(state.run_id, state="failed")
    assert len(failed) == 3
    assert all("the concurrency limit 'forbidden' has 0 slots" in r["error"]["message"] for r in failed)


def test_a_tag_without_a_limit_asks_the_store_once_per_cache_period(monkeypatch: pytest.MonkeyPatch) -> None:
    make_limit("other", 1)
    asked: list[int] = []
    backend = tag_slots.slots()
    original = type(backend).limited_names
    monkeypatch.setattr(type(backend), "limited_names", lambda self: asked.append(1) or original(self))

    @task(tags=["free"])
    def free(i: int) -> int:
        return i

    @flow
    def many() -> int:
        return sum(free(i) for i in range(200))

    assert many() == sum(range(200))
    assert len(asked) == 1


@pytest.mark.slow
def test_a_killed_holders_slot_comes_back_once_its_lease_expires(tmp_path: Path) -> None:
    make_limit("gpu", 1)
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import pathlib, threading
            from prefect_like.concurrency.sync import concurrency
            with concurrency("gpu"):
                pathlib.Path({str(held)!r}).write_text("yes")
                threading.Event().wait(600)
        """)],
        env=env(PREFECT_LIKE_CONCURRENCY_LEASE_SECONDS="1"),
    )
    try:
        deadline = time.monotonic() + 60
        while not held.exists():  # poll with a deadline until it holds the slot
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        # Alive, it renews its 1 s lease: a wait longer than the lease still finds the slot taken.
        with pytest.raises(TimeoutError, match="'gpu' within 2.5 s"), concurrency("gpu", timeout_seconds=2.5):
            pass
        with Store(settings.database_path()) as store:
            assert [h["holder"].split(":")[1] for h in limits.get_limit(store, "gpu")["holders"]] == [str(holder.pid)]
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with concurrency("gpu", timeout_seconds=60):  # its lease lapses, the slot is free again
            with Store(settings.database_path()) as store:
                taken = limits.get_limit(store, "gpu")["holders"]
            assert [h["holder"].split(":")[1] for h in taken] == [str(os.getpid())]
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.slow
def test_a_flow_interrupted_while_its_run_holds_a_slot_gives_it_back_as_it_exits(tmp_path: Path) -> None:
    make_limit("gpu", 1)
    held = tmp_path / "held"
    script = tmp_path / "hold.py"
    script.write_text(textwrap.dedent(f"""
        import pathlib, threading
        from prefect_like import flow, task

        @task(tags=["gpu"])
        def hold(i):
            pathlib.Path({str(held)!r}).write_text("yes")
            threading.Event().wait(600)

        @flow(task_runner="thread")
        def f():
            return hold.map(range(3)).result()

        f()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env=env())  # the default 60 s lease
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) in (130, -signal.SIGINT)  # ended by the interrupt
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with Store(settings.database_path()) as store:
        assert limits.get_limit(store, "gpu")["holders"] == []  # given back, not left to lapse


# -- concurrency() and rate_limit() --------------------------------------------------------------------


def test_concurrency_blocks_are_mutually_exclusive_across_threads(tmp_path: Path) -> None:
    make_limit("database", 1)
    spans: list[tuple[float, float]] = []

    def worker() -> None:
        for _ in range(5):
            with concurrency("database", occupy=1):
                start = time.time()
                time.sleep(0.005)
                spans.append((start, time.time()))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(spans) == 15
    assert_no_overlap(sorted(spans))


def test_occupy_takes_that_many_slots_of_every_named_limit() -> None:
    make_limit("a", 3)
    make_limit("b", 2)
    with concurrency(["a", "b"], occupy=2):
        with Store(settings.database_path()) as store:
            taken = {limit["name"]: limit["active_slots"] for limit in limits.list_limits(store)}
        assert taken == {"a": 2, "b": 2}
        with pytest.raises(TimeoutError), concurrency("b", timeout_seconds=0.2):
            pass  # b is full: all or nothing, so a's slots are not taken either
        with concurrency("a"):
            pass  # a has one left
    with Store(settings.database_path()) as store:
        assert all(limit["active_slots"] == 0 for limit in limits.list_limits(store))


def test_a_name_without_a_limit_does_not_limit_unless_strict(caplog: pytest.LogCaptureFixture) -> None:
    # Prefect docs: "if the provided names of the concurrency limits don't already exist, then no
    # limiting is enforced and a warning will be logged"; strict=True raises instead.
    with caplog.at_level("WARNING", logger="prefect_like.concurrency"):
        with concurrency("nobody-made-this"):
            pass
        with concurrency("nobody-made-this"):
            pass
    said = [r.getMessage() for r in caplog.records if "nobody-made-this" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("no active concurrency limit named 'nobody-made-this'")
    with concurrency([]):  # no names: nothing to take (Prefect)
        pass
    with pytest.raises(LookupError, match="no active concurrency limit named 'nobody-made-this'"), \
            concurrency("nobody-made-this", strict=True):
        pass


def test_bad_requests_are_refused_in_one_line() -> None:
    make_limit("small", 1)
    with pytest.raises(ValueError, match="cannot take 2 slot.s. of the concurrency limit 'small': it has 1"), \
            concurrency("small", occupy=2):
        pass
    with pytest.raises(ValueError, match="rate_limit needs a limit with a slot decay"):
        rate_limit("small")
    with pytest.raises(ValueError, match="occupy is at least 1"), concurrency("small", occupy=0):
        pass


def test_rate_limit_spaces_calls_by_the_decay() -> None:
    # Prefect docs: a limit of 1 slot decaying at 10/s lets through one call per 0.1 s.
    make_limit("api", 1, decay=10.0)
    times = []
    for _ in range(6):
        rate_limit("api")
        times.append(time.time())
    # Each acquisition needs the previous slot to have decayed: 5 gaps of at least 0.1 s.
    assert times[-1] - times[0] >= 0.5 - 0.02


def test_the_asyncio_variants_wait_without_blocking_the_loop() -> None:
    make_limit("async-db", 1)
    spans: list[tuple[float, float]] = []

    async def one() -> None:
        async with aconcurrency.concurrency("async-db"):
            start = time.time()
            await asyncio.sleep(0.01)
            spans.append((start, time.time()))

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(5)))
        make_limit("async-api", 2, decay=20.0)
        for _ in range(3):
            await aconcurrency.rate_limit("async-api")

    asyncio.run(main())
    assert len(spans) == 5
    assert_no_overlap(sorted(spans))


def test_async_tasks_with_a_limited_tag_take_turns_on_one_loop(tmp_path: Path) -> None:
    make_limit("gpu", 1)
    spans: list[tuple[float, float]] = []

    @task(tags=["gpu"])
    async def infer(i: int) -> int:
        start = time.time()
        await asyncio.sleep(0.01)
        spans.append((start, time.time()))
        return i

    @flow(task_runner="asyncio")
    async def serve() -> int:
        futures = infer.map(range(6))
        return sum(futures.result())

    assert asyncio.run(serve()) == 15
    assert_no_overlap(sorted(spans))


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_creates_inspects_resets_and_deletes_limits() -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, list(args))
        return result

    assert run("concurrency-limit", "ls").output.strip() == "no concurrency limits"
    assert run("concurrency-limit", "create", "gpu", "2").output.strip() == "concurrency limit 'gpu': 2 slot(s)"
    made = run("gcl", "create", "api", "--limit", "5", "--slot-decay-per-second", "1.5")
    assert made.exit_code == 0, made.output
    listed = json.loads(run("concurrency-limit", "ls", "--json").output)
    assert [(x["name"], x["limit"], x["slot_decay_per_second"]) for x in listed] == [("api", 5, 1.5), ("gpu", 2, None)]
    with concurrency("gpu"):
        shown = run("concurrency-limit", "inspect", "gpu")
        assert "taken     1" in shown.output and f":{os.getpid()}:" in shown.output
        assert run("concurrency-limit", "reset", "gpu").exit_code == 0
        assert json.loads(run("concurrency-limit", "inspect", "gpu", "--json").output)["active_slots"] == 0
    assert run("gcl", "disable", "api").exit_code == 0
    assert json.loads(run("gcl", "inspect", "api", "--json").output)["active"] is False
    with concurrency("api", strict=False):  # an inactive limit does not limit
        pass
    assert run("concurrency-limit", "delete", "gpu").output.strip() == "deleted concurrency limit 'gpu'"
    missing = run("concurrency-limit", "inspect", "gpu")
    assert missing.exit_code == 1 and missing.output.strip() == "Error: no concurrency limit named 'gpu'"
    bad = run("concurrency-limit", "create", " spaced", "1")
    assert bad.exit_code == 1 and "no blanks around it" in bad.output
    slashed = run("gcl", "create", "a/b", "--limit", "1")  # Prefect refuses / % & > < in names too
    assert slashed.exit_code == 1 and "none of them / % & > <" in slashed.output
    updated = run("gcl", "update", "api", "--limit", "7", "--enable")
    assert updated.output.strip() == "concurrency limit 'api': 7 slot(s)"
    assert json.loads(run("gcl", "inspect", "api", "--json").output)["slot_decay_per_second"] == 1.5
    negative = run("concurrency-limit", "create", "x", "-1")
    assert negative.exit_code == 2  # click refuses it before anything is written
    with Store(settings.database_path()) as store:
        assert [x["name"] for x in limits.list_limits(store)] == ["api"]
