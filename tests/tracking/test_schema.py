"""The store's schema version and migrations, and the one line a store prefect-like cannot use gets.

The old file is real: ``data/schema_v1.sql`` is a store made by prefect-like at schema version 1
(one finished flow run, one whose process was SIGKILLed), dumped as SQL. Bad stores are made as
they happen: random bytes, a file cut in half, another program's database, a file from a newer
version, a read-only file or directory (as root, the processes that meet it run without
CAP_DAC_OVERRIDE, so the kernel refuses the write as it would for anyone else).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prefect_like.errors import TrackingError
from prefect_like.tracking import schema
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store

ROOT = Path(__file__).resolve().parents[2]
V1_DUMP = Path(__file__).parent / "data" / "schema_v1.sql"
FINISHED, KILLED = "f11c6c8763ed4d2dbd7d8bdbbdea4201", "590380d6e5a849e9b8cb5e40de6cb303"


def make_v1(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(V1_DUMP.read_text())
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return path


def layout(path: Path) -> dict[str, Any]:
    """Every table's columns and every index, as SQLite describes them."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
            "columns": {
                t: [r[1:] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables
            },
            "indexes": sorted(
                r
                for r in conn.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            ),
        }
    finally:
        conn.close()


# -- versions and migrations ---------------------------------------------------------------------


def test_every_version_has_its_step() -> None:
    assert sorted(schema.STEPS) == list(range(1, schema.SCHEMA_VERSION + 1))


def test_a_store_made_by_version_1_is_migrated_at_open_and_keeps_every_row(tmp_path: Path) -> None:
    path = make_v1(tmp_path / "old.db")
    with Store(path) as store:
        finished = store.get_flow_run(FINISHED)
        assert finished["state"] == "COMPLETED" and finished["task_runs"] == {
            "Completed": 4,
            "Failed": 1,
        }
        assert store.task_run_counts(FINISHED) == {"Completed": 4, "Failed": 1}
        assert len(store.logs(flow_run_id=FINISHED)) == 4
        assert store.task_run_counts(KILLED) == {"Completed": 2, "Running": 4}
        # Its run has no timeout of its own (version 1 sent none): the reader's setting judges it.
        assert store.mark_crashed(default_timeout=60) == 1
        killed = store.get_flow_run(KILLED)
        assert killed["state"] == "CRASHED" and "its timeout is 60 s" in killed["message"]
        assert killed["end_time"] == killed["heartbeat"]
        assert store.task_run_counts(KILLED) == {"Completed": 2, "Crashed": 4}
        # And it takes new runs, with their own timeouts.
        store.write(
            [
                Event(
                    "flow",
                    "new-run",
                    0,
                    None,
                    1.8e9,
                    "RUNNING",
                    "Running",
                    None,
                    {"name": "n", "flow_name": "f", "heartbeat_timeout": 30.0},
                )
            ]
        )
        assert store.count_flow_runs() == 3
    fresh = tmp_path / "new.db"
    Store(fresh).close()
    assert layout(path) == layout(fresh)
    assert layout(path)["version"] == schema.SCHEMA_VERSION


def test_a_migration_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = make_v1(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE task_runs ADD COLUMN judged TEXT")  # step 2's last statement fails
    conn.commit()
    conn.close()
    before = layout(path)
    with pytest.raises(TrackingError, match="duplicate column name: judged"):
        Store(path)
    assert layout(path) == before  # step 2's first statements were rolled back with it
    assert before["version"] == 1


MIGRATE = textwrap.dedent(
    """
    import sys
    from prefect_like.tracking.store import Store
    with Store(sys.argv[1]) as store:
        print(store.count_flow_runs())
    """
)


def test_two_processes_opening_an_old_store_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = make_v1(tmp_path / "old.db")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, results
    assert [out for out, _ in results] == ["2\n"] * 4
    assert layout(path)["version"] == schema.SCHEMA_VERSION



def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    # A flow and the workers of a cluster on one machine open the default store together; one
    # of them builds it while the others look. Seen on CI: a process read the version before
    # the builder's commit and the tables after it, and refused the file as "not ours".
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE, str(path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        results = [p.communicate(timeout=60) for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, results
        assert [out for out, _ in results] == ["0\n"] * 6
        assert layout(path)["version"] == schema.SCHEMA_VERSION

# -- stores prefect-like cannot use: one line, nothing written ------------------------------------


def _store_with_a_run(path: Path) -> None:
    with Store(path) as store:
        store.write(
            [
                Event(
                    "flow",
                    "kept-run",
                    0,
                    None,
                    1.8e9,
                    "RUNNING",
                    "Running",
                    None,
                    {"name": "kept", "flow_name": "f"},
                )
            ]
        )
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(16384))


def cut_in_half(path: Path) -> None:
    with Store(path) as store:
        store.write(
            [
                Event(
                    "task",
                    f"{i:032x}",
                    2,
                    "a-run",
                    1.8e9,
                    "COMPLETED",
                    "Completed",
                    "x" * 300,
                    {"task_name": "t", "map_index": i},
                )
                for i in range(3000)
            ]
        )
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def another_programs(path: Path) -> None:
    # Prefect's own tables, in a file that never had a prefect-like schema version.
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE flow_run (id TEXT); CREATE TABLE task_run (id TEXT);")
    conn.close()


def unversioned_flow_runs(path: Path) -> None:
    # What used to fail with "table flow_runs already exists".
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE flow_runs (id TEXT, owner TEXT); INSERT INTO flow_runs VALUES ('a', 'b');"
    )
    conn.close()


def from_a_newer_version(path: Path) -> None:
    _store_with_a_run(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()


BAD_STORES: dict[str, tuple[Callable[[Path], None], str]] = {
    "random bytes": (random_bytes, "not a prefect-like database (file is not a database): {path}"),
    "cut in half": (
        cut_in_half,
        "the tracking database {path} is damaged (database disk image is malformed)",
    ),
    "another program's": (
        another_programs,
        "not a prefect-like database (it holds tables prefect-like did not make: flow_run, task_run): {path}",
    ),
    "flow_runs, no version": (
        unversioned_flow_runs,
        "not a prefect-like database (it holds tables prefect-like did not make: flow_runs): {path}",
    ),
    "newer": (
        from_a_newer_version,
        f"{{path}} was made by a newer prefect-like: schema {schema.SCHEMA_VERSION + 1}, this one reads up to "
        f"{schema.SCHEMA_VERSION}; upgrade prefect-like",
    ),
}

FLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prefect_like import flow, task

    @task
    def trial(i: int) -> int:
        Path(sys.argv[1]).touch()  # proof that work ran
        return i

    @flow(name="blocked")
    def blocked():
        return trial.map(range(3)).result()

    if __name__ == "__main__":
        blocked()
    """
)


def _drop_root_override() -> None:
    """In the child, before exec: root without CAP_DAC_OVERRIDE obeys file permissions."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _run(
    args: list[str], home: Path, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LIKE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_drop_root_override if unprivileged else None,
    )


def _snapshot(home: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.iterdir())
        if p.is_file()
    }


def _assert_refused_in_one_line(
    home: Path, tmp_path: Path, expected: str, unprivileged: bool = False
) -> None:
    """What a user meets: the CLI's one ``Error:`` line, a flow script that stops before any work
    with that same line and no traceback, and a store left exactly as it was."""
    before = _snapshot(home)
    listed = _run(["-m", "prefect_like", "runs", "ls"], home, unprivileged)
    assert listed.returncode == 1 and "Traceback" not in listed.stderr, listed.stderr
    (line,) = listed.stderr.splitlines()
    assert line.startswith(f"Error: {expected}")
    script, marker = tmp_path / "blocked.py", tmp_path / "ran"
    script.write_text(FLOW)
    ran = _run([str(script), str(marker)], home, unprivileged)
    assert ran.returncode == 1 and not marker.exists()
    assert "Traceback" not in ran.stderr, ran.stderr  # a script says it in one line too
    (line,) = ran.stderr.splitlines()
    assert line.startswith(f"Error: {expected}")
    cli_run = _run(
        ["-m", "prefect_like", "run", f"{script}:blocked", "--no-progress"], home, unprivileged
    )
    assert cli_run.returncode == 1 and "Traceback" not in cli_run.stderr and not marker.exists()
    assert expected in cli_run.stderr
    assert _snapshot(home) == before


@pytest.mark.parametrize("case", list(BAD_STORES))
def test_a_store_that_is_not_ours_is_refused_in_one_line_and_left_as_it_was(
    case: str, prefect_like_home: Path, tmp_path: Path
) -> None:
    make, message = BAD_STORES[case]
    path = prefect_like_home / "prefect_like.db"
    make(path)
    expected = message.format(path=path)
    with pytest.raises(TrackingError) as refused:
        Store(path)
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)
    _assert_refused_in_one_line(prefect_like_home, tmp_path, expected)


def _can_drop_root_override() -> bool:
    done = subprocess.run(
        [sys.executable, "-c", "pass"], preexec_fn=_drop_root_override, capture_output=True
    )
    return done.returncode == 0


needs_unprivileged = pytest.mark.skipif(
    not _can_drop_root_override(), reason="cannot drop CAP_DAC_OVERRIDE here"
)


@needs_unprivileged
def test_a_read_only_store_is_refused_in_one_line_and_keeps_its_runs(
    prefect_like_home: Path, tmp_path: Path
) -> None:
    path = prefect_like_home / "prefect_like.db"
    _store_with_a_run(path)
    path.chmod(0o444)
    try:
        _assert_refused_in_one_line(
            prefect_like_home,
            tmp_path,
            f"cannot write the tracking database {path}: the file is read-only",
            unprivileged=True,
        )
    finally:
        path.chmod(0o644)
    with Store(path) as store:
        assert [r["id"] for r in store.list_flow_runs()] == ["kept-run"]


@needs_unprivileged
def test_a_read_only_directory_is_refused_in_one_line(
    prefect_like_home: Path, tmp_path: Path
) -> None:
    prefect_like_home.chmod(0o555)
    try:
        path = prefect_like_home / "prefect_like.db"
        _assert_refused_in_one_line(
            prefect_like_home,
            tmp_path,
            f"cannot write the tracking database {path}: the directory {prefect_like_home} is read-only",
            unprivileged=True,
        )
        assert not path.exists()
    finally:
        prefect_like_home.chmod(0o755)
