"""The tracking API's concurrency routes: limits every flow on this server shares, and the
slots their runs take.

- ``GET /api/concurrency/limits``, ``GET /api/concurrency/limits/{name}``: limits with the slots
  taken now and who holds them.
- ``POST /api/concurrency/limits`` ``{"name", "limit", "slot_decay_per_second"?, "active"?}``:
  create a limit, or change its number of slots.
- ``DELETE /api/concurrency/limits/{name}``; ``POST /api/concurrency/limits/{name}/reset``
  frees every slot it has.
- ``POST /api/concurrency/acquire`` ``{"names", "occupy", "mode", "holder", "lease_seconds",
  "strict"}``: take the slots or say how long to wait (``{"acquired": false, "retry_after"}``);
  the client waits and asks again. ``/renew`` and ``/release`` take ``{"lease_ids"}``.

Every write is one transaction (``concurrency.store``) on the routes' own connection, one at a
time, under the store's write lock (SQLite's, or the PostgreSQL store's advisory lock), so two
requests, or two server processes, never both take the last slot. A limit that does not
exist is 404, bad input 422.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from prefect_like.concurrency import store as limits
from prefect_like.server.schemas import Problem

router = APIRouter(prefix="/api/concurrency", tags=["concurrency"])
NameParam = Annotated[str, PathParam(min_length=1, max_length=200)]


class LimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    limit: int = Field(ge=0, le=2**31)
    slot_decay_per_second: float | None = Field(default=None, gt=0)
    active: bool = True


class AcquireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=100)
    occupy: int = Field(default=1, ge=1, le=2**31)
    mode: str = "concurrency"
    holder: str | None = Field(default=None, max_length=500)
    lease_seconds: float = Field(default=60.0, gt=0, lt=1e7)
    strict: bool = False


class LeasesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=1000)
    lease_seconds: float = Field(default=60.0, gt=0, lt=1e7)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value, default=str), status_code=status, media_type="application/json")


_opening = threading.Lock()
_writing = threading.Lock()


def _store(app: Any) -> Any:
    """The routes' own connection to the tracker's store (SQLite or PostgreSQL), opened on first
    use: slots are taken apart from the event writer, whose queue they would wait behind."""
    store = getattr(app.state, "concurrency_store", None)
    if store is None:
        with _opening:
            store = getattr(app.state, "concurrency_store", None)
            if store is None:
                from prefect_like.tracking import databases

                store = app.state.concurrency_store = databases.open_store(app.state.tracker.url)
    return store


async def _write(request: Request, fn: Any, *args: Any) -> Any:
    store = _store(request.app)

    def call() -> Any:
        with _writing:  # one transaction at a time on this connection
            return fn(store, *args)

    try:
        return await run_in_threadpool(call)
    except LookupError as exc:
        raise Problem(404, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


def _read(request: Request, fn: Any, *args: Any) -> Any:
    try:
        return request.app.state.tracker.read(lambda s: fn(s, *args))
    except LookupError as exc:
        raise Problem(404, str(exc)) from None


@router.get("/limits")
def list_limits(request: Request) -> Response:
    return _json(_read(request, limits.list_limits))


@router.get("/limits/{name:path}")
def get_limit(request: Request, name: NameParam) -> Response:
    return _json(_read(request, limits.get_limit, name))


@router.post("/limits")
async def create_limit(request: Request, body: LimitIn) -> Response:
    return _json(await _write(request, limits.create_limit, body.name, body.limit,
                              body.slot_decay_per_second, body.active))


@router.post("/limits/{name:path}/reset")
async def reset_limit(request: Request, name: NameParam) -> Response:
    return _json(await _write(request, limits.reset_limit, name))


@router.post("/limits/{name:path}/active")
async def set_active(request: Request, name: NameParam, active: bool) -> Response:
    return _json(await _write(request, limits.set_active, name, active))


@router.delete("/limits/{name:path}")
async def delete_limit(request: Request, name: NameParam) -> Response:
    await _write(request, limits.delete_limit, name)
    return _json({"deleted": name})


@router.post("/acquire")
async def acquire(request: Request, body: AcquireIn) -> Response:
    return _json(await _write(request, limits.try_acquire, body.names, body.occupy, body.mode, body.holder,
                              body.lease_seconds, body.strict))


@router.post("/renew")
async def renew(request: Request, body: LeasesIn) -> Response:
    return _json({"gone": await _write(request, limits.renew, body.lease_ids, body.lease_seconds)})


@router.post("/release")
async def release(request: Request, body: LeasesIn) -> Response:
    await _write(request, limits.release, body.lease_ids)
    return _json({"released": len(body.lease_ids)})
