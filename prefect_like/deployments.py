"""Deployments: a flow stored on the tracking server, to be run there by workers, on a schedule
or when triggered, with nobody at a terminal.

    my_flow.deploy("nightly", work_pool="gpu", cron="0 3 * * *", timezone="Europe/Paris")
    prefect-like deploy sweep.py:my_flow --name nightly --pool gpu --cron "0 3 * * *"
    prefect-like worker start --pool gpu --runner dask --address tcp://scheduler:8786
    run_deployment("nightly", parameters={"n": 100}, timeout=600)   # waits for the result

What a deployment holds (``tracking.control`` stores it): the flow's name; its **entrypoint**,
``/abs/path/file.py:function`` or ``package.module:function``, which the worker imports (no
image is built: the code must be at that path, or importable, on the worker's machine); its
work pool; default parameters, checked now against the flow's signature and stored with its
JSON schema so the server can refuse bad ones at trigger time (422); tags; schedules; and
``retries``: how many times a run whose process died (Crashed) is run again.

A deployment needs a tracking server (``prefect-like server start`` and PREFECT_LIKE_API_URL):
the server makes the scheduled runs and hands them to workers; with the embedded store there is
no process that would. ``flow.serve`` is the one-process form: it deploys the flow to a pool of
its own and runs a worker on it in the same process, so the flow runs on its schedule and when
triggered, for as long as ``serve`` runs.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_like import settings
from prefect_like.client import Client, _quote
from prefect_like.errors import TrackingError

if TYPE_CHECKING:
    from prefect_like.flows import Flow

NEEDS_SERVER = (
    "deployments need a tracking server: start one with `prefect-like server start` and set "
    "PREFECT_LIKE_API_URL (e.g. http://127.0.0.1:4300/api)"
)


class DeploymentClient(Client):
    """The deployment routes of the tracking API (``server.routes_deployments``)."""

    def __init__(self, url: str | None = None, **kwargs: Any) -> None:
        if not (url or settings.api_url()):
            raise TrackingError(NEEDS_SERVER)
        super().__init__(url, **kwargs)

    def __enter__(self) -> DeploymentClient:
        return self

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, json=body or {})

    def put_deployment(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._post("/deployments", spec)

    def list_deployments(self, work_pool: str | None = None) -> list[dict[str, Any]]:
        return self._get("/deployments", work_pool=work_pool)

    def get_deployment(self, name: str) -> dict[str, Any]:
        return self._get(f"/deployments/{_quote(name)}")

    def delete_deployment(self, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/deployments/{_quote(name)}")

    def pause(self, name: str, paused: bool = True) -> dict[str, Any]:
        return self._post(f"/deployments/{_quote(name)}/{'pause' if paused else 'resume'}")

    def create_run(self, name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._post(f"/deployments/{_quote(name)}/runs", {"parameters": parameters or {}})

    def deployment_runs(self, name: str | None = None, upcoming: bool = False, limit: int = 50) -> list[dict[str, Any]]:
        path = f"/deployments/{_quote(name)}/runs" if name else "/deployment-runs"
        return self._get(path, upcoming=str(upcoming).lower(), limit=limit)

    def claim(self, pool: str, worker: str, limit: int) -> list[dict[str, Any]]:
        return self._post(f"/work-pools/{_quote(pool)}/claim", {"worker": worker, "limit": limit})

    def heartbeat(self, pool: str, worker: str, running: Sequence[str], host: str, pid: int) -> dict[str, Any]:
        return self._post(f"/work-pools/{_quote(pool)}/heartbeat",
                          {"worker": worker, "running": list(running), "host": host, "pid": pid})

    def report_crash(self, flow_run_id: str, message: str) -> dict[str, Any]:
        return self._post(f"/flow-runs/{_quote(flow_run_id)}/crashed", {"message": message})

    def set_pool_limit(self, pool: str, limit: int | None) -> dict[str, Any]:
        return self._request("PUT", f"/work-pools/{_quote(pool)}", json={"concurrency_limit": limit})

    def list_pools(self) -> list[dict[str, Any]]:
        return self._get("/work-pools")

    def list_workers(self, pool: str | None = None) -> list[dict[str, Any]]:
        return self._get("/workers", work_pool=pool)

    def cancel(self, flow_run_id: str, reason: str | None = None) -> dict[str, Any]:
        return self._post(f"/flow-runs/{_quote(flow_run_id)}/cancel", {"reason": reason} if reason else {})

    def create_notification(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._post("/notifications", spec)

    def list_notifications(self) -> list[dict[str, Any]]:
        return self._get("/notifications")

    def delete_notification(self, notification_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/notifications/{_quote(notification_id)}")


def entrypoint_of(flow: Flow[..., Any]) -> str:
    """Where a worker finds the flow: ``/abs/path/file.py:name``, the file it is defined in (a
    worker on another machine needs the same path: pass ``entrypoint="package.module:name"``
    for a flow in a package installed there)."""
    fn = flow.fn
    name = fn.__name__
    module = sys.modules.get(fn.__module__)
    if module is None or getattr(module, name, None) is not flow:
        raise ValueError(
            f"flow {flow.name!r} must be defined at the top level of a module or file (as `{name}`) "
            "for a worker to import it"
        )
    path = inspect.getsourcefile(fn)
    if path is None or not Path(path).is_file():
        return f"{fn.__module__}:{name}"
    return f"{Path(path).resolve()}:{name}"


def _schedules(cron: str | None, interval: float | None, timezone: str | None, at: Any) -> list[dict[str, Any]]:
    given = [x for x in (cron, interval, at) if x is not None]
    if len(given) > 1:
        raise ValueError("give one of cron, interval or at")
    if cron is not None:
        return [{"cron": cron, "timezone": timezone or "UTC"}]
    if interval is not None:
        return [{"interval": float(interval.total_seconds() if hasattr(interval, "total_seconds") else interval),
                 "timezone": timezone or "UTC"}]
    if at is not None:
        return [{"at": at.isoformat() if hasattr(at, "isoformat") else at}]
    if timezone is not None:
        raise ValueError("timezone goes with cron")
    return []


def deployment_spec(
    flow: Flow[..., Any], name: str, *, work_pool: str, parameters: dict[str, Any] | None = None,
    cron: str | None = None, interval: float | None = None, timezone: str | None = None, at: Any = None,
    tags: Sequence[str] = (), retries: int = 0, description: str | None = None, entrypoint: str | None = None,
) -> dict[str, Any]:
    """What ``deploy`` sends: parameters checked against the flow's signature now (TypeError
    names the bad one), and the signature's JSON schema for the server to check triggers.

    As in Prefect, a required parameter may be left for each trigger to give (a run triggered
    without it is refused, 422); not with a schedule, whose runs would have nothing to give."""
    parameters = dict(parameters or {})
    schema = flow.parameters.model_dump()
    if any(p.kind is p.VAR_KEYWORD for p in flow.signature.parameters.values()):
        schema["additionalProperties"] = True
    schedules = _schedules(cron, interval, timezone, at)
    unset = [n for n in schema.get("required") or [] if n not in parameters]
    if not unset:
        flow.validate_parameters(parameters)
    elif schedules:
        raise TypeError(f"flow {flow.name!r} has a schedule but no value for its required parameter(s) "
                        f"{', '.join(unset)}: give them with parameters= (--param NAME=VALUE)")
    else:
        from prefect_like.tracking.control import check_parameters

        try:  # the names and types of those given; the rest come with each trigger
            check_parameters({**schema, "required": []}, parameters, flow.name)
        except ValueError as exc:
            raise TypeError(str(exc)) from None
    return {
        "name": name, "flow_name": flow.name, "entrypoint": entrypoint or entrypoint_of(flow),
        "work_pool": work_pool, "parameters": parameters, "parameter_schema": schema,
        "schedules": schedules, "tags": list(tags), "retries": retries,
        "description": description or flow.description,
    }


def deploy(flow: Flow[..., Any], name: str, *, work_pool: str, **options: Any) -> dict[str, Any]:
    """Store ``flow`` as the deployment ``name`` on the tracking server (``Flow.deploy``)."""
    spec = deployment_spec(flow, name, work_pool=work_pool, **options)
    with DeploymentClient() as client:
        return client.put_deployment(spec)


def run_deployment(
    name: str, parameters: dict[str, Any] | None = None, *, timeout: float | None = None,
    poll_interval: float = 0.5,
) -> dict[str, Any]:
    """Trigger a run of deployment ``name`` (Prefect's ``run_deployment``); with ``timeout``
    (seconds; ``float("inf")`` for no limit) wait until it ends and return it as it ended,
    else return it as made (SCHEDULED). ``TimeoutError`` if it has not ended by then."""
    with DeploymentClient() as client:
        run = client.create_run(name, parameters)
        if not timeout:
            return run
        deadline = time.monotonic() + timeout
        while True:
            current = client.get_flow_run(run["id"])
            from prefect_like.states import is_final

            if is_final(current.get("state"), current.get("state_name")):
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"flow run {run['id']} of deployment {name!r} had not ended after {timeout:g} s "
                    f"(it is {current.get('state_name')})"
                )
            time.sleep(poll_interval)


def serve(
    flow: Flow[..., Any], name: str, *, cron: str | None = None, interval: float | None = None,
    timezone: str | None = None, parameters: dict[str, Any] | None = None, tags: Sequence[str] = (),
    retries: int = 0, limit: int | None = None, runner: str | None = None, address: str | None = None,
) -> None:
    """Run ``flow`` on its schedule and whenever deployment ``name`` is triggered, until
    Ctrl-C or SIGTERM (``Flow.serve``): deploys it to the pool ``serve-<name>`` and works that
    pool in this process, each run in a subprocess of its own."""
    from prefect_like.worker import Worker

    spec = deployment_spec(flow, name, work_pool=f"serve-{name}", parameters=parameters, cron=cron,
                           interval=interval, timezone=timezone, tags=tags, retries=retries)
    with DeploymentClient() as client:
        deployment = client.put_deployment(spec)
    schedule = ", ".join(_describe(s) for s in deployment["schedules"]) or "no schedule"
    print(f"Serving deployment {name!r} ({schedule}); trigger it with "
          f"`prefect-like deployment run {name}`. Ctrl-C stops.", flush=True)
    Worker(deployment["work_pool"], limit=limit, runner=runner, address=address, name=f"serve-{name}").run()


def _describe(schedule: dict[str, Any]) -> str:
    if schedule["kind"] == "cron":
        return f"cron {schedule['cron']!r} in {schedule['timezone']}"
    if schedule["kind"] == "interval":
        return f"every {schedule['interval']:g} s"
    return f"once at {schedule.get('anchor')}"


__all__ = ["DeploymentClient", "deploy", "deployment_spec", "entrypoint_of", "run_deployment", "serve"]
