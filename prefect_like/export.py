"""A flow run's task runs as a table: one row per task run, one column per parameter and result field.

    id, task_name, name, map_index, state, state_name, start_time, end_time, duration, run_count,
    param.<name>..., result.<key>... (or ``result`` for a scalar result), error_type, error_message

Rows come from any reader (the embedded ``Store`` or the tracking ``Client``; ``connect()``
picks by settings), read in batches, so a 200,000-task sweep never needs its JSON in memory at
once. Nested dict results flatten with dots (``result.metrics.loss``); a column whose values
do not share one Arrow type (a list here, a dict there) is stored as JSON text rather than
failing the export. ``pandas.read_parquet(path)`` on the output is a sweep ready to sort and plot.

``best(flow_run_id, k, "result.loss")`` asks the tracker for the k best task runs, sorted by the
store (``-result.accuracy`` for highest first), and returns them as a DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from prefect_like.errors import MissingEngineError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from prefect_like.client import Reader

LEADING = ("id", "task_name", "name", "map_index", "state", "state_name", "start_time", "end_time", "duration",
           "run_count")
TIMES = ("start_time", "end_time")
TRAILING = ("error_type", "error_message")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
MAX_FLATTEN_DEPTH = 3


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingEngineError("pyarrow", "export") from exc
    return pyarrow


def _flatten(prefix: str, value: Any, into: dict[str, Any], depth: int = 0) -> None:
    if isinstance(value, dict) and value and depth < MAX_FLATTEN_DEPTH:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into, depth + 1)
    else:
        into[prefix] = value


def flat_row(run: dict[str, Any]) -> dict[str, Any]:
    """One task run dict (as the store returns it) as one flat table row."""
    row = {name: run.get(name) for name in LEADING}
    for name in TIMES:  # ISO-8601 text from the tracker: a timestamp column, not a string
        value = row[name]
        row[name] = datetime.fromisoformat(value) if isinstance(value, str) else None
    for name, value in (run.get("parameters") or {}).items():
        row[f"param.{name}"] = value
    result = run.get("result")
    if isinstance(result, dict) and result:
        _flatten("result", result, row)
    elif result is not None:
        row["result"] = result
    error = run.get("error")
    if isinstance(error, dict):
        row["error_type"] = error.get("type")
        row["error_message"] = error.get("message")
    else:
        row["error_type"] = None
        row["error_message"] = None if error is None else str(error)
    return row


_TEXT = frozenset({"id", "task_name", "name", "state", "state_name", *TRAILING})


def _column(pa: Any, values: list[Any], name: str = "") -> Any:
    if name in _TEXT:
        return pa.array(values, type=pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        # Mixed types (1 and "a", a list and a dict): JSON text keeps every value readable.
        return pa.array(
            [None if v is None else v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
             for v in values],
            type=pa.string(),
        )


def rows_to_table(runs: Iterable[dict[str, Any]]) -> pa.Table:
    """Task run dicts as a pyarrow Table with the columns this module promises."""
    pa = _pyarrow()
    columns: dict[str, list[Any]] = {name: [] for name in LEADING}
    n = 0
    for run in runs:
        row = flat_row(run)
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * n
            column.append(value)
        n += 1
        for column in columns.values():
            if len(column) < n:
                column.append(None)
    params = sorted(c for c in columns if c.startswith("param."))
    results = sorted(c for c in columns if c == "result" or c.startswith("result."))
    order = [*LEADING, *params, *results, *TRAILING]
    for name in TRAILING:
        columns.setdefault(name, [None] * n)
    return pa.table({name: _column(pa, columns[name], name) for name in order})


def _reader(source: Reader | None) -> tuple[Reader, bool]:
    if source is not None:
        return source, False
    from prefect_like.client import connect

    return connect(), True


def task_runs_table(flow_run_id: str, source: Reader | None = None) -> pa.Table:
    """Every task run of a flow run (an id or unique prefix) as a pyarrow Table."""
    reader, owned = _reader(source)
    try:
        full_id = reader.get_flow_run(flow_run_id)["id"]
        return rows_to_table(reader.iter_task_runs(full_id))
    finally:
        if owned:
            reader.close()


def task_runs_frame(flow_run_id: str, source: Reader | None = None) -> pd.DataFrame:
    """Every task run of a flow run as a pandas DataFrame."""
    return task_runs_table(flow_run_id, source).to_pandas()


def _format(path: str | Path) -> str:
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path.name!r} from its extension; "
            "use .parquet (or .pq) or .csv"
        )
    return fmt


def write_table(table: pa.Table, path: str | Path, format: str | None = None) -> Path:
    """Write a table as Parquet or CSV, chosen by ``format`` or the file's extension."""
    path = Path(path)
    fmt = format or _format(path)
    pa = _pyarrow()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        # CSV has no nested types: turn any list or struct column into JSON text first.
        for i, field in enumerate(table.schema):
            if pa.types.is_nested(field.type):
                text = [None if v is None else orjson.dumps(v).decode() for v in table.column(i).to_pylist()]
                table = table.set_column(i, field.name, pa.array(text, type=pa.string()))
        pacsv.write_csv(table, path)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        raise ValueError(f"unknown export format {fmt!r}; use parquet or csv")
    return path


def export_task_runs(flow_run_id: str, path: str | Path, source: Reader | None = None) -> int:
    """Write a flow run's task runs to ``path`` (Parquet or CSV by extension); rows written."""
    _format(path)  # a bad name fails before 200,000 rows are read
    table = task_runs_table(flow_run_id, source)
    write_table(table, path)
    return int(table.num_rows)


def best(
    flow_run_id: str,
    k: int = 10,
    key: str = "result",
    source: Reader | None = None,
    *,
    state: str | None = "COMPLETED",
) -> pd.DataFrame:
    """The ``k`` best task runs by ``key`` (``result.loss``; ``-result.accuracy`` for highest
    first), sorted by the tracker, as a DataFrame with this module's columns."""
    reader, owned = _reader(source)
    try:
        runs = reader.list_task_runs(flow_run_id, state=state, limit=k, order_by=key)
    finally:
        if owned:
            reader.close()
    return rows_to_table(runs).to_pandas()


def best_rows(frame: pd.DataFrame, k: int = 10, key: str = "result") -> pd.DataFrame:
    """The ``k`` best rows of an exported frame by column ``key`` (``-`` prefix: highest first);
    rows missing the value go last."""
    descending = key.startswith("-")
    column = key.lstrip("-")
    if column not in frame.columns:
        raise ValueError(f"no column {column!r}; the columns are {', '.join(map(str, frame.columns))}")
    return frame.sort_values(column, ascending=not descending, na_position="last").head(k)
