"""The prefect-like command line: look at flow runs, task runs and logs in the tracking store.

    prefect-like runs ls [--state S] [--flow NAME] [--tag T ...] [--limit N] [--json]
    prefect-like runs show ID [--json]
    prefect-like runs tasks ID [--state S] [--task NAME] [--tag T ...] [--order-by KEY] [--limit N] [--json]
    prefect-like runs logs ID [--limit N] [--json]
    prefect-like runs watch ID                  a live progress view of a running flow run
    prefect-like runs export ID --output FILE   task runs as a Parquet or CSV table
    prefect-like runs flush                     send events earlier runs could not deliver
    prefect-like run FILE.py:FLOW [--param k=v ...] [--runner NAME]
    prefect-like server start [--host H] [--port P] [--home DIR] [--workers N]
    prefect-like server database upgrade | copy --from URL --to URL
    prefect-like bench [--runner NAME] [--tasks N] [--task-seconds S] [--api-url URL]

Every command reads through ``_reader()``, the one place that decides where runs come from: the
tracking server (``prefect_like.client``) when PREFECT_LIKE_API_URL is set, else the embedded
SQLite store under PREFECT_LIKE_HOME; both return the same dicts, so the output is the same. IDs may be abbreviated to a unique prefix of four or more characters. ``--json`` prints
one JSON document on stdout and nothing else: that output is a stable contract for scripts. Human
output is rich tables on stdout. A bad id, state or sort key is one ``Error: ...`` line on
stderr and exit code 1.

Importing this module stays cheap: rich and the store are imported when a command runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from prefect_like import settings
from prefect_like.errors import (
    MissingEngineError,
    RunNotFoundError,
    TrackingError,
    UnknownTaskRunnerError,
)
from prefect_like.states import DONE_NAMES, ERROR_TYPES

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from prefect_like.client import Reader

F = TypeVar("F", bound=Callable[..., Any])

_STATE_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "bold red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
    "PENDING": "dim",
}


def _reader() -> Reader:
    """Where runs are read from: the tracking server if PREFECT_LIKE_API_URL is set, else the
    embedded store."""
    from prefect_like.client import connect

    return connect()


def _friendly_errors(fn: F) -> F:
    """Turn the errors a user can cause into one ``Error: ...`` line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RunNotFoundError, TrackingError, ValueError, MissingEngineError, UnknownTaskRunnerError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode())


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped into grep or a file: 80 columns would cut ids and names short for no one.
        console.width = 160
    return console


# -- compact rendering ---------------------------------------------------------------------


def _short(value: Any, width: int = 40) -> str:
    """A value on one line, at most ``width`` characters: ``lr=0.01, depth=3`` for a dict."""
    if value is None:
        return ""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    else:
        text = _scalar(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return orjson.dumps(value, default=str).decode()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _time(iso: str | None) -> str:
    # "2024-05-01T12:03:04.123456+00:00" -> "2024-05-01 12:03:04" (UTC, like the stored value)
    return "" if not iso else iso[:19].replace("T", " ")


def _state(run: dict[str, Any]) -> Text:
    from rich.text import Text

    return Text(run.get("state_name") or run.get("state") or "?", style=_STATE_STYLES.get(run.get("state") or "", ""))


def _counts(counts: dict[str, int]) -> str:
    # Anything not done first: in a narrow column the failures must not be the part cut off.
    ordered = sorted(counts.items(), key=lambda kv: (kv[0] in DONE_NAMES, -kv[1], kv[0]))
    return ", ".join(f"{n} {name}" for name, n in ordered)


# -- commands ------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """prefect-like: tracked, retried, cached task runs."""


@cli.group()
def runs() -> None:
    """Look at flow runs, their task runs and their logs."""


@runs.command("ls")
@click.option("--state", help="A state type or name, e.g. failed, COMPLETED, Cached.")
@click.option("--flow", "flow_name", help="Only runs of this flow.")
@click.option("--tag", "tags", multiple=True, help="Only flow runs with this tag (repeat: with every one).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def runs_ls(
    state: str | None, flow_name: str | None, tags: tuple[str, ...], limit: int, offset: int, as_json: bool
) -> None:
    """Flow runs, newest first."""
    with _reader() as store:
        flow_runs = store.list_flow_runs(state=state, flow_name=flow_name, limit=limit, offset=offset, tags=tags)
        total = store.count_flow_runs(state=state, flow_name=flow_name, tags=tags)
    if as_json:
        _print_json(flow_runs)
        return
    if not flow_runs:
        filtered = state is not None or flow_name is not None or bool(tags)
        click.echo("no runs match" if filtered and total == 0 else "no runs yet" if total == 0 else "no more runs")
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    wide = console.width >= 120  # full ids when they fit; any 8-character prefix works too
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=8)
    table.add_column("NAME", min_width=8, max_width=24, overflow="ellipsis", no_wrap=True)
    table.add_column("FLOW", min_width=6, max_width=24, overflow="ellipsis", no_wrap=True)
    table.add_column("STATE", no_wrap=True, min_width=9)
    table.add_column("STARTED (UTC)", no_wrap=True, min_width=19)
    table.add_column("DURATION", justify="right", no_wrap=True, min_width=8)
    tagged = any(run.get("tags") for run in flow_runs)
    if tagged:
        table.add_column("TAGS", max_width=24, overflow="ellipsis", no_wrap=True)
    table.add_column("TASK RUNS", overflow="ellipsis", no_wrap=True)
    for run in flow_runs:
        cells: list[Text | str] = [
            Text(run["id"] if wide else run["id"][:8]),
            Text(run["name"] or ""),
            Text(run["flow_name"] or ""),
            _state(run),
            _time(run["start_time"]),
            _duration(run["duration"]),
        ]
        if tagged:
            cells.append(Text(", ".join(run.get("tags") or [])))
        table.add_row(*cells, Text(_counts(run["task_runs"])))
    console.print(table)
    if offset + len(flow_runs) < total:
        console.print(f"showing {offset + 1}-{offset + len(flow_runs)} of {total}; see more with --offset", style="dim")


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_friendly_errors
def runs_show(run_id: str, as_json: bool) -> None:
    """One flow run (with its task run counts and first failures) or one task run."""
    with _reader() as store:
        kind, full_id = store.find_run(run_id)
        if kind == "task":
            task_run = store.get_task_run(full_id)
            if as_json:
                _print_json(task_run)
            else:
                _show_task_run(task_run)
            return
        flow_run = store.get_flow_run(full_id)
        failed = [
            run
            for state in ERROR_TYPES
            for run in store.list_task_runs(full_id, state=state, limit=5)
        ][:5]
    if as_json:
        _print_json({**flow_run, "failed_task_runs": failed})
    else:
        _show_flow_run(flow_run, failed)


def _fields(console: Console, rows: Sequence[tuple[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        if value not in (None, "", {}, []):
            table.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    console.print(table)


def _show_flow_run(run: dict[str, Any], failed: list[dict[str, Any]]) -> None:
    console = _console()
    _fields(console, [
        ("id", run["id"]),
        ("name", run["name"]),
        ("flow", run["flow_name"]),
        ("state", _state(run)),
        ("message", run["message"]),
        ("started", _time(run["start_time"])),
        ("ended", _time(run["end_time"])),
        ("duration", _duration(run["duration"])),
        ("parameters", _short(run["parameters"], 200)),
        ("tags", ", ".join(run.get("tags") or []) or None),
        ("parent flow run", run["parent_flow_run_id"]),
        ("task runs", _counts(run["task_runs"]) or "none"),
    ])
    if run["error"]:
        console.print()
        _error(console, run["error"])
    if len(run.get("states", ())) > 2:  # more than its start and end: retries, a verdict withdrawn
        console.print()
        _states(console, run["states"])
    if failed:
        from rich.table import Table
        from rich.text import Text

        console.print()
        console.print("first failed task runs:", style="bold")
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("ID", no_wrap=True, min_width=8)
        table.add_column("TASK", max_width=30, overflow="ellipsis", no_wrap=True)
        table.add_column("PARAMETERS", max_width=36, overflow="ellipsis", no_wrap=True)
        table.add_column("ERROR", overflow="fold")
        for task_run in failed:
            table.add_row(
                Text(task_run["id"]),
                Text(task_run["name"] or task_run["task_name"] or ""),
                Text(_short(task_run["parameters"], 36)),
                Text(task_run["message"] or _short(task_run["error"], 80)),
            )
        console.print(table)


def _error(console: Console, error: Any) -> None:
    from rich.text import Text

    if isinstance(error, dict):
        console.print(Text(f"{error.get('type', 'Error')}: {error.get('message', '')}", style="red"))
        if error.get("traceback"):
            console.print(Text(str(error["traceback"]).rstrip(), style="dim"))
    else:
        console.print(Text(str(error), style="red"))


def _show_task_run(run: dict[str, Any]) -> None:
    console = _console()
    _fields(console, [
        ("id", run["id"]),
        ("flow run", run["flow_run_id"]),
        ("task", run["task_name"]),
        ("name", run["name"]),
        ("map index", run["map_index"]),
        ("state", _state(run)),
        ("message", run["message"]),
        ("run count", run["run_count"]),
        ("started", _time(run["start_time"])),
        ("ended", _time(run["end_time"])),
        ("duration", _duration(run["duration"])),
        ("parameters", _short(run["parameters"], 200)),
        ("result", _short(run["result"], 200)),
    ])
    if run["error"]:
        console.print()
        _error(console, run["error"])
    console.print()
    _states(console, run["states"])


def _states(console: Console, states: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("TIME (UTC)", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("MESSAGE", overflow="fold")
    for state in states:
        table.add_row(_time(state["timestamp"]), _state(state), Text(state["message"] or ""))
    console.print(table)


@runs.command("tasks")
@click.argument("flow_run_id")
@click.option("--state", help="A state type or name, e.g. failed, COMPLETED, NotReady, cached.")
@click.option("--task", "task_name", help="Only task runs of this task.")
@click.option("--tag", "tags", multiple=True, help="Only task runs with this tag (repeat: with every one).")
@click.option(
    "--order-by",
    help="start_time, end_time, duration, map_index, task_name, state, result, result.KEY or "
    "param.NAME; prefix with - for descending.",
)
@click.option("--where", "where_text", metavar="EXPR",
              help="Only task runs matching it, e.g. 'param.kernel == \"rbf\" and result.accuracy > 0.95'.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def runs_tasks(
    flow_run_id: str,
    state: str | None,
    task_name: str | None,
    tags: tuple[str, ...],
    order_by: str | None,
    where_text: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """A flow run's task runs, one page at a time."""
    with _reader() as store:
        task_runs = store.list_task_runs(
            flow_run_id, state=state, task_name=task_name, limit=limit, offset=offset,
            order_by=order_by, tags=list(tags) or None, where_text=where_text,
        )
        total = store.count_task_runs(
            flow_run_id, state=state, task_name=task_name, tags=list(tags) or None, where_text=where_text
        )
    if as_json:
        _print_json(task_runs)
        return
    if not task_runs:
        click.echo("no task runs match" if total == 0 else "no more task runs")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=8)
    table.add_column("TASK", max_width=24, overflow="ellipsis", no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("STATE", no_wrap=True, min_width=9)
    table.add_column("DURATION", justify="right", no_wrap=True)
    table.add_column("PARAMETERS", max_width=32, overflow="ellipsis", no_wrap=True)
    table.add_column("RESULT", max_width=28, overflow="ellipsis", no_wrap=True)
    table.add_column("MESSAGE", max_width=40, overflow="ellipsis", no_wrap=True)
    for run in task_runs:
        table.add_row(
            Text(run["id"]),
            Text(run["task_name"] or ""),
            "" if run["map_index"] is None else str(run["map_index"]),
            _state(run),
            _duration(run["duration"]),
            Text(_short(run["parameters"], 32)),
            Text(_short(run["result"], 28)),
            Text(_short(run["message"], 40)),
        )
    console = _console()
    console.print(table)
    if offset + len(task_runs) < total or offset:
        console.print(
            f"showing {offset + 1}-{offset + len(task_runs)} of {total}; "
            "page with --offset and --limit",
            style="dim",
        )


@runs.command("logs")
@click.argument("run_id")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many lines.")
@click.option("--offset", default=0, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_friendly_errors
def runs_logs(run_id: str, limit: int | None, offset: int, as_json: bool) -> None:
    """The log lines of a flow run (with its task runs') or of one task run, oldest first."""
    with _reader() as store:
        kind, full_id = store.find_run(run_id)
        if kind == "flow":
            lines = store.logs(flow_run_id=full_id, limit=limit, offset=offset)
        else:
            lines = store.logs(task_run_id=full_id, limit=limit, offset=offset)
    if as_json:
        _print_json(lines)
        return
    if not lines:
        click.echo("no logs")
        return
    for line in lines:
        source = f" {line['task_run_id']}" if line["task_run_id"] and kind == "flow" else ""
        click.echo(
            f"{_time(line['timestamp'])} {line['level'] or '':<8} {line['logger'] or ''}{source} | "
            f"{line['message'] or ''}"
        )


@runs.command("watch")
@click.argument("flow_run_id")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between refreshes.")
@_friendly_errors
def runs_watch(flow_run_id: str, interval: float) -> None:
    """A live view of a flow run: done, failed, running, pending, rate and time left."""
    from prefect_like.progress import watch

    with _reader() as reader:
        kind, full_id = reader.find_run(flow_run_id)
        if kind != "flow":
            raise ValueError(f"{full_id} is a task run; runs watch takes a flow run id")
        try:
            run = watch(reader, full_id, console=_console(), interval=interval)
        except KeyboardInterrupt:
            raise SystemExit(130) from None
    click.echo(f"{run['name'] or run['id']}: {run['state_name']} ({_counts(run['task_runs']) or 'no task runs'})")


@runs.command("export")
@click.argument("flow_run_id")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A .parquet (default, .pq) or .csv file.")
@_friendly_errors
def runs_export(flow_run_id: str, output: Path) -> None:
    """Write a flow run's task runs as a table: one row per task run, one column per
    parameter and per result field, plus state, duration and error."""
    from prefect_like.export import export_task_runs

    if not output.suffix:
        output = output.with_suffix(".parquet")
    if not output.parent.is_dir():
        raise click.ClickException(f"cannot write {output}: no such directory {output.parent}")
    with _reader() as reader:
        try:
            rows = export_task_runs(flow_run_id, output, source=reader)
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {rows} task runs to {output}")


@runs.command("flush")
@_friendly_errors
def runs_flush() -> None:
    """Send the events earlier runs could not deliver (spilled under PREFECT_LIKE_HOME) now."""
    from prefect_like.tracking import spill

    paths = spill.orphans()
    if not paths:
        click.echo("nothing to send: no undelivered events")
        return
    url = settings.api_url()
    if url:
        from prefect_like.tracking.http import HttpSink

        sink: Any = HttpSink(url, send_orphans=False)
    else:
        from prefect_like.tracking.writer import StoreWriter

        sink = StoreWriter(settings.database_path())
    target = url or settings.database_path()
    try:
        files, events = spill.deliver(sink, paths)
    except (TrackingError, OSError) as exc:  # what was not sent stays, for the next flush
        left = spill.count_events(spill.orphans())
        raise click.ClickException(
            f"cannot deliver to {target}: {exc}; {left:,} events stay in {spill.spill_dir()} "
            "for the next `prefect-like runs flush`"
        ) from None
    finally:
        sink.close()
    click.echo(f"sent {events} events from {files} spill file(s) to {target}")


@cli.group()
def server() -> None:
    """The tracking server."""


@server.command("start")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Any address but loopback requires PREFECT_LIKE_API_KEY (16 characters or more).")
@click.option("--port", default=4300, show_default=True, type=click.IntRange(1, 65535))
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="The directory holding the store [default: PREFECT_LIKE_HOME].")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Server processes on the one port; more than 1 needs a PostgreSQL store "
                   "(PREFECT_LIKE_DATABASE_URL).")
@_friendly_errors
def server_start(host: str, port: int, home: Path | None, log_level: str, workers: int) -> None:
    """Serve the tracking API (and the dashboard) over the store in HOME, or over
    PREFECT_LIKE_DATABASE_URL."""
    from prefect_like.server import serve

    serve(host, port, home, log_level, workers=workers)


@cli.command("run")
@click.argument("target", metavar="FILE.py:FLOW")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A flow parameter; the value is read as JSON if it is JSON, else as text.")
@click.option("--runner", help="Run on this task runner instead of the flow's own.")
@click.option("--no-progress", is_flag=True, help="No live progress bar.")
@_friendly_errors
def run_command(target: str, params: tuple[str, ...], runner: str | None, no_progress: bool) -> None:
    """Run a flow from a file with a live progress bar, then print its summary."""
    from prefect_like.runfile import load_flow, parse_params, run_with_progress

    flow_obj = load_flow(target)
    parameters = parse_params(params)
    if runner:
        from prefect_like.task_runners import load_task_runner_class

        load_task_runner_class(runner.lower())  # an unknown name fails here, not mid-run
        flow_obj = flow_obj.with_options(task_runner=runner.lower())
    try:
        flow_obj.validate((), parameters)
    except TypeError as exc:  # ParameterTypeError too
        raise click.ClickException(str(exc)) from None
    state, flow_run_id = run_with_progress(flow_obj, parameters, _console(), progress=not no_progress)
    summary: dict[str, Any] | None = None
    failed: list[dict[str, Any]] = []
    if flow_run_id is not None:
        try:
            with _reader() as reader:
                summary = reader.get_flow_run(flow_run_id)
                failed = [r for s in ERROR_TYPES for r in reader.list_task_runs(flow_run_id, state=s, limit=5)][:5]
        except (TrackingError, RunNotFoundError) as exc:
            click.echo(f"the run ended in state {state.name}, but the tracker cannot show it: {exc}", err=True)
    if summary is not None:
        _show_flow_run(summary, failed)
    else:
        click.echo(f"flow run ended in state {state.name}{': ' + state.message if state.message else ''}")
    if not state.is_completed():
        raise SystemExit(1)


@cli.command("bench")
@click.option("--runner", default="thread", show_default=True,
              help="sequential, thread, asyncio, dask, ray (or any installed runner's name).")
@click.option("--tasks", "n", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="How many tasks to map.")
@click.option("--task-seconds", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Each task sleeps this long (0: the trivial task x + 1).")
@click.option("--api-url", help="Stream to this tracking server instead of the embedded store.")
@click.option("--address", help="Dask scheduler or Ray cluster address (default: a local cluster).")
@_friendly_errors
def bench_command(runner: str, n: int, task_seconds: float, api_url: str | None, address: str | None) -> None:
    """Map N tasks on a runner, tracked, and the same work on the raw engine: tasks/s, overhead, ratio.

    The raw engine is what you would use instead: a loop, ThreadPoolExecutor, asyncio.gather,
    Dask client.map or Ray .remote (on the same cluster as the runner). The tracked run streams
    every state change to the store (or the server at --api-url); every run is counted after.
    """
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    from prefect_like import flow, task
    from prefect_like.runfile import run_with_progress
    from prefect_like.task_runners import load_task_runner_class

    runner = runner.lower()
    load_task_runner_class(runner)  # an unknown name fails here
    if api_url:
        os.environ[settings.PREFIX + "API_URL"] = api_url

    def work(x: int) -> int:
        if task_seconds:
            time.sleep(task_seconds)
        return x + 1

    async def awork(x: int) -> int:
        if task_seconds:
            await asyncio.sleep(task_seconds)
        return x + 1

    console = _console()
    task_runner: Any = runner
    cleanup: list[Callable[[], Any]] = []
    started = time.perf_counter()
    if runner == "sequential":
        raw_name = "a plain loop"
        [work(i) for i in range(n)]
    elif runner == "thread":
        raw_name = "ThreadPoolExecutor"
        with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
            [f.result() for f in [pool.submit(work, i) for i in range(n)]]
    elif runner == "asyncio":
        raw_name = "asyncio.gather"

        async def gather() -> list[int]:
            return await asyncio.gather(*(awork(i) for i in range(n)))

        asyncio.run(gather())
    elif runner == "dask":
        from distributed import Client
        from prefect_like_dask import DaskTaskRunner

        raw_name = "Dask client.map"
        client = Client(address) if address else Client(processes=True, dashboard_address=":0")
        cleanup.append(client.close)
        if client.cluster is not None:
            cleanup.append(client.cluster.close)
        task_runner = DaskTaskRunner(address=client.scheduler_info()["address"])
        client.gather(client.map(work, range(min(n, 100)), pure=False))  # warm the workers up
        started = time.perf_counter()
        client.gather(client.map(work, range(n), pure=False))
    elif runner == "ray":
        import ray

        raw_name = "Ray .remote"
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
        cleanup.append(ray.shutdown)
        remote = ray.remote(work)
        ray.get([remote.remote(i) for i in range(min(n, 100))])  # warm the workers up
        started = time.perf_counter()
        ray.get([remote.remote(i) for i in range(n)])
    else:
        raw_name = ""
    raw_wall = time.perf_counter() - started if raw_name else None

    fn: Callable[[int], Any] = awork if runner == "asyncio" else work
    tracked_fn = task(name="bench-task")(fn)

    @flow(name="prefect-like-bench", task_runner=task_runner)
    def bench(n: int) -> int:
        return len(tracked_fn.map(range(n)).result())

    walls: list[float] = []

    class Timed:  # the flow call's own wall time, not the progress view's polling
        name = bench.name

        def __call__(self, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return bench(**kwargs)
            finally:
                walls.append(time.perf_counter() - begun)

    try:
        console.print(f"{n:,} tasks on the {runner} runner, tracked in "
                      f"{settings.api_url() or settings.database_path()}")
        state, flow_run_id = run_with_progress(Timed(), {"n": n}, console)  # type: ignore[arg-type]
        wall = walls[0]
    finally:
        for close in cleanup:
            close()
    recorded = 0
    if flow_run_id is not None:
        with _reader() as reader:
            recorded = reader.count_task_runs(flow_run_id)
    console.print(f"tracked: {wall:.2f} s, [bold]{n / wall:,.0f} tasks/s[/], {recorded:,} of {n:,} task runs recorded")
    if raw_wall is not None:
        console.print(f"raw {raw_name}: {raw_wall:.2f} s, {n / raw_wall:,.0f} tasks/s")
        console.print(f"overhead per task: {(wall - raw_wall) / n * 1e6:,.0f} µs; "
                      f"tracked time / raw time: {wall / raw_wall:.2f}x")
    if not state.is_completed():
        raise click.ClickException(f"the benchmark flow ended in state {state.name}")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``prefect-like`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="prefect-like")


# The command groups add themselves to ``cli`` when imported.
import prefect_like.commands.artifacts  # noqa: E402,F401
import prefect_like.commands.concurrency  # noqa: E402,F401
import prefect_like.commands.database  # noqa: E402,F401
import prefect_like.commands.deployments  # noqa: E402,F401
import prefect_like.commands.sweeps  # noqa: E402,F401
import prefect_like.commands.workers  # noqa: E402,F401
