"""The tracking API's routes for searches: reported metrics and sweeps.

- ``GET /api/task-runs/{id}/metrics`` and ``GET /api/flow-runs/{id}/metrics``: what a task run
  (or every task run of a flow run) reported with ``sweep.report``, by run then step, one page.
- ``GET /api/sweeps``: sweeps, newest first, one page with its ``total``.
- ``GET /api/sweeps/{id_or_name}``: a sweep (by id, unique id prefix, or name: the newest of
  that name) with its flow runs, the first and every resume.

Filtering a sweep's trials by parameter and metric is ``where=`` on the task-run list
(``/api/flow-runs/{id}/task-runs``, ``tracking.where``). Metrics and sweeps arrive with the
events (``POST /api/events``, kinds ``metric`` and ``sweep``); no route writes them alone.
Reads go through the app's ``Tracker`` (unknown ids 404, bad input 422).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from prefect_like.tracking.store import Store

IdParam = Annotated[str, PathParam(min_length=1, max_length=200, description="id or unique id prefix")]
SweepParam = Annotated[str, PathParam(min_length=1, max_length=500, description="id, unique id prefix or name")]
Limit = Annotated[int, Query(ge=0, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=2**62)]

router = APIRouter(prefix="/api", tags=["sweeps"])


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value, default=str), media_type="application/json")


def _read(request: Request, fn: Any) -> Any:
    return request.app.state.tracker.read(fn)


@router.get("/task-runs/{task_run_id}/metrics")
def task_run_metrics(request: Request, task_run_id: IdParam, limit: Limit = 1000, offset: Offset = 0) -> Response:
    """What the task run reported, in step order."""

    def read(s: Store) -> dict[str, Any]:
        return {"items": s.metrics(task_run_id=task_run_id, limit=limit, offset=offset), "limit": limit,
                "offset": offset}

    return _json(_read(request, read))


@router.get("/flow-runs/{flow_run_id}/metrics")
def flow_run_metrics(request: Request, flow_run_id: IdParam, limit: Limit = 1000, offset: Offset = 0) -> Response:
    """What the flow run's task runs reported, by task run then step."""

    def read(s: Store) -> dict[str, Any]:
        return {"items": s.metrics(flow_run_id=flow_run_id, limit=limit, offset=offset), "limit": limit,
                "offset": offset}

    return _json(_read(request, read))


@router.get("/sweeps")
def list_sweeps(request: Request, limit: Limit = 50, offset: Offset = 0) -> Response:
    """Sweeps, newest first, with the total."""

    def read(s: Store) -> dict[str, Any]:
        return {"items": s.list_sweeps(limit=limit, offset=offset), "total": s.count_sweeps(),
                "limit": limit, "offset": offset}

    return _json(_read(request, read))


@router.get("/sweeps/{sweep}")
def get_sweep(request: Request, sweep: SweepParam) -> Response:
    """A sweep with its flow runs (``runs``), oldest first."""
    return _json(_read(request, lambda s: s.get_sweep(sweep)))


__all__ = ["router"]
