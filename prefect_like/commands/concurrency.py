"""``prefect-like concurrency-limit``: limits on task tags and on ``concurrency()`` blocks.

    prefect-like concurrency-limit create NAME N [--slot-decay-per-second R]
    prefect-like concurrency-limit ls [--json]
    prefect-like concurrency-limit inspect NAME [--json]
    prefect-like concurrency-limit delete NAME
    prefect-like concurrency-limit reset NAME

One namespace: the limit "gpu" holds the task runs tagged "gpu" (Prefect's tag-based
concurrency limits) and the blocks in ``concurrency("gpu")`` (its global concurrency limits).
Prefect's spelling of the latter, ``gcl create NAME --limit N [--slot-decay-per-second R]``,
``gcl ls``, ``gcl inspect``, ``gcl update NAME [--limit N] [--enable/--disable]``, ``gcl delete``,
``gcl enable``/``disable``, works too.

Limits live where runs are tracked: on the tracking server when PREFECT_LIKE_API_URL is set,
else in the embedded store.
"""

from __future__ import annotations

from typing import Any

import click

from prefect_like.cli import _console, _friendly_errors, _print_json, _time, cli
from prefect_like.concurrency.admin import Limits


class _Limits(Limits):
    """The limits, their errors as one CLI line."""

    def _local(self, name: str, *args: Any) -> Any:
        try:
            return super()._local(name, *args)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None

    def _remote(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super()._remote(method, path, **kwargs)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None


def _show(limit: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    decay = limit["slot_decay_per_second"]
    console.print(Text.assemble(("name      ", "bold"), limit["name"]))
    console.print(Text.assemble(("limit     ", "bold"), str(limit["limit"])))
    console.print(Text.assemble(("taken     ", "bold"), f"{limit['active_slots']:g}"))
    if decay:
        console.print(Text.assemble(("decay     ", "bold"), f"{decay:g} slots/s"))
    if not limit["active"]:
        console.print(Text.assemble(("active    ", "bold"), "no (does not limit)"))
    if limit["holders"]:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("LEASE", "SLOTS", "HOLDER", "SINCE (UTC)", "EXPIRES (UTC)"):
            table.add_column(column, no_wrap=True)
        for held in limit["holders"]:
            table.add_row(held["lease_id"][:12], str(held["occupy"]), Text(held["holder"] or ""),
                          _time(held["acquired"]), _time(held["expires"]))
        console.print()
        console.print(table)


def _list(limits: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(limits)
        return
    if not limits:
        click.echo("no concurrency limits")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "LIMIT", "TAKEN", "DECAY/S", "ACTIVE"):
        table.add_column(column, no_wrap=True)
    for limit in limits:
        decay = limit["slot_decay_per_second"]
        table.add_row(Text(limit["name"]), str(limit["limit"]), f"{limit['active_slots']:g}",
                      "" if decay is None else f"{decay:g}", "yes" if limit["active"] else "no")
    _console().print(table)


_DECAY = click.option("--slot-decay-per-second", "decay", type=click.FloatRange(min=0, min_open=True),
                      help="Make it a rate limit: slots free themselves at this rate (for rate_limit()).")


@cli.group("concurrency-limit")
def concurrency_limit() -> None:
    """Limits on task runs with a tag, and on concurrency() blocks of a name."""


@concurrency_limit.command("create")
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0))
@_DECAY
@_friendly_errors
def create(name: str, limit: int, decay: float | None) -> None:
    """Create the limit NAME of LIMIT slots (or change its number of slots)."""
    with _Limits() as limits:
        made = limits.create(name, limit, decay)
    click.echo(f"concurrency limit {made['name']!r}: {made['limit']} slot(s)"
               + (f", decaying at {decay:g}/s" if decay else ""))


@concurrency_limit.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def ls(as_json: bool) -> None:
    """Every limit, with the slots taken now."""
    with _Limits() as limits:
        _list(limits.all(), as_json)


@concurrency_limit.command("inspect")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_friendly_errors
def inspect(name: str, as_json: bool) -> None:
    """One limit and who holds its slots."""
    with _Limits() as limits:
        limit = limits.get(name)
    if as_json:
        _print_json(limit)
    else:
        _show(limit)


@concurrency_limit.command("delete")
@click.argument("name")
@_friendly_errors
def delete(name: str) -> None:
    """Delete a limit (what it held runs on unlimited)."""
    with _Limits() as limits:
        limits.delete(name)
    click.echo(f"deleted concurrency limit {name!r}")


@concurrency_limit.command("reset")
@click.argument("name")
@_friendly_errors
def reset(name: str) -> None:
    """Free every slot of a limit (its holders go on; new runs take slots afresh)."""
    with _Limits() as limits:
        limits.reset(name)
    click.echo(f"reset concurrency limit {name!r}: no slot taken")


# -- Prefect's spelling for global limits: prefect gcl ... ----------------------------------


@cli.group("gcl")
def gcl() -> None:
    """Prefect's name for the same limits: gcl create NAME --limit N, ls, inspect, delete, enable, disable."""


@gcl.command("create")
@click.argument("name")
@click.option("--limit", "-l", "limit", type=click.IntRange(min=0), required=True, help="The number of slots.")
@_DECAY
@click.option("--disable", is_flag=True, help="Create it inactive (it limits nothing until enabled).")
@_friendly_errors
def gcl_create(name: str, limit: int, decay: float | None, disable: bool) -> None:
    """Create the limit NAME (or change its number of slots)."""
    with _Limits() as limits:
        made = limits.create(name, limit, decay)
        if disable:
            made = limits.set_active(name, False)
    click.echo(f"concurrency limit {made['name']!r}: {made['limit']} slot(s)")


@gcl.command("update")
@click.argument("name")
@click.option("--limit", "-l", "limit", type=click.IntRange(min=0), help="The new number of slots.")
@_DECAY
@click.option("--enable/--disable", "active", default=None, help="Make it limit again, or stop it limiting.")
@_friendly_errors
def gcl_update(name: str, limit: int | None, decay: float | None, active: bool | None) -> None:
    """Change a limit's slots, decay or state."""
    with _Limits() as limits:
        current = limits.get(name)
        if limit is not None or decay is not None:
            limits.create(name, current["limit"] if limit is None else limit,
                          current["slot_decay_per_second"] if decay is None else decay)
        if active is not None:
            limits.set_active(name, active)
        made = limits.get(name)
    click.echo(f"concurrency limit {made['name']!r}: {made['limit']} slot(s)"
               + ("" if made["active"] else ", disabled"))


gcl.add_command(ls, "ls")
gcl.add_command(inspect, "inspect")
gcl.add_command(delete, "delete")
gcl.add_command(reset, "reset")


def _toggle(active: bool) -> Any:
    @click.argument("name")
    @_friendly_errors
    def command(name: str) -> None:
        with _Limits() as limits:
            limits.set_active(name, active)
        click.echo(f"concurrency limit {name!r} {'enabled' if active else 'disabled'}")

    command.__doc__ = "Make the limit limit again." if active else "Stop the limit limiting (its slots stay counted)."
    return command


gcl.command("enable")(_toggle(True))
gcl.command("disable")(_toggle(False))
