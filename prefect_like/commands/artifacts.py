"""``prefect-like artifacts``: the tables, markdown, links and progress bars runs published.

    prefect-like artifacts ls [--key K] [--flow-run ID] [--task-run ID] [--limit N] [--json]
    prefect-like artifacts show KEY_OR_ID [--json]

``show`` takes an artifact id (or a unique prefix of one) or a key, whose latest artifact it
shows. Reads go through the CLI's reader: the tracking server when PREFECT_LIKE_API_URL is
set, else the embedded store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from prefect_like.cli import _console, _friendly_errors, _print_json, _reader, _short, _time, cli

if TYPE_CHECKING:
    from rich.console import Console


@cli.group()
def artifacts() -> None:
    """Look at the artifacts flow and task runs published."""


@artifacts.command("ls")
@click.option("--key", help="Only artifacts with this key.")
@click.option("--flow-run", "flow_run_id", help="Only this flow run's (its task runs' included).")
@click.option("--task-run", "task_run_id", help="Only this task run's.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def artifacts_ls(
    key: str | None, flow_run_id: str | None, task_run_id: str | None, limit: int, offset: int,
    as_json: bool,
) -> None:
    """Artifacts, newest first."""
    with _reader() as reader:
        found = reader.list_artifacts(key, flow_run_id, task_run_id, limit=limit, offset=offset)
        total = reader.count_artifacts(key, flow_run_id, task_run_id)
    if as_json:
        _print_json(found)
        return
    if not found:
        filtered = key is not None or flow_run_id is not None or task_run_id is not None
        click.echo("no artifacts match" if filtered else "no artifacts yet" if total == 0 else "no more artifacts")
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=8)
    table.add_column("KEY", max_width=30, overflow="ellipsis", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    table.add_column("CREATED (UTC)", no_wrap=True)
    table.add_column("RUN", no_wrap=True)
    table.add_column("DATA", max_width=50, overflow="ellipsis", no_wrap=True)
    for artifact in found:
        run = artifact["task_run_id"] or artifact["flow_run_id"] or ""
        table.add_row(
            Text(artifact["id"]),
            Text(artifact["key"] or ""),
            Text(artifact["type"] or ""),
            _time(artifact["created"]),
            Text(run[:12]),
            Text(_summary(artifact)),
        )
    console.print(table)
    if offset + len(found) < total:
        console.print(f"showing {offset + 1}-{offset + len(found)} of {total}; see more with --offset", style="dim")


def _summary(artifact: dict[str, Any]) -> str:
    data, kind = artifact["data"], artifact["type"]
    if kind == "progress" and isinstance(data, int | float):
        return f"{data:g}%"
    if kind == "table":
        rows = len(next(iter(data.values()), [])) if isinstance(data, dict) else len(data or [])
        return f"{rows} row{'' if rows == 1 else 's'}"
    if kind == "link" and isinstance(data, dict):
        return str(data.get("link_text") or data.get("link") or "")
    return _short(data, 50)


@artifacts.command("show")
@click.argument("key_or_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_friendly_errors
def artifacts_show(key_or_id: str, as_json: bool) -> None:
    """One artifact, by id (or unique prefix) or by key (its latest)."""
    with _reader() as reader:
        artifact = reader.get_artifact(key_or_id)
    if as_json:
        _print_json(artifact)
        return
    from rich.text import Text

    console = _console()
    rows = [
        ("id", artifact["id"]),
        ("key", artifact["key"]),
        ("type", artifact["type"]),
        ("description", artifact["description"]),
        ("flow run", artifact["flow_run_id"]),
        ("task run", artifact["task_run_id"]),
        ("created", _time(artifact["created"])),
        ("updated", _time(artifact["updated"]) if artifact["updated"] != artifact["created"] else None),
        ("versions", artifact["versions"] if artifact["versions"] > 1 else None),
    ]
    for label, value in rows:
        if value not in (None, ""):
            console.print(Text.assemble((f"{label:<12}", "bold"), str(value)))
    console.print()
    _body(console, artifact)


def _body(console: Console, artifact: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    data, kind = artifact["data"], artifact["type"]
    if kind == "table" and isinstance(data, dict | list):
        columns, rows = table_rows(data)
        table = Table(header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(Text(str(column)), overflow="fold")
        for row in rows:
            table.add_row(*(Text("" if v is None else _short(v, 60)) for v in row))
        console.print(table)
    elif kind == "progress" and isinstance(data, int | float):
        filled = round(max(0.0, min(100.0, data)) / 100 * 40)
        console.print(Text("█" * filled + "░" * (40 - filled) + f" {data:g}%"))
    elif kind == "link" and isinstance(data, dict):
        text = data.get("link_text")
        console.print(Text(f"{text}: {data.get('link')}" if text else str(data.get("link"))))
    else:
        console.print(Text(data if isinstance(data, str) else _short(data, 10_000)))


def table_rows(data: dict[str, Any] | list[Any]) -> tuple[list[Any], list[list[Any]]]:
    """A table artifact's columns and rows, whichever of Prefect's three shapes it has."""
    if isinstance(data, dict):
        columns = list(data)
        height = max((len(v) for v in data.values() if isinstance(v, list)), default=0)
        return columns, [
            [data[c][i] if isinstance(data[c], list) and i < len(data[c]) else None for c in columns]
            for i in range(height)
        ]
    if data and all(isinstance(row, dict) for row in data):
        columns = list(dict.fromkeys(k for row in data for k in row))
        return columns, [[row.get(c) for c in columns] for row in data]
    width = max((len(row) for row in data if isinstance(row, list)), default=0)
    return list(range(width)), [
        [row[i] if i < len(row) else None for i in range(width)] for row in data if isinstance(row, list)
    ]
