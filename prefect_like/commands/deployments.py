"""``prefect-like deploy``, ``deployment ...``, ``runs cancel`` and ``notify ...``: deployments on the
tracking server (see ``prefect_like.deployments``).

    prefect-like deploy FILE.py:FLOW --name N --pool P [--cron EXPR [--timezone TZ] | --interval S | --at TIME]
                 [--param k=v ...] [--tag T ...] [--retries N]
    prefect-like deployment ls | show NAME | runs [NAME] [--upcoming] | pause NAME | resume NAME | delete NAME
    prefect-like deployment run NAME [--param k=v ...] [--wait [--timeout S]]
    prefect-like runs cancel ID
    prefect-like notify create --on failed [--on crashed ...] --webhook URL [--flow NAME | --tag T | --deployment N]
    prefect-like notify ls | delete ID

All of them talk to the server at PREFECT_LIKE_API_URL; without one they say so in one line.
"""

from __future__ import annotations

from typing import Any

import click

from prefect_like.cli import _console, _friendly_errors, _print_json, cli, runs


def _client() -> Any:
    from prefect_like.deployments import DeploymentClient

    return DeploymentClient()


def _schedule_text(deployment: dict[str, Any]) -> str:
    from prefect_like.deployments import _describe

    parts = [_describe(s) + ("" if s["active"] else " (inactive)") for s in deployment["schedules"]]
    return ", ".join(parts) or "-"


@cli.command("deploy")
@click.argument("target", metavar="FILE.py:FLOW")
@click.option("--name", "-n", required=True, help="The deployment's name (a new one, or one to replace).")
@click.option("--pool", "-p", "work_pool", required=True, help="The work pool whose workers run it.")
@click.option("--cron", help="A cron schedule, e.g. '0 3 * * *'.")
@click.option("--timezone", help="The cron schedule's IANA time zone, e.g. Europe/Paris [default: UTC].")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), help="Run every this many seconds.")
@click.option("--at", help="Run once, at this ISO 8601 time.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A default parameter (JSON if it parses).")
@click.option("--tag", "tags", multiple=True, help="A tag (notifications can select by it).")
@click.option("--retries", default=0, show_default=True, type=click.IntRange(0, 100),
              help="How many times a run whose process died (Crashed) is run again.")
@click.option("--json", "as_json", is_flag=True, help="Print the deployment as JSON.")
@_friendly_errors
def deploy_command(
    target: str, name: str, work_pool: str, cron: str | None, timezone: str | None, interval: float | None,
    at: str | None, params: tuple[str, ...], tags: tuple[str, ...], retries: int, as_json: bool,
) -> None:
    """Store a flow as a deployment on the tracking server, for workers to run."""
    from pathlib import Path

    from prefect_like.deployments import deployment_spec, entrypoint_of
    from prefect_like.runfile import load_flow, parse_params

    flow_obj = load_flow(target)
    path_text, _, attr = target.rpartition(":")
    if path_text and path_text.endswith(".py"):
        entrypoint = f"{Path(path_text).expanduser().resolve()}:{attr}"
    else:
        entrypoint = entrypoint_of(flow_obj)
    try:
        spec = deployment_spec(
            flow_obj, name, work_pool=work_pool, parameters=parse_params(params), cron=cron, interval=interval,
            timezone=timezone, at=at, tags=tags, retries=retries, entrypoint=entrypoint,
        )
    except TypeError as exc:  # ParameterTypeError too
        raise click.ClickException(str(exc)) from None
    with _client() as client:
        deployment = client.put_deployment(spec)
    if as_json:
        _print_json(deployment)
        return
    click.echo(f"Deployment {deployment['name']!r} of flow {deployment['flow_name']!r} stored: pool "
               f"{deployment['work_pool']!r}, schedule {_schedule_text(deployment)}.")
    click.echo(f"Run it with `prefect-like deployment run {deployment['name']}`; a worker runs it: "
               f"`prefect-like worker start --pool {deployment['work_pool']}`.")


@cli.group()
def deployment() -> None:
    """Deployments on the tracking server: list, trigger, pause."""


@deployment.command("ls")
@click.option("--pool", "work_pool", help="Only deployments of this work pool.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def deployment_ls(work_pool: str | None, as_json: bool) -> None:
    """Deployments, by name."""
    with _client() as client:
        found = client.list_deployments(work_pool)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no deployments yet; make one with `prefect-like deploy FILE.py:FLOW --name N --pool P`")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "FLOW", "POOL", "SCHEDULE", "NEXT RUN", "PAUSED"):
        table.add_column(column, no_wrap=True)
    for d in found:
        table.add_row(d["name"], d["flow_name"], d["work_pool"], _schedule_text(d), d["next_run"] or "-",
                      "yes" if d["paused"] else "")
    _console().print(table)


@deployment.command("show")
@click.argument("name")
@_friendly_errors
def deployment_show(name: str) -> None:
    """A deployment as JSON, with its schedules."""
    with _client() as client:
        _print_json(client.get_deployment(name))


@deployment.command("run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (JSON if it parses).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless it completes.")
@click.option("--timeout", type=click.FloatRange(min=0), help="With --wait: give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the flow run as JSON.")
@_friendly_errors
def deployment_run(name: str, params: tuple[str, ...], wait: bool, timeout: float | None, as_json: bool) -> None:
    """Trigger a run of a deployment; a worker of its pool runs it."""
    from prefect_like.deployments import run_deployment
    from prefect_like.runfile import parse_params

    run = run_deployment(name, parse_params(params), timeout=(timeout or float("inf")) if wait else None)
    if as_json:
        _print_json(run)
    else:
        state = run.get("state_name") or run.get("state")
        click.echo(f"Flow run {run['id']} of deployment {name!r}: {state}")
    if wait and run.get("state") != "COMPLETED":
        raise SystemExit(1)


@deployment.command("runs")
@click.argument("name", required=False)
@click.option("--upcoming", is_flag=True, help="Only runs not started yet, soonest first.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly_errors
def deployment_runs(name: str | None, upcoming: bool, limit: int, as_json: bool) -> None:
    """Flow runs of a deployment (or of all), latest first, or the upcoming ones."""
    with _client() as client:
        found = client.deployment_runs(name, upcoming=upcoming, limit=limit)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no runs")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "DEPLOYMENT", "SCHEDULED", "STATE", "ATTEMPT", "WORKER"):
        table.add_column(column, no_wrap=True)
    for r in found:
        table.add_row(r["id"], r["deployment"] or "?", r["scheduled_time"] or "", r["state_name"] or "",
                      str(r["attempt"]), r["worker"] or "")
    _console().print(table)


def _pause(name: str, paused: bool) -> None:
    with _client() as client:
        d = client.pause(name, paused)
    click.echo(f"Deployment {d['name']!r} {'paused: its schedules make no runs' if paused else 'resumed'}")


@deployment.command("pause")
@click.argument("name")
@_friendly_errors
def deployment_pause(name: str) -> None:
    """Pause a deployment's schedules (its runs not started yet are withdrawn)."""
    _pause(name, True)


@deployment.command("resume")
@click.argument("name")
@_friendly_errors
def deployment_resume(name: str) -> None:
    """Resume a paused deployment's schedules, from now."""
    _pause(name, False)


@deployment.command("delete")
@click.argument("name")
@_friendly_errors
def deployment_delete(name: str) -> None:
    """Delete a deployment; its runs not started yet are cancelled, its past runs kept."""
    with _client() as client:
        gone = client.delete_deployment(name)
    click.echo(f"Deployment {gone['name']!r} deleted ({gone['cancelled_runs']} run(s) not started cancelled)")


@runs.command("cancel")
@click.argument("flow_run_id")
@click.option("--reason", help="Said in the run's Cancelled state.")
@_friendly_errors
def runs_cancel(flow_run_id: str, reason: str | None) -> None:
    """Cancel a flow run: at once if it has not started, else within seconds, as Ctrl-C would."""
    with _client() as client:
        answer = client.cancel(flow_run_id, reason)
    if answer["cancelling"]:
        click.echo(f"Flow run {answer['id']}: cancellation requested; its process ends it CANCELLED within seconds")
    elif answer["state"] == "CANCELLED":
        click.echo(f"Flow run {answer['id']} is CANCELLED")
    else:
        click.echo(f"Flow run {answer['id']} had already ended {answer['state_name']}; nothing to cancel")


@cli.group()
def notify() -> None:
    """Webhooks the tracking server calls when flow runs fail, crash or are late."""


@notify.command("create")
@click.option("--on", "states", multiple=True, required=True,
              type=click.Choice(["failed", "crashed", "late", "cancelled", "completed", "timedout"], case_sensitive=False),
              help="A state that triggers it (repeat for several).")
@click.option("--webhook", required=True, help="The URL that gets a JSON POST.")
@click.option("--flow", "flow_name", help="Only runs of this flow.")
@click.option("--tag", help="Only flow runs with this tag (their deployment's, or of `with tags(...)` around the call).")
@click.option("--deployment", help="Only runs of this deployment.")
@_friendly_errors
def notify_create(states: tuple[str, ...], webhook: str, flow_name: str | None, tag: str | None,
                  deployment: str | None) -> None:
    """Call a webhook when a matching flow run ends in one of these states."""
    with _client() as client:
        made = client.create_notification(
            {"states": list(states), "webhook": webhook, "flow_name": flow_name, "tag": tag, "deployment": deployment}
        )
    click.echo(f"Notification {made['id']} created: on {', '.join(made['on'])} -> {made['webhook']}")


@notify.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def notify_ls(as_json: bool) -> None:
    """Notifications (webhook URLs shown without their secrets)."""
    with _client() as client:
        found = client.list_notifications()
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no notifications")
    for n in found:
        scope = " ".join(f"{k}={n[k]}" for k in ("flow_name", "tag", "deployment_id") if n[k]) or "every flow"
        click.echo(f"{n['id']}  on {','.join(n['on'])}  {scope}  -> {n['webhook']}")


@notify.command("delete")
@click.argument("notification_id")
@_friendly_errors
def notify_delete(notification_id: str) -> None:
    with _client() as client:
        gone = client.delete_notification(notification_id)
    click.echo(f"Notification {gone['id']} deleted")

