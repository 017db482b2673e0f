"""The store's reads of a sweep's trials for the sweep view: whole columns, not dict rows.

A mixin of ``Store`` beside ``queries.Reads`` (whose id lookups and locked-retry loop it uses).
The sweep view turns 200,000 task runs into columns; ``task_dict`` per row would cost it most
of a second, so these reads hand it raw values:

- ``trial_rows``: lean tuples, one per task run, in submission order, optionally only those
  changed since a point (a live sweep's incremental read);
- ``trial_states`` / ``trial_values`` / ``trial_columns``: each column aggregated in SQL into
  one text, split here (the first read of a big sweep). ``PgStore`` words the aggregates for
  PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

UNIT = "\x1f"  # joins the texts of a trials column (one held in a text shows in the count)


class TrialStates(NamedTuple):
    """A flow run's trials of one task, in submission order: ids and states
    (``trial_states``). ``created`` is the latest creation time, ``touched`` the latest start
    or end (epoch seconds, -inf if none): where an incremental read goes on from."""

    ids: list[str]
    state_types: list[str | None]
    state_names: list[str | None]
    created: float
    touched: float


class TrialValues(NamedTuple):
    """The same trials' durations, parameters and results, each a JSON array (text) with one
    element per trial, null where it has none (``trial_values``)."""

    size: int
    durations: str
    parameters: str
    results: str


def _split_states(n: int, row: Sequence[Any]) -> TrialStates | None:
    ids, stypes, snames, *latest = row
    if not n:
        return TrialStates([], [], [], -math.inf, -math.inf)
    columns = [text.split(UNIT) for text in (ids, stypes, snames)]
    if any(len(column) != n for column in columns) or not all(
        t is None or type(t) in (int, float) for t in latest
    ):
        return None
    created, started, ended = (-math.inf if t is None else float(t) for t in latest)
    for k in (1, 2):  # a state stored as NULL
        if "" in columns[k]:
            columns[k] = [t or None for t in columns[k]]
    return TrialStates(columns[0], columns[1], columns[2], created, max(started, ended))


def _split_values(n: int, row: Sequence[Any]) -> TrialValues:
    return TrialValues(n, *(f"[{text or ''}]" for text in row))


class TrialReads:
    """Reads of a flow run's trials as columns; ``Store`` supplies the connection."""

    _all: Callable[..., list[Any]]
    _one: Callable[..., Any]
    _flow_ref: Callable[[str], tuple[int, str]]

    def trial_rows(
        self, flow_run_id: str, task_name: str | None = None,
        since: tuple[float, float] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """A flow run's task runs as lean tuples for the sweep view, in submission order:
        ``(id, state_type, state_name, duration, parameters, result, created, start_time,
        end_time)``, the duration in seconds (None until the run ends), parameters and result
        as stored JSON text, times as epoch seconds. With ``since=(created, touched)``, only
        the runs made after ``created`` or started or ended at ``touched`` or later.

        One pass over the flow run's rows with no per-row formatting: the sweep view turns
        200,000 of them into columns, and ``task_dict`` would cost it most of a second."""
        key, _ = self._flow_ref(flow_run_id)
        where = "t.flow_key = ?"
        params: list[Any] = [key]
        if task_name is not None:
            where += " AND t.task_name = ?"
            params.append(task_name)
        if since is not None:
            created, touched = (float(v) if math.isfinite(v) else -1e300 for v in since)
            where += " AND (t.created > ? OR t.start_time >= ? OR t.end_time >= ?)"
            params.extend((created, touched, touched))
        after: tuple[float, int] = (float("-inf"), -1)
        while True:
            rows = self._all(
                "SELECT t.id, t.state_type, t.state_name, "
                "CAST(coalesce(t.end_time - t.start_time, t.duration) AS REAL), "
                "t.parameters, t.result, t.created, t.start_time, t.end_time, t.rowid "
                f"FROM task_runs AS t WHERE {where} AND (t.created, t.rowid) > (?, ?) "
                "ORDER BY t.created, t.rowid LIMIT 20000",
                (*params, *after),
            )
            for row in rows:
                yield row[:9]
            if len(rows) < 20000:
                return
            after = (rows[-1][6], rows[-1][9])

    # A trials column joined into one text in submission order, and where the rows come
    # from: SQLite's created index gives them in that order (created, then rowid), the order
    # its aggregates take them in. PostgreSQL orders each aggregate itself (``PgStore``).
    _JOINED = "group_concat({}, {})"
    _TRIALS_FROM = "task_runs INDEXED BY task_runs_created"
    _DURATION = "CAST(coalesce(end_time - start_time, duration) AS REAL)"

    def _trial_aggregates(
        self, flow_run_id: str, task_name: str | None, states: bool, values: bool
    ) -> tuple[int, list[Any]]:
        key, _ = self._flow_ref(flow_run_id)
        join = self._JOINED.format
        parts = []
        if states:
            parts += [join("id", "?2"), join("coalesce(state_type, '')", "?2"),
                      join("coalesce(state_name, '')", "?2"),
                      "max(created)", "max(start_time)", "max(end_time)"]
        if values:
            parts += [join(f"coalesce({self._DURATION}, 'null')", "','"),
                      join("coalesce(parameters, 'null')", "','"), join("coalesce(result, 'null')", "','")]
        where = "flow_key = ?1" + ("" if task_name is None else " AND task_name = ?3")
        n, *row = self._one(
            f"SELECT count(*), {', '.join(parts)} FROM {self._TRIALS_FROM} WHERE {where}",
            (key, UNIT, *(() if task_name is None else (task_name,))),
        )
        return n, row

    def trial_states(self, flow_run_id: str, task_name: str | None = None) -> TrialStates | None:
        """A flow run's task runs (of one task), as ``trial_rows`` gives them but column by
        column, each aggregated in SQL into one text: the ids and states, with the latest
        times. None when a column cannot be trusted to split as it was joined (a
        separator in an id or a state name, a time that is not a number): then read
        ``trial_rows``.

        The sweep view's first read of a big sweep: 200,000 rows fetched one by one cost the
        driver a tuple and nine values each, where one row of a few texts costs nothing."""
        n, row = self._trial_aggregates(flow_run_id, task_name, states=True, values=False)
        return _split_states(n, row)

    def trial_values(self, flow_run_id: str, task_name: str | None = None) -> TrialValues:
        """The same task runs' durations, parameters and results, as ``trial_states`` reads the
        states."""
        n, row = self._trial_aggregates(flow_run_id, task_name, states=False, values=True)
        return _split_values(n, row)

    def trial_columns(
        self, flow_run_id: str, task_name: str | None = None
    ) -> tuple[TrialStates | None, TrialValues]:
        """``trial_states`` and ``trial_values`` in one statement: one picture of a sweep that
        is still being written."""
        n, row = self._trial_aggregates(flow_run_id, task_name, states=True, values=True)
        return _split_states(n, row[:6]), _split_values(n, row[6:])

    def sibling(self) -> TrialReads | None:
        """Another connection to the same store, for a read to run beside one of this one's
        (in another thread), or None where the store has no use for one."""
        return None
