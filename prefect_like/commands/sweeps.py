"""``prefect-like sweeps`` and ``prefect-like runs metrics``: searches, their trials and curves.

    prefect-like sweeps ls [--limit N] [--json]
    prefect-like sweeps show ID_OR_NAME [--where EXPR] [--order-by KEY] [--limit N] [--json]
    prefect-like sweeps export ID_OR_NAME --output FILE    every trial of every run, one table
    prefect-like sweeps resume ID_OR_NAME [--runner NAME]   run what did not complete, continue
    prefect-like runs metrics RUN_ID [--json]               what a task run (or flow run) reported

A sweep is a search (``sweep.optimize``) with a name and an id; its flow runs are the first run
and every resume. ``show`` lists its trials, the latest attempt of each, filtered by ``--where``
(``param.kernel == "rbf" and result.accuracy > 0.95``: ``tracking.where``) and sorted by
``--order-by`` (``result.loss``, ``-param.C``). ``resume`` imports the objective again from the
file the first run found it in, tells the sampler the stored trials, runs again the trials that
did not complete, then goes on until the sweep's budget is spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from prefect_like.cli import (
    _console,
    _counts,
    _duration,
    _friendly_errors,
    _print_json,
    _reader,
    _short,
    _state,
    _time,
    cli,
    runs,
)


@cli.group()
def sweeps() -> None:
    """Look at searches (sweep.optimize), their trials, and resume them."""


@sweeps.command("ls")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def sweeps_ls(limit: int, offset: int, as_json: bool) -> None:
    """Sweeps, newest first."""
    with _reader() as reader:
        found = reader.list_sweeps(limit=limit, offset=offset)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no sweeps yet; sweep.optimize(...) makes one")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "CREATED (UTC)", "RUNS", "METRIC", "SAMPLER", "SCHEDULER"):
        table.add_column(column, no_wrap=True)
    for sweep in found:
        spec = sweep["spec"]
        metric = ", ".join(f"{m} ({d})" for m, d in zip(spec.get("metric") or [], spec.get("mode") or [], strict=False))
        table.add_row(
            Text(sweep["id"]), Text(sweep["name"] or ""), _time(sweep["created"]), str(sweep["flow_runs"]),
            Text(metric), Text(str(spec.get("sampler") or "custom")),
            Text(str((spec.get("scheduler") or {}).get("kind", "none"))),
        )
    _console().print(table)


def _trials(reader: Any, sweep: dict[str, Any], where_text: str | None, order_by: str | None,
            limit: int) -> list[dict[str, Any]]:
    """The latest attempt of each trial over the sweep's runs, filtered and sorted."""
    latest: dict[str, dict[str, Any]] = {}
    for run in sweep["runs"]:
        offset = 0
        while True:
            page = reader.list_task_runs(run["id"], limit=1000, offset=offset, where_text=where_text,
                                         order_by=order_by)
            for row in page:
                row["attempt"] = run["attempt"]
                latest[row.get("name") or row["id"]] = row
            if len(page) < 1000:
                break
            offset += len(page)
    rows = list(latest.values())
    if order_by:
        rows.sort(key=_sort_key(order_by))
    elif rows:
        rows.sort(key=lambda r: _trial_number(r.get("name")))
    return rows[:limit]


def _trial_number(name: Any) -> int:
    text = str(name or "")
    return int(text[6:]) if text.startswith("trial-") and text[6:].isdigit() else -1


def _sort_key(order_by: str) -> Any:
    """The order the store gives one run's rows, for rows of several runs: missing values last."""
    key = order_by.strip()
    descending = key.startswith("-")
    key = key.lstrip("-").strip()

    def value(row: dict[str, Any]) -> Any:
        if key.startswith("param."):
            found: Any = row.get("parameters") or {}
            parts = key.split(".")[1:]
        elif key == "result" or key.startswith("result."):
            found = row.get("result")
            parts = key.split(".")[1:]
        else:
            return row.get(key if key != "state" else "state_name")
        for part in parts:
            found = found.get(part) if isinstance(found, dict) else None
        return found

    def sort_key(row: dict[str, Any]) -> tuple[int, Any]:
        found = value(row)
        if found is None or isinstance(found, (dict, list)):
            return (1, 0)
        if isinstance(found, (int, float)) and not isinstance(found, bool):
            return (0, -found if descending else found)
        return (0, found)

    return sort_key


@sweeps.command("show")
@click.argument("sweep")
@click.option("--where", "where_text", metavar="EXPR",
              help='Only trials matching it, e.g. \'param.kernel == "rbf" and result.accuracy > 0.95\'.')
@click.option("--order-by", help="param.NAME, result.KEY, duration, ...; prefix with - for descending.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_friendly_errors
def sweeps_show(sweep: str, where_text: str | None, order_by: str | None, limit: int, as_json: bool) -> None:
    """A sweep: what it searches, its flow runs, and its trials."""
    with _reader() as reader:
        found = reader.get_sweep(sweep)
        trials = _trials(reader, found, where_text, order_by, limit)
    if as_json:
        _print_json({**found, "trials": trials})
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    spec = found["spec"]
    console.print(Text(f"Sweep {found['name']!r} ({found['id']})", style="bold"))
    metric = ", ".join(f"{m} ({d})" for m, d in zip(spec.get("metric") or [], spec.get("mode") or [], strict=False))
    space = spec.get("space") or spec.get("grid") or {}
    console.print(f"  metric     {metric}")
    console.print(f"  space      {_short(space, 100)}")
    console.print(f"  sampler    {spec.get('sampler') or 'custom'}; scheduler {(spec.get('scheduler') or {}).get('kind', 'none')}")
    console.print(f"  budget     {spec.get('n_trials') or '-'} trials, timeout {spec.get('timeout') or '-'} s, "
                  f"{spec.get('max_concurrent')} at once")
    for run in found["runs"]:
        console.print(f"  run {run['attempt']}      {run['id']}  {run['state_name'] or '?'}  {_counts(run['task_runs'])}")
    if not trials:
        console.print("no trials match" if where_text else "no trials yet")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TRIAL", "STATE", "DURATION", "PARAMETERS", "RESULT", "ID"):
        table.add_column(column, no_wrap=True, max_width=40, overflow="ellipsis")
    for row in trials:
        table.add_row(
            Text(row.get("name") or ""), _state(row), _duration(row.get("duration")),
            Text(_short(row.get("parameters"), 40)), Text(_short(row.get("result"), 40)), Text(row["id"]),
        )
    console.print(table)


@sweeps.command("export")
@click.argument("sweep")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A .parquet or .csv file.")
@_friendly_errors
def sweeps_export(sweep: str, output: Path) -> None:
    """Write every trial of every run of a sweep as one table (with ``flow_run_id`` and ``attempt``)."""
    from prefect_like.export import flat_row, write_table

    if not output.suffix:
        output = output.with_suffix(".parquet")
    if not output.parent.is_dir():
        raise click.ClickException(f"cannot write {output}: no such directory {output.parent}")
    with _reader() as reader:
        found = reader.get_sweep(sweep)
        rows = []
        for run in found["runs"]:
            for task_run in reader.iter_task_runs(run["id"]):
                rows.append({"flow_run_id": run["id"], "attempt": run["attempt"], **flat_row(task_run)})
    try:
        write_table(_table(rows), output)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {len(rows)} trials of sweep {found['name']!r} to {output}")


def _table(rows: list[dict[str, Any]]) -> Any:
    """Flat rows (``export.flat_row`` plus the run's columns) as a pyarrow Table."""
    from prefect_like.export import _column, _pyarrow

    pa = _pyarrow()
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({name: _column(pa, [row.get(name) for row in rows], name) for name in names})


@sweeps.command("resume")
@click.argument("sweep")
@click.option("--runner", help="Run on this task runner instead of the one the sweep was started on.")
@_friendly_errors
def sweeps_resume(sweep: str, runner: str | None) -> None:
    """Run again the trials of a sweep that did not complete, then continue the search from
    every trial stored, in a new flow run of the same sweep."""
    from prefect_like.search.optimize import resume

    search = resume(sweep, task_runner=runner)
    done = sum(t.completed for t in search.trials)
    click.echo(f"sweep {search.name!r} ({search.sweep_id}): {len(search.trials)} trials, {done} completed")
    try:
        best = search.best
    except ValueError:
        return
    click.echo(f"best: trial-{best.number} {search.metric[0]}={best.value:g} {best.params}")


@runs.command("metrics")
@click.argument("run_id")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many points.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def runs_metrics(run_id: str, limit: int | None, as_json: bool) -> None:
    """What a task run reported with sweep.report(), step by step (a flow run: all its task runs')."""
    with _reader() as reader:
        kind, found = reader.find_run(run_id)
        if kind == "task":
            points = reader.metrics(task_run_id=found, limit=limit)
        else:
            points = reader.metrics(flow_run_id=found, limit=limit)
    if as_json:
        _print_json(points)
        return
    if not points:
        click.echo(f"{kind} run {found} reported no metrics")
        return
    from rich.table import Table
    from rich.text import Text

    names: dict[str, None] = {}
    for point in points:
        names.update(dict.fromkeys(point["metrics"] or {}))
    table = Table(box=None, header_style="bold", pad_edge=False)
    if kind == "flow":
        table.add_column("TASK RUN", no_wrap=True)
    table.add_column("STEP", justify="right", no_wrap=True)
    for name in names:
        table.add_column(name.upper(), justify="right", no_wrap=True)
    for point in points:
        values = [_number(point["metrics"].get(name)) for name in names]
        cells = [Text(point["task_run_id"])] if kind == "flow" else []
        table.add_row(*cells, Text(f"{point['step']:g}" if point["step"] is not None else ""), *values)
    _console().print(table)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
