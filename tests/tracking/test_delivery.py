"""Tracking that cannot write says so, keeps what it could not write, and never holds the flow.

Every fault here is real: a flow process whose files may not grow past a size
(``RLIMIT_FSIZE``, set in the child before it starts), a spill directory that cannot be made, a
socket on 127.0.0.1 that accepts connections and never answers, a tracking server that starts
only while the flow process is exiting. Counts are exact: afterwards the store holds every task
run once, or the process said exactly how many final states it lost.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_like import flow, task
from prefect_like.tracking.events import emit, log_event
from prefect_like.tracking.recorder import get_recorder, shutdown_recorder
from prefect_like.tracking.store import Store
from tests.polling import wait_until
from tests.server._procs import ROOT, ServerProcess, free_port

N = 20_000
FILE_LIMIT = 2_000_000  # bytes any one file of the flow process may hold: the store fills early
FLUSH_TIMEOUT = 2.0

SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys, time
    from prefect_like import flow, task

    @task
    def square(i: int) -> int:
        return i * i

    @flow(name="sweep", task_runner="thread")
    def sweep(n: int) -> int:
        return len(square.map(range(n)).result())

    started = time.monotonic()
    print("RESULT", sweep(int(sys.argv[1])), flush=True)
    print("RETURNED AFTER", time.monotonic() - started, flush=True)
    if len(sys.argv) > 2:  # the exit may wait longer than the flow's end did
        os.environ["PREFECT_LIKE_FLUSH_TIMEOUT"] = sys.argv[2]
        atexit.register(print, "EXITING", flush=True)  # runs before the Recorder's: registered later
    """
)


def _env(home: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LIKE_HOME": str(home),
        "PREFECT_LIKE_FLUSH_TIMEOUT": str(FLUSH_TIMEOUT),
    }
    env.pop("PREFECT_LIKE_API_URL", None)
    env.update({f"PREFECT_LIKE_{name}": value for name, value in settings.items()})
    return env


def _run_flow(
    tmp_path: Path, env: dict[str, str], *, file_limit: int | None, source: str = SCRIPT
) -> subprocess.CompletedProcess[str]:
    """The sweep in a process of its own, whose files may not grow past ``file_limit`` bytes."""
    script = tmp_path / "sweep.py"
    script.write_text(source)

    # In the child, before it runs. Python ignores SIGXFSZ, so a write past the limit fails (EFBIG).
    def limit_files() -> None:
        assert file_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, str(script), str(N)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_files if file_limit else None,
    )


def _flush(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``prefect-like runs flush`` in a process of its own, with no file size limit."""
    return subprocess.run(
        [sys.executable, "-m", "prefect_like", "runs", "flush"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored(db: Path) -> tuple[int, int, dict[str, int], list[tuple[str | None, Any]]]:
    """(task run rows, distinct ids, rows by state name, flow runs' (state, task run counts))."""
    with sqlite3.connect(db) as conn:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM task_runs"
        ).fetchone()
        states = dict(
            conn.execute(
                "SELECT state_name, COUNT(*) FROM task_runs GROUP BY state_name"
            ).fetchall()
        )
        flows = conn.execute(
            "SELECT state_name, task_runs FROM flow_runs WHERE seq >= 0"
        ).fetchall()
    return (
        rows,
        distinct,
        states,
        [(state, json.loads(counts or "null")) for state, counts in flows],
    )


def _assert_the_record_claims_only_what_is_stored(db: Path) -> None:
    rows, distinct, states, flows = _stored(db)
    assert rows == distinct
    for state_name, task_runs in flows:
        if task_runs is not None:  # a final record: its counts must be what the store holds
            assert task_runs == states, (state_name, task_runs, states)


def _spill_files(home: Path) -> list[Path]:
    spill = home / "spill"
    return sorted(spill.iterdir()) if spill.is_dir() else []


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_a_full_store_is_said_at_once_kept_in_spill_files_and_flushed_exactly_once(
    tmp_path: Path, policy: str
) -> None:
    home = tmp_path / "flow-home"
    env = _env(home, ON_TRACKING_ERROR=policy, RECORDER_MAX_BATCH="5000")
    done = _run_flow(tmp_path, env, file_limit=FILE_LIMIT)
    err = done.stderr

    # At once, the cause: the file size limit, not a slow tracker.
    assert (
        "tracking cannot write to" in err and "file size limit" in err and "RLIMIT_FSIZE" in err
    ), err[-3000:]
    assert "slow" not in err
    # At the end: how many events, where they are, and how to deliver them.
    end = re.search(
        r"Flow run '[^']+': ([\d,]+) events are not stored in .*?; ([\d,]+) are kept in (/\S+?\.msgpack)",
        err,
    )
    assert end is not None, err[-3000:]
    assert end.group(1) == end.group(2) and Path(end.group(3)).exists()
    assert "`prefect-like runs flush`" in err
    if policy == "continue":  # every event is kept: the work's result stands
        assert done.returncode == 0 and f"RESULT {N}" in done.stdout, err[-3000:]
    else:  # stop: a run whose events are not stored fails, and so does the script
        assert done.returncode == 1 and "RESULT" not in done.stdout
        assert "TrackingError: PREFECT_LIKE_ON_TRACKING_ERROR=stop" in err, err[-3000:]
    db = home / "prefect_like.db"
    stored_before = _stored(db)[0]
    assert stored_before < N  # the fault was real: the store filled up mid-sweep
    _assert_the_record_claims_only_what_is_stored(db)
    assert len(_spill_files(home)) > 1  # a file full at the limit gives way to the next one

    flushed = _flush(_env(home))  # the limit is gone: "space is back"
    assert flushed.returncode == 0, flushed.stderr[-3000:]
    assert re.search(r"sent [\d,]+ events from \d+ spill file", flushed.stdout), flushed.stdout
    rows, distinct, states, flows = _stored(db)
    assert rows == distinct == N and states == {"Completed": N}  # lost 0, duplicated 0
    expected = (
        ("Completed", {"Completed": N}) if policy == "continue" else ("Failed", {"Completed": N})
    )
    assert flows == [expected]
    assert _spill_files(home) == []
    if policy == "stop":
        with Store(db) as store:
            (run,) = store.list_flow_runs()
            assert "ON_TRACKING_ERROR=stop" in run["message"]


def test_stop_ends_the_work_as_soon_as_the_store_fills_and_records_it_all(tmp_path: Path) -> None:
    home = tmp_path / "flow-home"
    slow = SCRIPT.replace("return i * i", "time.sleep(0.002)\n    return i * i")  # a 7 s sweep
    done = _run_flow(tmp_path, _env(home, ON_TRACKING_ERROR="stop", RECORDER_MAX_BATCH="5000"),
                     file_limit=FILE_LIMIT, source=slow)

    assert done.returncode == 1 and "RESULT" not in done.stdout, done.stderr[-3000:]
    assert "TrackingError: the flow process stopped because its tracker cannot write" in done.stderr
    assert "file size limit" in done.stderr
    flushed = _flush(_env(home))  # space is back: the spill files complete the record
    assert flushed.returncode == 0, flushed.stderr[-3000:]
    rows, distinct, states, flows = _stored(home / "prefect_like.db")
    assert rows == distinct and set(states) == {"Completed", "Cancelled"}, states
    assert states["Completed"] < N  # the work stopped: the rest of the map never ran
    assert flows == [("Failed", states)]  # and the flow's record counts what the store holds
    assert _spill_files(home) == []


def test_events_that_neither_the_store_nor_the_spill_can_take_are_counted_lost_and_fail_the_flow(
    tmp_path: Path,
) -> None:
    home = tmp_path / "flow-home"
    home.mkdir()
    (home / "spill").write_text("not a directory")  # the spill cannot be made: a real OS error
    # A store that fills at once, and no spill: every event is in memory until the process exits.
    # A tenth of FILE_LIMIT once was room for the empty schema alone; it now takes ~240 KB.
    done = _run_flow(tmp_path, _env(home, RECORDER_MAX_BATCH="5000"), file_limit=FILE_LIMIT // 5)
    err = done.stderr

    assert done.returncode == 1 and "RESULT" not in done.stdout, err[-3000:]
    assert "TrackingError: tracking could not keep every event of this flow run" in err, err[-3000:]
    assert "Finished flow run" in err and "in state Failed" in err
    # The last word, at exit: exactly how many are lost, and both causes.
    lost = re.findall(
        r"([\d,]+) tracking events were lost \(the final states of ([\d,]+) task runs among them\): "
        r"the tracker failed \((.+?)\) and the spill could not be written \((.+?)\)",
        err,
    )
    assert lost, err[-3000:]
    events, finals, tracker, spill = lost[-1]
    assert "file size limit" in tracker and "FileExistsError" in spill
    rows, distinct, states, flows = _stored(home / "prefect_like.db")
    completed = states.get("Completed", 0)
    # Every final state is stored, or counted lost.
    assert completed + int(finals.replace(",", "")) == N
    assert int(events.replace(",", "")) >= N - completed
    assert all(state != "Completed" for state, _ in flows)  # the record claims no success


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        listener.close()
        for conn in held:
            conn.close()


def _log_lines(count: int, start: int = 0) -> None:
    for seq in range(start, start + count):
        emit(log_event("f" * 32, seq, None, time.time(), 20, "INFO", f"line {seq}", "test"))


def test_a_server_that_never_answers_holds_only_the_sender_never_the_recorder(
    hung_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LIKE_API_URL", hung_server)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.01")
    recorder = get_recorder()
    try:
        for start in range(0, 3000, 1000):
            _log_lines(1000, start)
            # Drained and counted while the first write still waits for an answer.
            assert recorder.flush(timeout=5, delivered=False)
        assert not recorder.flush(timeout=0.5)
        assert recorder.failure is None  # no error yet: the request is still waiting
        assert "3,000 events are not stored" in recorder.describe_backlog()
        assert "a write has had no answer for" in recorder.describe_backlog()
    finally:
        shutdown_recorder(timeout=0.5)


def test_a_tracker_that_refuses_is_known_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LIKE_API_URL", f"http://127.0.0.1:{free_port()}/api")
    recorder = get_recorder()
    try:
        _log_lines(10)
        cause = wait_until(lambda: recorder.failure, timeout=10, what="the failure to be known")
        assert "cannot reach the tracking server" in cause and "Connection refused" in cause
    finally:
        shutdown_recorder(timeout=0.5)


def test_a_server_that_never_answers_holds_the_flow_only_for_its_flush_timeout(
    tmp_path: Path, hung_server: str
) -> None:
    home = tmp_path / "flow-home"
    # The request timeout stays at its default (60 s): only the flush timeout bounds the flow.
    started = time.monotonic()
    done = _run_flow(tmp_path, _env(home, API_URL=hung_server), file_limit=None)
    took = time.monotonic() - started
    err = done.stderr

    assert done.returncode == 0 and f"RESULT {N}" in done.stdout, err[-3000:]
    returned = float(done.stdout.split("RETURNED AFTER")[1])
    assert returned < FLUSH_TIMEOUT + 10, f"the flow call took {returned:.1f} s"
    assert took < 2 * FLUSH_TIMEOUT + 20, f"the process took {took:.1f} s to exit"
    end = re.search(
        r"([\d,]+) events are not stored in \S+ \(a write has had no answer for \d+ s\); "
        r"([\d,]+) are kept in (/\S+?\.msgpack)",
        err,
    )
    assert end is not None, err[-3000:]
    assert _spill_files(home) == [Path(end.group(3))]

    server = ServerProcess(tmp_path / "server").start()
    try:
        flushed = _flush(_env(home, API_URL=server.url))
        assert flushed.returncode == 0, flushed.stderr[-3000:]
        rows, distinct, states, flows = _stored(server.database)
    finally:
        server.stop()
    assert rows == distinct == N and states == {"Completed": N}
    assert flows == [("Completed", {"Completed": N})]
    assert _spill_files(home) == []


def test_a_server_started_while_the_flow_process_exits_receives_every_event(tmp_path: Path) -> None:
    home = tmp_path / "flow-home"
    server = ServerProcess(tmp_path / "server", port=free_port())  # not started yet: refused
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(N), "60"],
            env=_env(home, API_URL=server.url),
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # bounded by the test's timeout; the process prints and exits
            lines.append(line)
            if line.startswith("EXITING"):
                server.start()  # while the flow process runs its exit handlers
                break
        assert proc.wait(60) == 0, stderr.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    try:
        rows, distinct, states, flows = _stored(server.database)
    finally:
        server.stop()
    err = stderr.read_text()
    assert f"RESULT {N}\n" in lines, err[-3000:]
    assert "cannot schedule new futures" not in err and "Traceback" not in err, err[-3000:]
    assert rows == distinct == N and states == {"Completed": N}
    assert flows == [("Completed", {"Completed": N})]
    # What the flow's end spilled was delivered at exit, then removed.
    assert _spill_files(home) == []


def test_a_bad_on_tracking_error_is_one_clear_error_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, prefect_like_home: Path
) -> None:
    ran: list[int] = []

    @task
    def work(i: int) -> int:
        ran.append(i)
        return i

    @flow
    def sweep() -> list[int]:
        return work.map(range(3)).result()

    monkeypatch.setenv("PREFECT_LIKE_ON_TRACKING_ERROR", "maybe")
    with pytest.raises(
        ValueError, match="PREFECT_LIKE_ON_TRACKING_ERROR must be 'continue' or 'stop', got 'maybe'"
    ):
        sweep()
    assert ran == []
    monkeypatch.delenv("PREFECT_LIKE_ON_TRACKING_ERROR")
    assert sweep() == [0, 1, 2]
    with Store(prefect_like_home / "prefect_like.db") as store:
        assert [run["state"] for run in store.list_flow_runs()] == ["COMPLETED"]


def test_a_tracker_slow_but_storing_is_waited_for_past_the_flush_timeout(tmp_path: Path) -> None:
    # The flush timeout is for a tracker that stores nothing; one that keeps storing a backlog
    # (a million-run sweep's last events, a busy server) is waited for, and nothing is spilled.
    server = ServerProcess(tmp_path / "server").start()
    upstream = httpx.Client(base_url=server.url.removesuffix("/api"), timeout=60)

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            # Each write succeeds within the timeout, with room left for the server's own work
            # on a loaded machine: a write held for the whole timeout would be a silent tracker.
            time.sleep(FLUSH_TIMEOUT / 4)
            answer = upstream.post(self.path, content=body, headers={"Content-Type": self.headers["Content-Type"]})
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args: Any) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    home = tmp_path / "flow-home"
    try:
        # Batches of 5,000 events: about 12 writes of half a second or more each, three times
        # the timeout at least.
        env = _env(home, API_URL=f"http://127.0.0.1:{proxy.server_address[1]}/api", RECORDER_MAX_BATCH="5000")
        done = _run_flow(tmp_path, env, file_limit=None)
        rows, distinct, states, flows = _stored(server.database)
    finally:
        proxy.shutdown()
        upstream.close()
        server.stop()
    assert done.returncode == 0 and f"RESULT {N}" in done.stdout, done.stderr[-3000:]
    assert "not stored" not in done.stderr and _spill_files(home) == []
    assert rows == distinct == N and states == {"Completed": N}
    assert flows == [("Completed", {"Completed": N})]


def test_the_memory_bound_counts_each_report_a_metric_event_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A metric event holds up to 500 reports of a task run: while a slow tracker keeps it
    # waiting in memory, it weighs a third of an event per report (what a report takes in
    # memory, against a task run's final event), so the bound holds for searches too.
    from prefect_like.tracking.events import Event
    from prefect_like.tracking.recorder import _Sender

    monkeypatch.setenv("PREFECT_LIKE_HOME", str(tmp_path))
    release = threading.Event()
    written: list[Any] = []

    class SlowTracker:
        def write(self, events: Any) -> None:
            release.wait(30)
            written.extend(events)

        def close(self) -> None:
            pass

    sender = _Sender(SlowTracker(), "a slow tracker", max_held=100, merge=10_000)
    first = Event("task", "r0", 0, "f0", 1.0, "PENDING", "Pending", None, {"task_name": "train"})
    sender.put([first])
    wait_until(lambda: sender._flight is not None, what="the first batch in flight")
    points = [[i + 1, 1.0, i, {"loss": 1 / (i + 1)}] for i in range(450)]
    reports = Event("metric", "r0", 1, "f0", 1.0, None, None, None, {"points": points})
    sender.put([reports])
    assert sender._spill.events == 1  # 450 reports weigh 150 events, past a bound of 100: on disk
    release.set()
    sender.stop(30)
    assert [e[0] for e in written] == ["task", "metric"]  # the spilled one read back, in order
    assert len(written[1][8]["points"]) == 450
