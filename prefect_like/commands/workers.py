"""``prefect-like worker ...`` and ``work-pool ...``: the processes that run deployments' flow runs.

    prefect-like worker start --pool P [--runner dask --address tcp://HOST:8786 | --runner ray --address ADDR]
                              [--limit N] [--name W]
    prefect-like worker ls [--pool P]
    prefect-like work-pool ls
    prefect-like work-pool set-limit P N     at most N runs of the pool at once, over all its workers
"""

from __future__ import annotations

import click

from prefect_like.cli import _console, _friendly_errors, _print_json, cli


@cli.group()
def worker() -> None:
    """Workers: run the flow runs of a work pool."""


@worker.command("start")
@click.option("--pool", "-p", required=True, help="The work pool to take runs from.")
@click.option("--runner", help="Run every flow on this task runner (dask, ray, thread, ...).")
@click.option("--address", help="With --runner dask or ray: the cluster's address.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many runs at once on this worker.")
@click.option("--name", help="The worker's name [default: HOST-PID].")
@_friendly_errors
def worker_start(pool: str, runner: str | None, address: str | None, limit: int | None, name: str | None) -> None:
    """Poll the tracking server for the pool's runs and run each in a subprocess, until Ctrl-C."""
    from prefect_like.worker import Worker

    Worker(pool, name=name, limit=limit, runner=runner, address=address).run()


@worker.command("ls")
@click.option("--pool", help="Only workers of this pool.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def worker_ls(pool: str | None, as_json: bool) -> None:
    """Workers the server has heard from, and when it last did."""
    from prefect_like.deployments import DeploymentClient

    with DeploymentClient() as client:
        found = client.list_workers(pool)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no workers yet; start one with `prefect-like worker start --pool P`")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("POOL", "NAME", "HOST", "LAST SEEN", "RUNNING", "STATUS"):
        table.add_column(column, no_wrap=True)
    for w in found:
        table.add_row(w["work_pool"], w["name"], w["host"] or "", f"{w['seconds_since_seen']:g} s ago",
                      str(w["running"] or 0), "online" if w["online"] else "offline")
    _console().print(table)


@cli.group("work-pool")
def work_pool() -> None:
    """Work pools: the queues workers take runs from."""


@work_pool.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def work_pool_ls(as_json: bool) -> None:
    """Pools with deployments or workers, their limits and runs waiting."""
    from prefect_like.deployments import DeploymentClient

    with DeploymentClient() as client:
        found = client.list_pools()
    if as_json:
        _print_json(found)
        return
    for p in found:
        limit = p["concurrency_limit"]
        click.echo(f"{p['name']}  limit {'none' if limit is None else limit}  {p['queued']} waiting")
    if not found:
        click.echo("no work pools yet")


@work_pool.command("set-limit")
@click.argument("pool")
@click.argument("limit", type=click.IntRange(min=0), required=False)
@_friendly_errors
def work_pool_set_limit(pool: str, limit: int | None) -> None:
    """At most LIMIT runs of POOL at once over all its workers (no LIMIT: none)."""
    from prefect_like.deployments import DeploymentClient

    with DeploymentClient() as client:
        client.set_pool_limit(pool, limit)
    click.echo(f"Work pool {pool!r}: " + (f"at most {limit} run(s) at once" if limit is not None else "no limit"))
