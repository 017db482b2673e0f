"""The sweep view's data: a flow run's trials as columns, and the aggregates its plots draw.

A sweep is a flow run's task runs of one task (the trials): one column per parameter
(``param.<name>``) and per result field (``result.<key>``, or ``result`` for a scalar result).
The dashboard never receives 200,000 raw points. The server reads the trials once into columns
(``Trials``, cached per flow run and rebuilt only when the run has changed) and answers with
what each plot needs:

- ``points``: at most ``points`` trials (default 2,000) for the scatter plots and the parallel
  coordinates, every k-th matching trial in trial order with k a power of two, so the same
  trials stay drawn as a live sweep grows and the picture does not flicker;
- ``histogram``: the metric binned on the server over every matching trial (log bins when the
  metric is positive and spans two decades or more);
- ``best``: best-so-far over trial number, every improvement (there are few: O(log n) for a
  random search) and the last trial;
- ``importance``: how much of the metric's variance each parameter explains on its own
  (the correlation ratio eta squared, "fANOVA-lite": each numeric parameter cut into up to ten
  quantile bins, each category its own group; first-order only, interactions are ignored;
  over an even sample of at most 20,000 of the trials). It
  needs no dependency beyond the standard library; a forest-based estimate would need
  scikit-learn on the server.

A where expression (``where``, the language of ``prefect-like runs tasks --where``,
``tracking.where``) narrows the trials first, in SQL; then filters (``filters``, a JSON list),
the parallel coordinates' brushes and the table's filters: ``{"column": "param.lr", "min": 0.01, "max": 0.1}`` for a numeric range (either end
may be left out), ``{"column": "param.kernel", "in": ["rbf", "linear"]}`` for categories. The
table (``page``) is sorted and paged here too, None last whichever the direction.

A column is numeric when every value it holds is a number (bools are categories); anything else
is a category, shown as its JSON text. A numeric column of positive values spanning two decades
or more is drawn on a log axis, as a log-uniform dimension should be.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from prefect_like.server.sweep_plots import best_so_far, histogram, importance, sample
from prefect_like.states import is_final
from prefect_like.tracking.trial_reads import TrialStates, TrialValues

MAX_POINTS = 20_000
# Seconds: trial times come from the clocks of the machines that ran them. A trial a skewed
# clock put further back is caught by the full read every FULL_READ_EVERY seconds of a live
# sweep, and by the one when it ends.
CLOCK_MARGIN = 1.0
FULL_READ_EVERY = 60.0
MAX_BINS = 200
MAX_FILTERS = 64
_FLATTEN_DEPTH = 3
MEMO_SIZE = 64  # views kept per Trials: plots, table orders, curve choices, one per question
_MISSING = object()


class BadRequest(ValueError):
    """A query the sweep view cannot answer as asked (an unknown column, a malformed filter)."""


@dataclass
class Column:
    """One parameter or result field over every trial, in trial order."""

    name: str
    kind: str  # "param" or "result"
    raw: list[Any]  # the values as stored (numbers, text, lists, ...), None where missing
    values: list[Any] = field(default_factory=list)  # raw if numeric, else each value's text
    numeric: bool = True
    log: bool = False
    lo: float | None = None
    hi: float | None = None
    categories: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "type": "number" if self.numeric else "category",
        }
        if self.numeric:
            out.update(log=self.log, min=self.lo, max=self.hi)
        else:
            out["categories"] = self.categories
        return out


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _finish(column: Column) -> Column:
    kinds = set(map(type, column.raw))
    present = [v for v in column.raw if v is not None] if type(None) in kinds else column.raw
    if present and kinds - {type(None)} <= {int, float} and all(map(math.isfinite, present)):
        column.numeric = True
        column.values = column.raw
        column.lo, column.hi = min(present), max(present)
        column.log = column.lo > 0 and column.hi / column.lo >= 100
    else:
        column.numeric = False
        texts = [None if v is None else _text(v) for v in column.raw]
        column.values = texts
        column.categories = sorted({t for t in texts if t is not None}, key=_category_order)
    return column


def _category_order(text: str) -> tuple[int, float, str]:
    # Numbers among the categories (1, "a", 2.5) in numeric order first, then text.
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _flatten(prefix: str, value: Any, into: dict[str, Any], depth: int = 0) -> None:
    """A nested dict result as dotted keys (``.metrics.loss``), as ``export`` flattens it."""
    if isinstance(value, dict) and value and depth < _FLATTEN_DEPTH:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into, depth + 1)
    else:
        into[prefix] = value


def _loads(text: Any) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return text


def _parse_array(text: str, n: int) -> list[Any] | None:
    """A JSON array of ``n`` elements, or None if ``text`` is not one."""
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:  # a stored text that is not JSON, a NaN duration...
        return None
    return values if type(values) is list and len(values) == n else None


def _loads_all(texts: Sequence[Any]) -> list[Any]:
    """``_loads`` of each text, parsed as one JSON array where every text is JSON (as the store
    writes them): one parse for 200,000 rows, not 200,000."""
    try:
        values = orjson.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    except (orjson.JSONDecodeError, TypeError):  # NaN, not text (a driver's own dict)...
        values = None
    if type(values) is not list or len(values) != len(texts):
        values = [_loads(text) for text in texts]
    return values


def _latest(times: Sequence[Any]) -> float:
    """The latest of ``times`` (epoch seconds, None where a trial has none), -inf if none."""
    present = [t for t in times if t is not None]
    try:
        return max(present, default=-math.inf)
    except TypeError:  # not all numbers: a driver's own type
        return max((t for t in present if type(t) is float), default=-math.inf)


def _dict_columns(prefix: str, values: list[Any], into: dict[str, list[Any]]) -> None:
    """One column per key of the dicts in ``values`` (None where a row has no dict or no key).

    Trials of one task nearly always share their key set: then each column is one ``map`` of
    an ``itemgetter``, in C, rather than a lookup and a type check per value."""
    dicts = [v for v in values if type(v) is dict]
    shapes = dict.fromkeys(map(tuple, dicts))
    whole = len(shapes) == 1 and len(dicts) == len(values)
    for key in dict.fromkeys(key for shape in shapes for key in shape):
        into[prefix + key] = (list(map(operator.itemgetter(key), values)) if whole else
                              [d.get(key) if type(d) is dict else None for d in values])


def _value_columns(params: list[Any], values: list[Any]) -> dict[str, list[Any]]:
    """The columns of rows' parameters and results (as parsed): ``param.<name>``, and
    ``result.<key>`` for dict results (nested dicts flattened to dotted keys) or ``result``."""
    columns: dict[str, list[Any]] = {}
    _dict_columns("param.", params, columns)
    kinds = set(map(type, values))
    dicts = [v if type(v) is dict and v else None for v in values] if dict in kinds else []
    fields: dict[str, list[Any]] = {}
    _dict_columns("result.", dicts, fields)
    if any(dict in set(map(type, column)) for column in fields.values()):
        for row, value in enumerate(dicts):  # nested dicts: each row flattened first
            if value is not None and dict in {type(v) for v in value.values()}:
                flat: dict[str, Any] = {}
                _flatten("", value, flat)
                dicts[row] = {key[1:]: v for key, v in flat.items()}
        fields = {}
        _dict_columns("result.", dicts, fields)
    columns.update(fields)
    if kinds - {dict, type(None)}:
        columns["result"] = [None if type(v) is dict else v for v in values]
    return columns


class Trials:
    """One task's runs (in one flow run, or in each flow run of a sweep), as columns.

    Built from ``TrialReads.trial_rows``; ``updated(rows)`` gives the trials with the rows that
    changed since (a live sweep: new trials, and trials that started or ended) applied, as a new
    object, so a request reading the old one is never disturbed. A big sweep has 200,000
    trials: each step over them is one pass the interpreter makes in C (``zip``, ``map``, one
    JSON parse per field), never a Python loop per value where it can be helped."""

    def __init__(self, rows: Iterable[Sequence[Any]] = ()) -> None:
        self.ids: list[str] = []
        self._index: dict[str, int] | None = {}
        self.state_types: list[str | None] = []
        self.state_names: list[str | None] = []
        self.durations: list[float | None] = []
        self.raw: dict[str, list[Any]] = {}
        self.size = 0
        # The latest times seen: where the next ``updated`` reads from.
        self.created = self.touched = -math.inf
        self._memo: dict[Any, Any] = {}
        self._apply(rows)

    def updated(self, rows: Iterable[Sequence[Any]]) -> Trials:
        """These trials with ``rows`` (new or changed trials) applied, as a new object."""
        new = object.__new__(Trials)
        new.ids = self.ids.copy()
        new._index = self.index.copy()
        new.state_types = self.state_types.copy()
        new.state_names = self.state_names.copy()
        new.durations = self.durations.copy()
        new.raw = {name: values.copy() for name, values in self.raw.items()}
        new.size, new.created, new.touched = self.size, self.created, self.touched
        new._memo = {}
        new._apply(rows)
        return new

    @property
    def index(self) -> dict[str, int]:
        """Each trial's number by its task run id, made when first asked for (by an update
        of a live sweep): a finished sweep's view never needs it."""
        if self._index is None:
            self._index = dict(zip(self.ids, range(len(self.ids)), strict=True))
        return self._index

    def memoized(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed once per ``key`` for these trials: they never change (a change
        is a new object, ``updated``), so a view asked again, by another reload or another
        viewer of the same sweep, is served as it was computed."""
        memo = self._memo
        found = memo.get(key, _MISSING)
        if found is _MISSING:
            found = compute()
            memo[key] = found
            while len(memo) > MEMO_SIZE:
                memo.pop(next(iter(memo)))
        return found

    @classmethod
    def from_columns(
        cls, values: Sequence[TrialValues], states: Callable[[], Sequence[TrialStates | None]]
    ) -> Trials | None:
        """The trials of ``TrialReads.trial_values`` and ``trial_states`` (of each flow run, in
        order), or None if they cannot be trusted (a column's JSON does not parse as the store
        writes it, a count differs): then read ``TrialReads.trial_rows``. The values are parsed and
        made columns first, ``states()`` asked for after: so a read of them in another thread
        runs meanwhile."""
        arrays: list[list[Any]] = [[], [], []]
        for part in values:
            for into, text in zip(arrays, (part.durations, part.parameters, part.results), strict=True):
                parsed = _parse_array(text, part.size)
                if parsed is None:
                    return None
                into.extend(parsed)
        durations, params, results = arrays
        columns = _value_columns(params, results)
        found = states()
        parts = [states_part for states_part in found if states_part is not None]
        if len(parts) < len(found) or sum(len(part.ids) for part in parts) != len(durations):
            return None
        trials = cls()
        trials._merge(
            [i for part in parts for i in part.ids],
            [t for part in parts for t in part.state_types],
            [t for part in parts for t in part.state_names],
            durations, columns,
            max((part.created for part in parts), default=-math.inf),
            max((part.touched for part in parts), default=-math.inf),
        )
        return trials

    def _apply(self, rows: Iterable[Sequence[Any]]) -> None:
        """Apply ``rows`` (``TrialReads.trial_rows``): transposed once, each field parsed as one
        JSON array."""
        rows = list(rows)
        (run_ids, stypes, snames, took, params, results, created, starts, ends) = (
            zip(*rows, strict=True) if rows else ((),) * 9
        )
        self._merge(run_ids, stypes, snames, took, _value_columns(_loads_all(params), _loads_all(results)),
                    _latest(created), max(_latest(starts), _latest(ends)))

    def _merge(
        self, run_ids: Sequence[str], stypes: Sequence[str | None], snames: Sequence[str | None],
        took: Sequence[Any], values: dict[str, list[Any]], created: float, touched: float,
    ) -> None:
        """Apply trials given column by column, with their parameter and result fields as
        columns (``_value_columns``)."""
        durations: list[float | None] = [
            d if type(d) is float else float(d) if type(d) is int else None for d in took
        ]
        ids, raw = self.ids, self.raw
        where: list[int] | None = None  # the trial of each row; None: rows 0..n-1 are trials 0..n-1
        if not ids and len(set(run_ids)) == len(run_ids):  # the first read
            ids.extend(run_ids)
            self._index = None
            self.state_types, self.state_names, self.durations = list(stypes), list(snames), durations
        else:
            where = []
            index = self.index
            for run_id, stype, sname, duration in zip(run_ids, stypes, snames, durations, strict=True):
                i = index.get(run_id)
                if i is None:
                    i = index[run_id] = len(ids)
                    ids.append(run_id)
                    self.state_types.append(stype)
                    self.state_names.append(sname)
                    self.durations.append(duration)
                else:  # a trial seen before, changed since: its values are replaced
                    self.state_types[i], self.state_names[i] = stype, sname
                    self.durations[i] = duration
                    for column in raw.values():
                        if i < len(column):
                            column[i] = None
                where.append(i)
        created_max, touched_max = max(created, self.created), max(touched, self.touched)
        n = len(ids)
        for name, column_values in values.items():
            known = raw.get(name)
            if where is None and known is None:
                raw[name] = column_values
                continue
            column = raw.setdefault(name, [])
            if len(column) < n:
                column.extend([None] * (n - len(column)))
            places = range(len(column_values)) if where is None else where
            for i, value in zip(places, column_values, strict=True):
                column[i] = value
        self.created, self.touched = created_max, touched_max
        self.size = n
        for column in raw.values():
            if len(column) < n:
                column.extend([None] * (n - len(column)))
        params_first = sorted(raw, key=lambda c: (not c.startswith("param."), c))
        self.columns: dict[str, Column] = {
            name: _finish(Column(name, "param" if name.startswith("param.") else "result", raw[name]))
            for name in params_first
        }

    # -- questions about the columns --------------------------------------------------------

    def params(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "param"]

    def metrics(self) -> list[Column]:
        return [c for c in self.columns.values() if c.kind == "result" and c.numeric]

    def column(self, name: str) -> Column:
        column = self.columns.get(name)
        if column is None:
            known = ", ".join(self.columns) or "none: no trial has parameters or a result yet"
            raise BadRequest(f"unknown column {name!r}; the columns are {known}")
        return column

    def default_metric(self) -> Column | None:
        metrics = self.metrics()
        for word in ("loss", "error", "score", "accuracy", "value"):
            for column in metrics:
                if column.name.rsplit(".", 1)[-1].lower().startswith(word):
                    return column
        return metrics[0] if metrics else None

    # -- filtering ----------------------------------------------------------------------------

    def matching(self, filters: Sequence[dict[str, Any]], only: set[str] | None = None) -> list[int]:
        """Indexes of the trials every filter keeps (and, given ``only``, whose id is in it:
        the trials a where expression kept), in trial order."""
        if only is None:
            keep: list[int] = list(range(self.size))
        else:
            ids = self.ids
            keep = [i for i in range(self.size) if ids[i] in only]
        for spec in filters:
            column = self.column(spec["column"])
            values = column.values
            if "in" in spec:
                wanted = set(spec["in"])
                keep = [i for i in keep if values[i] is not None and
                        (values[i] if not column.numeric else _text(values[i])) in wanted]
                continue
            lo, hi = spec.get("min"), spec.get("max")
            if not column.numeric:
                raise BadRequest(f"{column.name} holds categories: filter it with \"in\", not a range")
            keep = [i for i in keep if values[i] is not None
                    and (lo is None or values[i] >= lo) and (hi is None or values[i] <= hi)]
        return keep


def parse_filters(text: str | None) -> list[dict[str, Any]]:
    """The ``filters`` query parameter: a JSON list of ranges and category sets."""
    if not text:
        return []
    try:
        specs = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"filters must be a JSON list: {exc}") from None
    if not isinstance(specs, list):
        raise BadRequest("filters must be a JSON list of {\"column\": ..., \"min\"/\"max\" or \"in\"}")
    if len(specs) > MAX_FILTERS:
        raise BadRequest(f"at most {MAX_FILTERS} filters, got {len(specs)}")
    out = []
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str):
            raise BadRequest(f"each filter needs a \"column\" name, got {spec!r:.100}")
        unknown = set(spec) - {"column", "min", "max", "in"}
        if unknown:
            raise BadRequest(f"unknown filter field(s) {', '.join(sorted(unknown))}; "
                             "a filter has column and min/max, or column and in")
        if "in" in spec:
            if "min" in spec or "max" in spec:
                raise BadRequest(f"filter on {spec['column']}: either a range or \"in\", not both")
            if not isinstance(spec["in"], list) or not all(isinstance(v, str) for v in spec["in"]):
                raise BadRequest(f"filter on {spec['column']}: \"in\" takes a list of category texts")
        else:
            for end in ("min", "max"):
                if end in spec and spec[end] is not None and not _number(spec[end]):
                    raise BadRequest(f"filter on {spec['column']}: {end} must be a finite number")
            if spec.get("min") is None and spec.get("max") is None:
                raise BadRequest(f"filter on {spec['column']}: give min, max or in")
        out.append(spec)
    return out


# -- the aggregates ---------------------------------------------------------------------------


def _minimize(mode: str) -> bool:
    if mode not in ("min", "max"):
        raise BadRequest(f"mode must be min or max, got {mode!r}")
    return mode == "min"


def overview_mode(metric: Column) -> str:
    """Maximize a metric named like an accuracy or a score, minimize anything else (a loss)."""
    words = ("acc", "score", "auc", "f1", "precision", "recall", "r2")
    return "max" if any(w in metric.name.lower() for w in words) else "min"


def overview(
    trials: Trials,
    *,
    metric: str | None,
    mode: str | None,
    filters: Sequence[dict[str, Any]],
    points: int,
    bins: int,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Everything the sweep view's plots draw, in one answer."""
    keep = trials.matching(filters, only)
    column = trials.column(metric) if metric else trials.default_metric()
    if column is not None and not column.numeric:
        raise BadRequest(f"{column.name} is not numeric: the metric must be a number")
    if mode is None:
        mode = "min" if column is None else overview_mode(column)
    minimize = _minimize(mode)
    chosen = sample(keep, points)
    shown = [c.name for c in trials.columns.values() if c.kind == "param" or c.numeric]
    out: dict[str, Any] = {
        "total": trials.size,
        "matching": len(keep),
        "columns": [c.describe() for c in trials.columns.values()],
        "metric": column.name if column else None,
        "mode": mode,
        "points": {
            "ids": [trials.ids[i] for i in chosen],
            "trial": chosen,
            "state": [trials.state_names[i] for i in chosen],
            "values": {name: [trials.columns[name].values[i] for i in chosen] for name in shown},
        },
        "histogram": None,
        "best": [],
        "importance": [],
    }
    if column is not None:
        metric_values = column.values
        values = [metric_values[i] for i in keep if metric_values[i] is not None]
        out["histogram"] = histogram(values, bins, column.log)
        out["best"] = best_so_far(trials, keep, column, minimize)
        out["importance"] = importance(trials, keep, column)
    return out


def page(trials: Trials, keep: list[int], *, limit: int, offset: int) -> dict[str, Any]:
    """One page of the trials table: ``keep`` (the matching trials in table order, ``ordered``)
    from ``offset``."""
    rows = []
    for i in keep[offset: offset + limit]:
        rows.append({
            "id": trials.ids[i],
            "trial": i,
            "state": trials.state_types[i],
            "state_name": trials.state_names[i],
            "duration": trials.durations[i],
            "values": {name: c.values[i] for name, c in trials.columns.items()},
        })
    return {"total": trials.size, "matching": len(keep), "rows": rows}


def ordered(
    trials: Trials,
    *,
    filters: Sequence[dict[str, Any]],
    order_by: str | None,
    only: set[str] | None = None,
) -> list[int]:
    """The matching trials in table order: sorted by ``order_by``, None last."""
    keep = trials.matching(filters, only)
    if order_by:
        descending = order_by.startswith("-")
        name = order_by.lstrip("-")
        if name == "duration":
            values: list[Any] = trials.durations
            numeric = True
        elif name == "trial":
            values, numeric = list(range(trials.size)), True
        elif name == "state":
            values, numeric = trials.state_names, False
        else:
            column = trials.column(name)
            values, numeric = column.values, column.numeric
        present = [i for i in keep if values[i] is not None]
        missing = [i for i in keep if values[i] is None]
        key = (lambda i: values[i]) if numeric else (lambda i: _category_order(values[i]))
        present.sort(key=key, reverse=descending)
        keep = present + missing
    return keep


# -- the cache ----------------------------------------------------------------------------


class TrialsCache:
    """Built ``Trials`` per (flow runs, task), brought up to date only when a flow run changed.

    A flow run's summary (its state, its counts by state, its last sign of life) changes with
    every batch the store takes for it; unchanged, the columns are served as built. While a
    sweep is live, each change reads only the trials made, started or ended since the last
    read (an incremental query: a few hundred rows, not 200,000), and every trial once a
    minute; once it has ended, every trial is read once more, and that picture is served
    until it changes again."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[tuple[tuple[str, ...], str | None], tuple[str, bool, float, Trials]] = {}
        self._lock = threading.Lock()
        # One build per sweep at a time: the page asks for its plots, its table and its curves
        # at once, and three requests building the same 200,000 trials side by side would
        # each take three times as long. (A fixed set of locks, by the key's hash: bounded.)
        self._building = [threading.Lock() for _ in range(16)]

    def get(self, reader: Any, flow_runs: list[dict[str, Any]], task_name: str | None) -> Trials:
        """The trials of ``task_name`` in ``flow_runs`` (one flow run, or a sweep's every one),
        in flow run then submission order."""
        key = (tuple(run["id"] for run in flow_runs), task_name)
        with self._building[hash(key) % len(self._building)]:
            return self._get(reader, flow_runs, key)

    def _get(
        self, reader: Any, flow_runs: list[dict[str, Any]], key: tuple[tuple[str, ...], str | None]
    ) -> Trials:
        task_name = key[1]
        token = orjson.dumps([[run.get("state_name"), run.get("task_runs"), run.get("heartbeat"),
                               run.get("end_time")] for run in flow_runs]).decode()
        live = any(not is_final(run.get("state"), run.get("state_name")) for run in flow_runs)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            old_token, was_live, read_at, trials = entry
            if old_token == token:
                return trials
            if live and was_live and now - read_at < FULL_READ_EVERY:
                # Only what changed since: trials made, started or ended after the latest
                # times seen (less a margin for the clocks of several machines).
                trials = trials.updated(itertools.chain.from_iterable(
                    reader.trial_rows(run["id"], task_name,
                                      since=(trials.created - CLOCK_MARGIN, trials.touched - CLOCK_MARGIN))
                    for run in flow_runs
                ))
                self._put(key, (token, live, read_at, trials))
                return trials
        # First sight, the sweep has ended, or a minute has passed: read every trial, so the
        # picture is exact (a verdict of the store, a crash or a cancellation, changes rows
        # without new times). Column by column where the store can, else row by row.
        found = _read_whole(reader, [run["id"] for run in flow_runs], task_name, live)
        trials = found if found is not None else Trials(itertools.chain.from_iterable(
            reader.trial_rows(run["id"], task_name) for run in flow_runs
        ))
        self._put(key, (token, live, now, trials))
        return trials

    def _put(
        self, key: tuple[tuple[str, ...], str | None], entry: tuple[str, bool, float, Trials]
    ) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.pop(next(iter(self._entries)))


def _read_whole(reader: Any, flow_run_ids: list[str], task_name: str | None, live: bool) -> Trials | None:
    """Every trial, column by column (None if the columns cannot be trusted: read the rows).

    A sweep that has ended is read on two connections at once where the store has them
    (SQLite): the states in another thread, while this one reads the parameters and results
    and makes them columns. A live sweep is read in one statement, one picture of it."""
    twin = None if live else reader.sibling()
    if twin is None:
        both = [reader.trial_columns(run_id, task_name) for run_id in flow_run_ids]
        return Trials.from_columns([values for _, values in both], lambda: [states for states, _ in both])
    with twin, concurrent.futures.ThreadPoolExecutor(1) as pool:
        states = pool.submit(lambda: [twin.trial_states(run_id, task_name) for run_id in flow_run_ids])
        values = [reader.trial_values(run_id, task_name) for run_id in flow_run_ids]
        return Trials.from_columns(values, states.result)


# -- learning curves --------------------------------------------------------------------------

MAX_CURVES = 50
CURVE_POINTS = 200


def curve_trials(
    trials: Trials, keep: list[int], metric: Column | None, minimize: bool, limit: int
) -> list[int]:
    """The trials whose learning curves are shown: the best by the metric, then every pruned
    one (so a scheduler's decisions are visible), then the rest in trial order, ``limit`` in all."""
    chosen: list[int] = []
    seen: set[int] = set()

    def take(indexes: Iterable[int]) -> None:
        for i in indexes:
            if len(chosen) >= limit:
                return
            if i not in seen:
                seen.add(i)
                chosen.append(i)

    if metric is not None:
        values = metric.values
        ranked = sorted((i for i in keep if values[i] is not None),
                        key=lambda i: values[i], reverse=not minimize)
        take(ranked[: max(1, limit // 2)])
    take(i for i in keep if trials.state_names[i] == "Pruned")
    take(keep)
    return sorted(chosen)


def curves(
    trials: Trials, chosen: list[int], rows: Iterable[Sequence[Any]], name: str | None
) -> dict[str, Any]:
    """Learning curves from reported metrics rows ``(run_id, step, metrics JSON)`` in step order:
    one series per chosen trial that reported ``name`` (default: the first metric reported),
    at most ``CURVE_POINTS`` points each (every k-th, the last always kept)."""
    index = {trials.ids[i]: i for i in chosen}
    series: dict[str, list[tuple[Any, Any]]] = {}
    names: dict[str, None] = {}
    for run_id, step, values in rows:
        parsed = _loads(values)
        if not isinstance(parsed, dict) or run_id not in index:
            continue
        for key in parsed:
            names.setdefault(key, None)
        if name is None:
            name = next(iter(parsed), None)
        value = parsed.get(name) if name is not None else None
        if _number(value) and _number(step):
            series.setdefault(run_id, []).append((step, value))
    if name is not None and names and name not in names:
        raise BadRequest(f"no trial shown reported {name!r}; they reported {', '.join(names)}")
    out: list[dict[str, Any]] = []
    for run_id, points in sorted(series.items(), key=lambda item: index[item[0]]):
        if len(points) > CURVE_POINTS:
            stride = math.ceil(len(points) / CURVE_POINTS)
            points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
        i = index[run_id]
        out.append({"id": run_id, "trial": i, "state_name": trials.state_names[i],
                    "pruned": trials.state_names[i] == "Pruned", "points": points})
    return {"name": name, "names": list(names), "curves": out}
