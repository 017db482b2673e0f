"""The tracking API's deployment routes: deployments and their runs, work pools, workers,
cancellation and notifications; and the server's scheduler loop (this router's lifespan).

- ``POST /api/deployments``: make or replace a deployment (by name); ``GET /api/deployments``,
  ``GET|DELETE /api/deployments/{name_or_id}``, ``POST .../pause`` and ``.../resume``.
- ``POST /api/deployments/{name_or_id}/runs`` ``{"parameters": {...}}``: trigger a run (201);
  parameters the flow's signature does not take get 422 with the reason, and make nothing.
- ``GET /api/deployments/{name_or_id}/runs`` (``?upcoming=true``), ``GET /api/deployment-runs``.
- ``POST /api/work-pools/{pool}/claim`` ``{"worker", "limit"}``: due runs, claimed once;
  ``POST /api/work-pools/{pool}/heartbeat`` ``{"worker", "running"}``: answers the
  cancellation requests for those runs; ``PUT /api/work-pools/{pool}`` ``{"concurrency_limit"}``;
  ``GET /api/work-pools``, ``GET /api/workers``.
- ``POST /api/flow-runs/{id}/cancel``; ``POST /api/flow-runs/{id}/crashed`` (a worker's report
  that the run's process ended without a final state).
- ``POST|GET /api/notifications``, ``DELETE /api/notifications/{id}``.

Everything goes through one ``Control`` (``tracking.control``) over the server's store,
kept on ``app.state.control``. The scheduler loop calls ``Control.tick`` every
``PREFECT_LIKE_SCHEDULER_SECONDS`` (1 s) on a thread, and sends the notifications it returns on
another, so a slow webhook never delays a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from prefect_like import settings
from prefect_like.server.schemas import Problem
from prefect_like.tracking.control import Control

log = logging.getLogger("prefect_like.server")

T = TypeVar("T")
NameParam = Annotated[str, PathParam(min_length=1, max_length=200)]


def control_of(app: Any) -> Control:
    """The app's ``Control``, opened on first use over the tracker's store (SQLite or PostgreSQL)."""
    control = getattr(app.state, "control", None)
    if control is None:
        tracker = app.state.tracker
        if getattr(tracker, "postgres", False):
            from prefect_like.tracking import postgres

            control = app.state.control = postgres.control(tracker.url)
        else:
            control = app.state.control = Control(tracker.path)
    return control


def cancellations(app: Any, events: list[Any]) -> dict[str, str]:
    """The cancellation requests for the flow runs a batch of events is about (read from memory):
    what the answer to ``POST /api/events`` tells the flow's process."""
    control = getattr(app.state, "control", None)
    if control is None or not control.cancelling:
        return {}
    return control.cancels_for({event[1] for event in events if event[0] in ("flow", "heartbeat")})


@contextlib.asynccontextmanager
async def scheduler(app: FastAPI) -> AsyncIterator[None]:
    """The scheduler loop, for as long as the app runs."""
    task = asyncio.create_task(_schedule_forever(app))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        control = getattr(app.state, "control", None)
        if control is not None:
            app.state.control = None  # an app started again opens a new one
            control.close()


async def _schedule_forever(app: FastAPI) -> None:
    from prefect_like import notify

    interval = settings.float_setting("SCHEDULER_SECONDS", 1.0)
    ticks = ThreadPoolExecutor(1, thread_name_prefix="prefect-like-scheduler")
    senders = ThreadPoolExecutor(4, thread_name_prefix="prefect-like-notify")
    loop = asyncio.get_running_loop()
    failing = False
    try:
        while True:
            try:
                control = control_of(app)
                due = await loop.run_in_executor(ticks, control.tick)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("the scheduler could not run (%s: %s); trying again", type(exc).__name__, exc)
                failing = True
                due = []
            for webhook, body in due:
                senders.submit(notify.send, webhook, body)
            await asyncio.sleep(interval)
    finally:
        ticks.shutdown(wait=False, cancel_futures=True)
        senders.shutdown(wait=False, cancel_futures=True)


router = APIRouter(prefix="/api", lifespan=scheduler)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value, default=str), status_code=status, media_type="application/json")


def _do(request: Request, fn: Callable[[Control], T]) -> T:
    try:
        return fn(control_of(request.app))
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(422, "the request body must be a JSON object")
    return body


# -- deployments ---------------------------------------------------------------------------


@router.post("/deployments", tags=["deployments"], status_code=201)
async def put_deployment(request: Request) -> Response:
    """Make a deployment, or replace the one of that name (its runs and id are kept)."""
    body = await _body(request)
    return _json(await _threaded(request, lambda c: c.put_deployment(body)), 201)


@router.get("/deployments", tags=["deployments"])
def list_deployments(request: Request, work_pool: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    return _json(_do(request, lambda c: c.list_deployments(work_pool)))


@router.get("/deployments/{name_or_id}", tags=["deployments"])
def get_deployment(request: Request, name_or_id: NameParam) -> Response:
    return _json(_do(request, lambda c: c.get_deployment(name_or_id)))


@router.delete("/deployments/{name_or_id}", tags=["deployments"])
def delete_deployment(request: Request, name_or_id: NameParam) -> Response:
    """Delete a deployment; its runs not started yet are cancelled, the others kept."""
    return _json(_do(request, lambda c: c.delete_deployment(name_or_id)))


@router.post("/deployments/{name_or_id}/pause", tags=["deployments"])
def pause_deployment(request: Request, name_or_id: NameParam) -> Response:
    return _json(_do(request, lambda c: c.set_paused(name_or_id, True)))


@router.post("/deployments/{name_or_id}/resume", tags=["deployments"])
def resume_deployment(request: Request, name_or_id: NameParam) -> Response:
    return _json(_do(request, lambda c: c.set_paused(name_or_id, False)))


@router.post("/deployments/{name_or_id}/runs", tags=["deployments"], status_code=201)
async def create_run(request: Request, name_or_id: NameParam) -> Response:
    """Trigger a run: ``{"parameters": {...}}`` over the deployment's own, validated against the
    flow's signature (422 with the reason otherwise)."""
    body = await _body(request)
    parameters = body.get("parameters") or {}
    return _json(await _threaded(request, lambda c: c.create_run(name_or_id, parameters)), 201)


@router.get("/deployments/{name_or_id}/runs", tags=["deployments"])
def deployment_runs(
    request: Request, name_or_id: NameParam, upcoming: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    return _json(_do(request, lambda c: c.list_runs(name_or_id, upcoming=upcoming, limit=limit)))


@router.get("/deployment-runs", tags=["deployments"])
def all_deployment_runs(
    request: Request, upcoming: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> Response:
    return _json(_do(request, lambda c: c.list_runs(None, upcoming=upcoming, limit=limit)))


@router.get("/deployment-runs/{flow_run_id}", tags=["deployments"])
def deployment_run(request: Request, flow_run_id: NameParam) -> Response:
    return _json(_do(request, lambda c: c.get_run(flow_run_id)))


# -- work pools and workers ----------------------------------------------------------------


async def _threaded(request: Request, fn: Callable[[Control], T]) -> T:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(_do, request, fn)


@router.post("/work-pools/{pool}/claim", tags=["workers"])
async def claim(request: Request, pool: NameParam) -> Response:
    """Due runs of the pool, each claimed by this worker and no other."""
    body = await _body(request)
    limit = body.get("limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 1000:
        raise Problem(422, f"limit must be a whole number from 0 to 1000, got {limit!r}")
    worker = body.get("worker")
    return _json(await _threaded(request, lambda c: c.claim(pool, worker, limit)))  # type: ignore[arg-type]


@router.post("/work-pools/{pool}/heartbeat", tags=["workers"])
async def heartbeat(request: Request, pool: NameParam) -> Response:
    body = await _body(request)
    running = body.get("running") or []
    if not isinstance(running, list) or not all(isinstance(i, str) for i in running):
        raise Problem(422, "running must be a list of flow run ids")
    return _json(await _threaded(request, lambda c: c.heartbeat(
        pool, body.get("worker"), running, body.get("host"), body.get("pid"))))  # type: ignore[arg-type]


@router.put("/work-pools/{pool}", tags=["workers"])
async def set_pool(request: Request, pool: NameParam) -> Response:
    body = await _body(request)
    return _json(await _threaded(request, lambda c: c.set_pool_limit(pool, body.get("concurrency_limit"))))


@router.get("/work-pools", tags=["workers"])
def list_pools(request: Request) -> Response:
    return _json(_do(request, lambda c: c.list_pools()))


@router.get("/workers", tags=["workers"])
def list_workers(request: Request, work_pool: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    return _json(_do(request, lambda c: c.list_workers(work_pool)))


# -- cancellation --------------------------------------------------------------------------


@router.post("/flow-runs/{flow_run_id}/cancel", tags=["flow runs"])
async def cancel(request: Request, flow_run_id: NameParam) -> Response:
    """Ask a flow run to end CANCELLED: at once if it has not started, else its process sees
    the request within seconds and ends it as Ctrl-C would."""
    body = await _body(request)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise Problem(422, "reason must be text")
    return _json(await _threaded(request, lambda c: c.request_cancel(flow_run_id, reason)))


@router.post("/flow-runs/{flow_run_id}/crashed", tags=["workers"])
async def crashed(request: Request, flow_run_id: NameParam) -> Response:
    body = await _body(request)
    message = str(body.get("message") or "Crashed: its process ended without a final state")[:10_000]
    ended = await _threaded(request, lambda c: c.report_crash(flow_run_id, message))
    return _json({"id": flow_run_id, "crashed": ended})


# -- notifications -------------------------------------------------------------------------


@router.post("/notifications", tags=["notifications"], status_code=201)
async def create_notification(request: Request) -> Response:
    body = await _body(request)
    return _json(await _threaded(request, lambda c: c.create_notification(body)), 201)


@router.get("/notifications", tags=["notifications"])
def list_notifications(request: Request) -> Response:
    return _json(_do(request, lambda c: c.list_notifications()))


@router.delete("/notifications/{notification_id}", tags=["notifications"])
def delete_notification(request: Request, notification_id: NameParam) -> Response:
    return _json(_do(request, lambda c: c.delete_notification(notification_id)))
