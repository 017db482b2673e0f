"""The PostgreSQL tracking store: the SQLite store's own code, run on a PostgreSQL database.

A team's tracking server keeps its runs in PostgreSQL (``PREFECT_LIKE_DATABASE_URL=
postgresql://...``), so several server processes, on one host or many, share one store.
``PgStore`` is ``Store`` with another connection under it: the same ``write`` (collapse, the
upserts, the verdicts from silence, ``_close_ended``), the same ``mark_crashed`` and the same
reads (``queries.Reads``), their SQL translated by ``dialect``. So the rules for which event
wins are written once, and what another part adds to the store runs here too.

What differs, all of it in ``Connection``:

1. **One writer at a time, across every process.** SQLite's ``BEGIN IMMEDIATE`` (the store's
   write lock) is ``BEGIN`` plus a transaction-scoped advisory lock on the store's schema, so
   a write, a heartbeat check (``mark_crashed``) and a migration are serialised across all the
   server processes exactly as SQLite serialises them in one file: the counts ``_close_ended``
   makes, and each verdict checked again under the lock, stay right with any number of
   processes. Reads take no lock (each statement sees a committed snapshot).
2. **Bulk rows go by COPY.** ``executemany`` of an ``INSERT ... VALUES`` of more than a few rows
   copies them into a temporary staging table and runs the statement once as ``INSERT ...
   SELECT``, with its own ``ON CONFLICT`` clause: one round trip and one upsert per table per
   batch instead of one per row. Rows with the same conflict key (a batch that names a run
   twice) go one by one, as SQLite would apply them.
3. **Text PostgreSQL cannot hold.** A NUL character (SQLite stores it, PostgreSQL refuses it)
   becomes U+FFFD; only a batch that holds one pays for the scrub.

Errors: a lost connection (PostgreSQL restarted, a network blip) is reconnected and the
transaction run again until ``retry_for`` runs out, then one ``TrackingError`` line; any other
database error is one ``TrackingError`` line naming the database (its password hidden).

Schema: the numbered steps of ``schema.STEPS``, translated by ``dialect.ddl``, in one
transaction under the same lock; the version is the one row of ``prefect_like_schema``.
``upgrade`` applies what is missing; opening a newer store is refused in one line.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prefect_like.errors import MissingEngineError, TrackingError
from prefect_like.tracking import dialect, schema
from prefect_like.tracking.store import Store

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

VERSION_TABLE = "prefect_like_schema"
COPY_THRESHOLD = 16  # rows: below it, a pipelined executemany is as quick as a staging table
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('prefect_like:' || current_schema()))"
_INSERT = re.compile(
    r"^\s*(INSERT\s+(?:OR\s+IGNORE\s+)?INTO)\s+(\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([^()]*)\)(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_POSITIONAL = re.compile(r"^(\s*INSERT\s+(?:OR\s+IGNORE\s+)?INTO\s+(\w+))\s+(VALUES|SELECT)\b", re.IGNORECASE)
_CONFLICT_TARGET = re.compile(r"ON\s+CONFLICT\s*\(([^)]*)\)\s*DO\s+UPDATE", re.IGNORECASE)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingEngineError("the PostgreSQL tracking store", "postgres") from exc
    return psycopg


def shown(url: str) -> str:
    """A database URL fit for messages and logs: its password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def conninfo(url: str) -> str:
    """The libpq URL for ``url``: SQLAlchemy-style ``postgresql+psycopg://`` is accepted too."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url.strip())


def _scrub(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _scrub_rows(rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    return [tuple(_scrub(v) for v in row) for row in rows]


class Connection:
    """What the store asks of an ``sqlite3.Connection``, on a psycopg connection: ``execute``
    (returning a cursor), ``executemany``, ``in_transaction`` and ``close``. See the module."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scrub = False
        self.row_factory: Any = None  # psycopg's; kept across reconnections
        self._staged: set[str] = set()
        self._columns: dict[str, list[str]] = {}
        self._pg: psycopg.Connection[Any] = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = _psycopg()
        conn = psycopg.connect(conninfo(self.url), autocommit=True, connect_timeout=10)
        if self.row_factory is not None:
            conn.row_factory = self.row_factory
        # numeric (a SUM, an AVG) as float, as SQLite gives it, not Decimal
        conn.adapters.register_loader("numeric", psycopg.types.numeric.FloatLoader)
        return conn

    def reconnect(self) -> None:
        self.close()
        self._staged.clear()
        self._columns.clear()
        self._pg = self._connect()

    @property
    def broken(self) -> bool:
        return bool(self._pg.closed or self._pg.broken)

    @property
    def in_transaction(self) -> bool:
        return self._pg.info.transaction_status != _psycopg().pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._pg.close()

    def _params(self, sql: dialect.Translated, params: Any) -> Any:
        if isinstance(params, dict):
            return {k: _scrub(v) for k, v in params.items()} if self.scrub else params
        params = tuple(_scrub(v) for v in params) if self.scrub else tuple(params)
        return dialect.numbered_params(params) if sql.numbered else params

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Any]:
        word = sql.strip().upper()
        if word in ("BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"):
            cursor = self._pg.execute("BEGIN")
            if word != "BEGIN":
                self._pg.execute(_LOCK)
            return cursor
        if word == "ROLLBACK":
            self._staged.clear()  # temporary tables made in the transaction are gone with it
        if word.startswith("PRAGMA"):
            return self._pg.execute("SELECT NULL WHERE false")  # SQLite's knobs mean nothing here
        translated = dialect.translate(self._columned(sql))
        return self._pg.execute(translated, self._params(translated, params))

    def executemany(self, sql: str, given: Iterable[Sequence[Any]]) -> int:
        """Run ``sql`` for each row; returns how many rows it changed in all."""
        rows: list[Sequence[Any]] = list(given)
        if not rows:
            return 0
        if self.scrub:
            rows = _scrub_rows(rows)
        sql = self._columned(sql)
        if len(rows) >= COPY_THRESHOLD:
            copied = self._copy(sql, rows)
            if copied is not None:
                return copied
        translated = dialect.translate(sql)
        with self._pg.cursor() as cursor:
            cursor.executemany(translated, [self._params(translated, row) for row in rows])
            return max(0, cursor.rowcount)

    def _columned(self, sql: str) -> str:
        """An INSERT that gives no column list gets one: a PostgreSQL table has a ``rowid`` column
        that SQLite's has not, so the values go to the columns SQLite's table has, in order."""
        match = _POSITIONAL.match(sql)
        if match is None:
            return sql
        columns = self.columns(match.group(2))
        return f"{match.group(1)} ({', '.join(columns)}) {sql[match.end(1):].lstrip()}"

    def columns(self, table: str) -> list[str]:
        """The table's columns, in order, without the ``rowid`` this store adds."""
        if table not in self._columns:
            rows = self._pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,)
            ).fetchall()
            self._columns[table] = [name for (name,) in rows if name != "rowid"]
        return self._columns[table]

    def _copy(self, sql: str, rows: list[Sequence[Any]]) -> int | None:
        """``executemany`` by COPY into a staging table and one INSERT ... SELECT (see the
        module); how many rows it changed, or None if the statement is not a plain
        INSERT ... VALUES (?, ...) inside a transaction."""
        match = _INSERT.match(sql)
        if match is None or "?" not in match.group(4) or not self.in_transaction:
            return None
        insert, table, columns, values, rest = match.groups()
        names = [c.strip() for c in columns.split(",")]
        if [v.strip() for v in values.split(",")] != ["?"] * len(names):
            return None
        target = _CONFLICT_TARGET.search(rest)
        if target is not None:  # DO UPDATE may touch a row once per statement
            keys = [names.index(c.strip()) for c in target.group(1).split(",")]
            if len({tuple(row[k] for k in keys) for row in rows}) < len(rows):
                return None
        # One staging table per (table, columns): the columns' types, none of their constraints.
        stage = f"prefect_like_stage_{table}_{zlib.crc32(','.join(names).encode()):08x}"
        if stage not in self._staged:
            self._pg.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(names)} FROM {table} WITH NO DATA"
            )
            self._staged.add(stage)
        else:
            self._pg.execute(f"TRUNCATE {stage}")
        with self._pg.cursor() as cursor:
            with cursor.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                dialect.translate(
                    f"{insert} {table} ({', '.join(names)}) "
                    f"SELECT {', '.join(names)} FROM {stage} {rest}"
                ),
                (),
            )
            return max(0, cursor.rowcount)


class PgStore(Store):
    """The tracking store on PostgreSQL (see the module); thread-safe: one connection, locked."""

    def __init__(self, url: str, *, retry_for: float = 120.0, migrate: bool = True) -> None:
        self.url = url
        self.where = shown(url)  # what messages name
        self.path = self.where  # type: ignore[assignment]
        self.retry_for = retry_for
        self._lock = threading.RLock()
        psycopg = _psycopg()
        try:
            self._conn = Connection(url)  # type: ignore[assignment]
        except psycopg.Error as exc:
            raise TrackingError(f"cannot connect to the tracking database {shown(url)}: {_first_line(exc)}") from None
        try:
            self._retry(lambda: self._setup_pg(migrate))
        except BaseException:
            self._conn.close()
            raise

    @property
    def pg(self) -> Connection:
        return self._conn  # type: ignore[return-value]

    # ``TrialReads.trial_states`` and ``trial_values`` in PostgreSQL's words: each aggregate
    # ordered by itself; a double as text is its shortest exact form.
    _JOINED = "string_agg({}, {} ORDER BY created, rowid)"
    _TRIALS_FROM = "task_runs"
    _DURATION = "CAST(coalesce(end_time - start_time, duration) AS TEXT)"

    def sibling(self) -> None:
        return None  # the server runs a query's parts in parallel itself

    def _setup_pg(self, migrate: bool) -> None:
        version = inspect(self.pg, self.where)
        if version == schema.SCHEMA_VERSION and not _functions_missing(self.pg):
            return
        if version < schema.SCHEMA_VERSION and not migrate:
            raise TrackingError(
                f"the tracking database {self.where} has schema {version}, this prefect-like "
                f"needs {schema.SCHEMA_VERSION}; run `prefect-like server database upgrade`"
            )
        upgrade(self.pg, self.where)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the connection lock; reconnect and run it again while the database
        is unreachable, up to ``retry_for`` seconds."""
        psycopg = _psycopg()
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                with self._lock:
                    if self.pg.broken:
                        self.pg.reconnect()
                    try:
                        return fn()
                    finally:
                        self.pg.scrub = False
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                pass  # another transaction won; run this one again
            except psycopg.DataError as exc:
                if "0x00" not in str(exc) or self.pg.scrub:
                    raise TrackingError(f"tracking database error: {_first_line(exc)} ({self.where})") from None
                with self._lock:
                    self.pg.scrub = True
                    try:
                        return fn()
                    finally:
                        self.pg.scrub = False
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"the tracking database {self.where} stayed unreachable for "
                        f"{self.retry_for:.0f} s: {_first_line(exc)}"
                    ) from None
            except psycopg.Error as exc:
                raise TrackingError(f"tracking database error: {_first_line(exc)} ({self.where})") from None
            time.sleep(delay)  # backoff before reconnecting, not a wait for a condition
            delay = min(delay * 2, 1.0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PgStore:
        return self


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def inspect(conn: Connection, where: str) -> int:
    """The store's schema version (0: no store here yet); refuses a schema that holds a
    ``flow_runs`` table prefect-like did not make, or one made by a newer prefect-like."""
    tables = {
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    }
    if VERSION_TABLE not in tables:
        if "flow_runs" in tables:
            raise TrackingError(
                f"not a prefect-like database: {where} has a flow_runs table prefect-like did not "
                "make; give PREFECT_LIKE_DATABASE_URL another database, or a schema of its own "
                "(?options=-csearch_path%3Dprefect_like)"
            )
        return 0
    row = conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()
    version = int(row[0]) if row else 0
    if version > schema.SCHEMA_VERSION:
        raise TrackingError(
            f"{where} was made by a newer prefect-like: schema {version}, this one reads up to "
            f"{schema.SCHEMA_VERSION}; upgrade prefect-like (pip install -U prefect-like)"
        )
    return version


def _functions() -> list[tuple[str, str]]:
    """(name, the digest of its definition) of each of ``dialect.FUNCTIONS``."""
    return [
        (re.search(r"FUNCTION\s+(\w+)", f).group(1), hashlib.sha1(f.encode()).hexdigest()[:16])  # type: ignore[union-attr]
        for f in dialect.FUNCTIONS
    ]


def _functions_missing(conn: Connection) -> bool:
    """Whether the schema lacks one of ``dialect.FUNCTIONS`` as this version defines it (a store
    made by an earlier version of this module): ``upgrade`` makes them, whatever the schema
    version. Each function's comment holds the digest of its definition."""
    wanted = [f"{name} {digest}" for name, digest in _functions()]
    row = conn.execute(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
        "AND proname || ' ' || coalesce(obj_description(oid, 'pg_proc'), '') = ANY(?)", (wanted,),
    ).fetchone()
    return row is None or int(row[0]) < len(wanted)


def upgrade(conn: Connection, where: str) -> tuple[int, int]:
    """Bring the store to ``schema.SCHEMA_VERSION`` in one transaction, under the write lock
    (another process may be doing it right now); returns (version before, version after)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = inspect(conn, where)
        if before < schema.SCHEMA_VERSION or _functions_missing(conn):
            for function, (name, digest) in zip(dialect.FUNCTIONS, _functions(), strict=True):
                conn._pg.execute(f"DROP FUNCTION IF EXISTS {name}")  # its PARALLEL label too
                conn._pg.execute(function)
                conn._pg.execute(f"COMMENT ON FUNCTION {name} IS '{digest}'")
        if before < schema.SCHEMA_VERSION:
            for step in range(before + 1, schema.SCHEMA_VERSION + 1):
                for statement in schema.STEPS[step].split(";"):
                    if dialect.ddl(statement):
                        conn._pg.execute(dialect.ddl(statement))
            conn._pg.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer NOT NULL)")
            conn._pg.execute(f"DELETE FROM {VERSION_TABLE}")
            conn._pg.execute(f"INSERT INTO {VERSION_TABLE} VALUES (%s)", (schema.SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        if not conn.broken and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return before, max(before, schema.SCHEMA_VERSION)


class Row(tuple[Any, ...]):
    """A row read by name or by position, as ``sqlite3.Row`` is (``Control`` reads both ways)."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _named_rows(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


def control(url: str) -> Any:
    """The server's ``Control`` (deployments, claims, cancellations) on the PostgreSQL store at
    ``url``: the same code as on SQLite, its ``BEGIN IMMEDIATE`` the store's write lock here
    too, so a run is claimed once and a schedule's runs made once across every server process."""
    from prefect_like.tracking.control import Control

    class PgControl(Control):
        def __init__(self, url: str, *, retry_for: float = 60.0) -> None:
            store = PgStore(url, retry_for=retry_for)  # its schema checked, its retry loop
            store.pg.row_factory = store.pg._pg.row_factory = _named_rows
            self._store = store
            self.path = store.where  # type: ignore[assignment]
            self.retry_for = retry_for
            self._lock = store._lock
            self._conn = store.pg  # type: ignore[assignment]
            self.cancelling = {}

        def _retry(self, fn: Callable[[], T]) -> T:
            return self._store._retry(fn)

        def close(self) -> None:
            self._store.close()

    return PgControl(url)
