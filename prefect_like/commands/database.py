"""``prefect-like server database ...``: the tracking server's store as a whole.

    prefect-like server database upgrade [--url URL]             bring the schema to this version's
    prefect-like server database copy --from URL --to URL        copy a store into a PostgreSQL one

URLs are ``sqlite:///path/to/prefect_like.db`` or ``postgresql://user:password@host/db``; without
``--url``, ``upgrade`` works on the server's own store (PREFECT_LIKE_DATABASE_URL, else the
SQLite file under PREFECT_LIKE_HOME). See ``prefect_like.tracking.databases``.
"""

from __future__ import annotations

import click

from prefect_like import settings
from prefect_like.cli import _friendly_errors, server


@server.group("database")
def database() -> None:
    """The server's store: upgrade its schema, copy it to PostgreSQL."""


@database.command("upgrade")
@click.option("--url", help="The store [default: PREFECT_LIKE_DATABASE_URL, else the SQLite file in PREFECT_LIKE_HOME].")
@_friendly_errors
def upgrade(url: str | None) -> None:
    """Bring the store's schema to this version's; safe to run again, and while servers run."""
    from prefect_like.tracking import databases

    url = databases.resolve(url or settings.database_url())
    before, after = databases.upgrade(url)
    where = databases.describe(url)
    if before == after:
        click.echo(f"{where}: schema {after}, already up to date")
    elif before == 0:
        click.echo(f"{where}: created at schema {after}")
    else:
        click.echo(f"{where}: upgraded from schema {before} to {after}")


@database.command("copy")
@click.option("--from", "source", required=True, metavar="URL", help="The store to copy, e.g. sqlite:///~/.prefect_like/prefect_like.db.")
@click.option("--to", "target", required=True, metavar="URL", help="The PostgreSQL store to copy into: postgresql://...")
@_friendly_errors
def copy(source: str, target: str) -> None:
    """Copy every table of one store into a PostgreSQL store. Rows the target holds already
    are kept, so running it again copies only what is missing."""
    from prefect_like.tracking import databases

    source = databases.resolve(source)
    target = databases.resolve(target)
    if not databases.is_postgres(source) and not databases.sqlite_path(source).exists():
        raise click.ClickException(f"--from {source}: no such file")
    shown: dict[str, int] = {}

    def progress(table: str, rows: int) -> None:
        if rows >= shown.get(table, 0) + 100_000:
            shown[table] = rows
            click.echo(f"  {table}: {rows:,} rows", err=True)

    done = databases.copy(source, target, progress)
    for table, read in done.read.items():
        if read:
            click.echo(f"{table}: {read:,} rows read, {done.added[table]:,} new")
    for table, n in done.dropped.items():
        click.echo(f"{table}: {n:,} rows left out (a value PostgreSQL cannot hold where one is required)")
    for table in done.skipped:
        click.echo(f"{table}: skipped (the target has rows already and the table has no key to match them by)")
    click.echo(f"copied {databases.describe(source)} into {databases.describe(target)}")
