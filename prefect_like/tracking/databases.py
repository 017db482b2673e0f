"""Which store a URL names, and the two things done to a store as a whole: upgrade and copy.

A tracking server's store is ``PREFECT_LIKE_DATABASE_URL``:

- unset: the SQLite file ``prefect_like.db`` under the server's home (the default);
- ``sqlite:///path/to/file.db`` (``sqlite:////abs/path`` and ``sqlite:///rel/path`` both read as
  the path after ``sqlite:///``; ``~`` is expanded);
- ``postgresql://user:password@host:port/database`` (``postgres://`` and SQLAlchemy's
  ``postgresql+psycopg://`` too; libpq's parameters, such as ``?options=-csearch_path%3Dteam``
  for a schema of its own, pass through).

``upgrade(url)`` brings a store's schema to this version's (``prefect-like server database
upgrade``). ``copy(source, target)`` copies every table of one store into another
(``prefect-like server database copy``), for a team moving from one person's SQLite file to a
shared PostgreSQL:

- Flow runs are matched by id, not by their integer key: the target gives each new flow run its
  own key, and every ``flow_key`` column of the rows copied after them is rewritten to it. So
  several people's files can be copied into one team store.
- A row the target already holds (by its primary key or any unique key) is kept as it is, so a
  copy run again, or cut short and run again, copies only what is missing.
- Tables are copied in chunks of ``CHUNK`` rows, each in one transaction, so memory stays flat
  on a store of millions of task runs. A value of another type than its column (SQLite lets a
  writer store text in a number column) is copied as NULL, as the readers show it; a row that
  would then lack a value its table requires (a state history row whose seq is not a number) is
  left out and counted in ``Copied.dropped``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_like import settings
from prefect_like.errors import TrackingError
from prefect_like.tracking import schema
from prefect_like.tracking.store import Store

CHUNK = 10_000
SQLITE = "sqlite:///"


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")  # type: ignore[union-attr]


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names."""
    return Path(url[len(SQLITE):]).expanduser()


def resolve(url: str | None, home: Path | str | None = None) -> str:
    """``url`` checked, or the default: the SQLite file under ``home`` (or PREFECT_LIKE_HOME).
    ValueError, in one line, for a URL that names neither backend."""
    if url is None:
        base = Path(home).expanduser() if home is not None else settings.home()
        return SQLITE + str(base / "prefect_like.db")
    url = url.strip()
    if is_postgres(url):
        return url
    if url.startswith(SQLITE) and len(url) > len(SQLITE):
        return url
    raise ValueError(
        f"{describe(url)!r} is not a database URL prefect-like knows; "
        "use postgresql://user:password@host:5432/database or sqlite:///path/to/file.db"
    )


def describe(url: str) -> str:
    """The URL with its password hidden, for messages."""
    from prefect_like.tracking.postgres import shown

    return shown(url)


def open_store(url: str, *, migrate: bool = True) -> Store:
    """The store ``url`` names (see ``resolve``); a PostgreSQL one is upgraded on opening
    unless ``migrate`` is False (then an older schema is refused, naming the upgrade command).
    """
    if is_postgres(url):
        from prefect_like.tracking.postgres import PgStore

        return PgStore(url, migrate=migrate)
    return Store(sqlite_path(url))


def version(url: str) -> int:
    """The schema version of the store at ``url`` (0: none there yet), reading only."""
    if is_postgres(url):
        from prefect_like.tracking.postgres import Connection, inspect

        pg = Connection(url)
        try:
            return inspect(pg, describe(url))
        finally:
            pg.close()
    path = sqlite_path(url)
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return schema.inspect(conn, path)
    finally:
        conn.close()


def upgrade(url: str) -> tuple[int, int]:
    """Bring the store at ``url`` to this version's schema; (version before, version after)."""
    try:
        before = version(url)
    except Exception as exc:
        raise _one_line(url, exc) from None
    open_store(url).close()  # opening migrates, in one transaction, under the write lock
    return before, schema.SCHEMA_VERSION


def _one_line(url: str, exc: Exception) -> TrackingError:
    if isinstance(exc, TrackingError):
        return exc
    return TrackingError(f"cannot open the tracking database {describe(url)}: {str(exc).strip().splitlines()[0]}")


@dataclass
class Copied:
    """What ``copy`` did, table by table: rows read from the source, rows new in the target."""

    read: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def copy(source_url: str, target_url: str, progress: Callable[[str, int], None] | None = None) -> Copied:
    """Copy every table of the store at ``source_url`` into the PostgreSQL store at
    ``target_url`` (see the module). ``progress(table, rows so far)`` is called per chunk."""
    if not is_postgres(target_url):
        raise ValueError(
            f"--to {describe(target_url)}: the target of a copy is a PostgreSQL database "
            "(postgresql://...)"
        )
    if source_url == target_url:
        raise ValueError("--from and --to name the same database")
    source = open_store(source_url)
    try:
        from prefect_like.tracking.postgres import PgStore

        target = open_store(target_url)
        assert isinstance(target, PgStore)
        try:
            return _copy(source, target, progress or (lambda table, n: None))
        finally:
            target.close()
    finally:
        source.close()


def _tables(store: Store) -> list[str]:
    from prefect_like.tracking.postgres import PgStore

    if isinstance(store, PgStore):
        rows = store._all(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'"
        )
    else:
        rows = store._all("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    names = {name for (name,) in rows} - {"prefect_like_schema"}
    # flow_runs first: every other table's flow_key is rewritten to the target's keys.
    return sorted(names, key=lambda name: (name != "flow_runs", name))


def _chunks(store: Store, table: str) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """The table's rows, CHUNK at a time, in a stable order (keyset paging on rowid)."""
    from prefect_like.tracking.postgres import PgStore

    columns = store.pg.columns(table) if isinstance(store, PgStore) else [
        row[1] for row in store._all(f"PRAGMA table_info({table})")
    ]
    has_rowid = bool(store._all(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? AND column_name = 'rowid'", (table,),
    )) if isinstance(store, PgStore) else _sqlite_has_rowid(store, table)
    listed = ", ".join(columns)
    if not has_rowid:  # WITHOUT ROWID: one read (such tables here are small: history, metrics)
        yield columns, [tuple(r) for r in store._all(f"SELECT {listed} FROM {table}")]
        return
    after = -(2**63)
    while True:
        rows = store._all(
            f"SELECT {listed}, rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, CHUNK)
        )
        if not rows:
            return
        yield columns, [tuple(r[:-1]) for r in rows]
        if len(rows) < CHUNK:
            return
        after = rows[-1][-1]


def _sqlite_has_rowid(store: Store, table: str) -> bool:
    try:
        store._all(f"SELECT rowid FROM {table} LIMIT 0")
    except TrackingError:
        return False
    return True


def _column_types(target: Any, table: str) -> tuple[dict[str, str], set[str]]:
    """The target table's column types, and the columns that may not be NULL."""
    rows = target._all(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ?", (table,),
    )
    return {name: kind for name, kind, _ in rows}, {name for name, _, nullable in rows if nullable == "NO"}


def _fit(value: Any, kind: str) -> Any:
    """A source value as the target column's type holds it; None if it cannot (see the module)."""
    if value is None:
        return None
    if kind == "bigint":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else None
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
        return None
    if kind in ("double precision", "real", "numeric"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            return value if math.isfinite(value) else None
        return None
    if kind == "bytea":
        return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode(errors="replace")
    return str(value).replace("\x00", "\ufffd") if not isinstance(value, str) or "\x00" in value else value


def _copy(source: Store, target: Any, progress: Callable[[str, int], None]) -> Copied:
    done = Copied()
    target_tables = set(_tables(target))
    keys: dict[int, int] = {}  # the source's flow run key -> the target's
    for table in _tables(source):
        if table not in target_tables:
            raise TrackingError(
                f"the target has no table {table}: the source was made by a newer prefect-like; "
                "upgrade prefect-like, then run `prefect-like server database upgrade` on the target"
            )
        types, required = _column_types(target, table)
        unique = bool(target._all(
            "SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid "
            "WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace AND i.indisunique",
            (table,),
        ))
        if not unique and target._one(f"SELECT EXISTS (SELECT 1 FROM {table})")[0]:
            done.skipped.append(table)  # no key to tell a row already copied: copied once only
            continue
        read = added = 0
        for columns, rows in _chunks(source, table):
            if table == "flow_runs":
                at = columns.index("key")
                source_keys = [(row[at], row[columns.index("id")]) for row in rows]
                names = [c for c in columns if c != "key"]
                rows = [tuple(v for i, v in enumerate(row) if i != at) for row in rows]
            else:
                names = list(columns)
            if "flow_key" in names:
                at = names.index("flow_key")
                rows = [(*row[:at], keys.get(row[at]), *row[at + 1:]) for row in rows]
            fitted = [tuple(_fit(v, types.get(n, "text")) for v, n in zip(row, names, strict=True)) for row in rows]
            needed = [i for i, n in enumerate(names) if n in required]
            kept = [row for row in fitted if all(row[i] is not None for i in needed)]
            if len(kept) < len(fitted):
                done.dropped[table] = done.dropped.get(table, 0) + len(fitted) - len(kept)
            added += _insert(target, table, names, kept)
            if table == "flow_runs":
                found = dict(target._all(
                    "SELECT id, key FROM flow_runs WHERE id IN (SELECT value FROM json_each(?))",
                    (_json([i for _, i in source_keys]),),
                ))
                keys.update({k: found[i] for k, i in source_keys if i in found})
            read += len(rows)
            progress(table, read)
        done.read[table] = read
        done.added[table] = added
    return done


def _json(values: list[Any]) -> str:
    import orjson

    return orjson.dumps(values).decode()


def _insert(target: Any, table: str, names: list[str], rows: list[tuple[Any, ...]]) -> int:
    """Insert the rows the target lacks, in one transaction; how many were new."""
    if not rows:
        return 0

    def transaction() -> int:
        conn = target.pg
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = conn.executemany(
                f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            if not conn.broken and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return added

    return int(target._retry(transaction))
