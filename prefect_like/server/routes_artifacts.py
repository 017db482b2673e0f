"""The tracking API's artifact routes: what flow and task runs published, newest first.

- ``GET /api/artifacts``: every artifact, or those of one ``key``, ``flow_run_id`` or
  ``task_run_id``, one page with its ``total``.
- ``GET /api/artifacts/{key_or_id}``: one artifact by id (or unique id prefix), else the latest
  of a key, with ``versions`` (how many artifacts have its key).
- ``GET /api/flow-runs/{id}/artifacts`` and ``GET /api/task-runs/{id}/artifacts``: a run's,
  a flow run's including its task runs'.
- ``GET /api/flow-runs/{id}/task-tags``: the tags its task runs have (the dashboard's tag filter;
  ``tags=`` on the task-run list filters by them).

Artifacts arrive with the events (``POST /api/events``, kind ``artifact``); there is no route
that writes one alone. Reads go through the app's ``Tracker`` (unknown ids 404, bad input 422).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from prefect_like.tracking.store import Store

IdParam = Annotated[str, PathParam(min_length=1, max_length=200, description="id or unique id prefix")]
Limit = Annotated[int, Query(ge=0, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=2**62)]
KeyQuery = Annotated[str | None, Query(max_length=500, description="the artifact key")]

router = APIRouter(prefix="/api", tags=["artifacts"])


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value, default=str), media_type="application/json")


def _page(
    request: Request, key: str | None, flow_run_id: str | None, task_run_id: str | None,
    limit: int, offset: int,
) -> Response:
    def read(s: Store) -> dict[str, Any]:
        items = s.list_artifacts(key, flow_run_id, task_run_id, limit=limit, offset=offset)
        total = s.count_artifacts(key, flow_run_id, task_run_id)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    return _json(request.app.state.tracker.read(read))


@router.get("/artifacts")
def list_artifacts(
    request: Request,
    key: KeyQuery = None,
    flow_run_id: Annotated[str | None, Query(max_length=200)] = None,
    task_run_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Artifacts, newest first, with the total matching the filters."""
    return _page(request, key, flow_run_id, task_run_id, limit, offset)


@router.get("/artifacts/{key_or_id}")
def get_artifact(request: Request, key_or_id: IdParam) -> Response:
    """An artifact by id or unique id prefix, else the latest artifact of a key."""
    return _json(request.app.state.tracker.read(lambda s: s.get_artifact(key_or_id)))


@router.get("/flow-runs/{flow_run_id}/artifacts")
def flow_run_artifacts(request: Request, flow_run_id: IdParam, limit: Limit = 100, offset: Offset = 0) -> Response:
    """A flow run's artifacts, its task runs' included, newest first."""
    return _page(request, None, flow_run_id, None, limit, offset)


@router.get("/task-runs/{task_run_id}/artifacts")
def task_run_artifacts(request: Request, task_run_id: IdParam, limit: Limit = 100, offset: Offset = 0) -> Response:
    """A task run's artifacts, newest first."""
    return _page(request, None, None, task_run_id, limit, offset)


@router.get("/flow-runs/{flow_run_id}/task-tags", tags=["flow runs"])
def task_tags(
    request: Request, flow_run_id: IdParam, limit: Annotated[int, Query(ge=1, le=10_000)] = 500
) -> Response:
    """The tags the flow run's task runs have, sorted (for a tag filter)."""
    return _json(request.app.state.tracker.read(lambda s: s.task_tags(flow_run_id, limit=limit)))
