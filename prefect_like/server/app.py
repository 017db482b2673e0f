"""The tracking API: an ASGI app over the same SQLite ``Store`` the embedded mode writes, or
over a PostgreSQL one (``PREFECT_LIKE_DATABASE_URL``) shared by several server processes.

Why FastAPI (on Starlette, served by uvicorn): the read routes are plain typed functions whose
query parameters FastAPI validates and documents, and the OpenAPI document at
``/api/openapi.json`` comes for free. The one hot route, ``POST /api/events``, bypasses
FastAPI's body handling: it reads the raw body (msgpack or JSON) under a size cap, decodes it,
and validates the whole batch in pydantic-core in one call (see ``schemas``), so a 10,000-event
batch costs milliseconds, not a Python object per field.

A batch of events, in order:

1. The size cap: a ``Content-Length`` over the limit is refused before reading (413); a
   streamed body is counted as it arrives and refused at the limit.
2. Decode and validate the whole batch on a worker thread. Anything malformed is refused with
   a 4xx naming the problem, before anything is written: a rejected batch changes nothing.
3. ``Store.write`` on the single writer thread: one SQLite transaction per batch, so SQLite
   has exactly one writer in this process and a batch is stored entirely or not at all.
   Ingestion is idempotent by event id ``(kind, run_id, seq)``: a batch sent twice (a client
   retrying after a lost response) is stored once.

Reads run on the request threadpool, each thread with its own read connection (WAL: readers
never block the writer, nor it them). Every read returns the dicts ``queries`` builds, the
same shapes the CLI's ``--json`` prints, serialised with orjson.

Security: given an allow-list of host names (``serve`` gives one to every loopback server), a
request whose ``Host`` header names another host gets 421 and changes nothing: a web page on
``attacker.example`` whose name was rebound to 127.0.0.1 can neither read runs nor write events.
With an API key configured, every ``/api`` route requires ``Authorization: Bearer
<key>``, compared in constant time. Each client address gets a token bucket of requests
(``PREFECT_LIKE_SERVER_RATE_LIMIT`` a second, bursts of ``PREFECT_LIKE_SERVER_RATE_BURST``;
0 turns it off); past it, 429 with ``Retry-After``, which the HTTP sink retries. The dashboard's
pages carry a Content-Security-Policy that runs only its own scripts. No CORS headers unless
origins are configured. Binding to a non-loopback address without a key is refused by
``serve``, not here.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgpack
import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from prefect_like import __version__, settings
from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.server import host_name
from prefect_like.server.routes_deployments import cancellations
from prefect_like.server.schemas import BatchAccepted, EventBatch, Problem, parse_batch
from prefect_like.states import vocabulary
from prefect_like.tracking import databases
from prefect_like.tracking.store import Store

log = logging.getLogger("prefect_like.server")

T = TypeVar("T")

MSGPACK = "application/msgpack"
JSON = "application/json"
DEFAULT_MAX_BODY = 64 * 2**20
DEFAULT_RATE_LIMIT = 200.0  # requests a second per client address; a flow sends ~5-10
DEFAULT_RATE_BURST = 400.0
MAX_PAGE = 10_000
STATIC = Path(__file__).parent / "static"

IdParam = Annotated[str, PathParam(min_length=1, max_length=200, description="id or unique id prefix")]
StateQuery = Annotated[
    str | None, Query(max_length=100, description="a state type (COMPLETED) or name (Cached)")
]
Limit = Annotated[int, Query(ge=0, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


def _json(value: Any, status: int = 200) -> Response:
    # default=str: a blob a bad writer left in a column is shown as text, never a 500.
    return Response(orjson.dumps(value, default=str), status_code=status, media_type=JSON)


def _error(status: int, detail: Any) -> Response:
    return _json({"detail": detail}, status)


class Tracker:
    """The store behind the app: one writer thread, and one read connection per reading thread
    (on PostgreSQL, at most ``PG_READERS`` connections, shared by the threads, so several
    server processes stay well inside the database's connection limit).

    The store is ``PREFECT_LIKE_DATABASE_URL`` (``tracking.databases``), by default the SQLite
    file under ``home``."""

    PG_READERS = 4

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.url = databases.resolve(database_url or settings.database_url(), home)
        self.postgres = databases.is_postgres(self.url)
        self.path = databases.sqlite_path(self.url) if not self.postgres else None
        # Opening checks the schema (a newer one is refused) and creates or upgrades it.
        self.writer = databases.open_store(self.url, migrate=settings.database_migrate_on_start())
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="prefect-like-writer")
        self._local = threading.local()
        self._readers: list[Store] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()

    async def write(self, events: list[Any]) -> None:
        await asyncio.wrap_future(self._write_thread.submit(self.writer.write, events))

    async def watch_heartbeats(self) -> None:
        """End CRASHED the live flow runs whose heartbeats stopped (their process died)."""
        timeout = settings.heartbeat_timeout()
        while True:
            await asyncio.sleep(min(timeout / 3, 10.0))
            try:
                await asyncio.wrap_future(self._write_thread.submit(self.writer.mark_crashed, timeout))
            except TrackingError:
                log.warning("could not check flow run heartbeats; will try again", exc_info=True)

    def reader(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            with self._lock:
                if self.postgres and len(self._readers) >= self.PG_READERS:
                    store = self._readers[next(self._turn) % self.PG_READERS]
                else:
                    store = databases.open_store(self.url)
                    self._readers.append(store)
            self._local.store = store
        return store

    def read(self, fn: Callable[[Store], T]) -> T:
        """Run a read; bad input from the user (a ValueError in ``queries``) becomes a 422."""
        try:
            return fn(self.reader())
        except RunNotFoundError:
            raise
        except ValueError as exc:
            raise Problem(422, str(exc)) from None

    def close(self) -> None:
        self._write_thread.shutdown(wait=True)
        self.writer.close()
        with self._lock:
            for store in self._readers:
                store.close()
            self._readers.clear()


class RateLimit:
    """A token bucket per client address: ``rate`` requests a second, bursts up to ``burst``.

    Checked in the event loop only (no lock needed); idle clients' buckets are forgotten once
    there are many, so a scan from many addresses cannot grow it without bound.
    """

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._buckets: dict[str, list[float]] = {}

    def wait(self, client: str) -> float:
        """0 if the request may go now (a token is taken), else seconds until it may."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self._buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        full = [c for c, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        for client in full or list(self._buckets)[: self.MAX_CLIENTS // 2]:
            del self._buckets[client]


# The dashboard's pages: only its own scripts run, so user data can never become code.
_PAGE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class Guard:
    """ASGI middleware: the Host allow-list, the rate limit, the bearer-key check on ``/api``,
    the request size cap, and the security headers of the dashboard's pages."""

    def __init__(
        self, app: ASGIApp, api_key: str | None, max_body: int, rate_limit: RateLimit | None = None,
        allowed_hosts: Collection[str] | None = None,
    ) -> None:
        self.app = app
        key = (api_key or "").strip()  # clients' headers lose surrounding blanks on the way
        self.key = key.encode() if key else None
        self.max_body = max_body
        self.rate_limit = rate_limit
        self.hosts = None if allowed_hosts is None else frozenset(map(host_name, allowed_hosts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.hosts:
                await _error(421, (
                    f"this server does not answer to the host {host[:100]!r}; "
                    "add its name to PREFECT_LIKE_SERVER_ALLOWED_HOSTS (comma-separated) to allow it"
                ))(scope, receive, send)
                return
        if self.rate_limit is not None:
            client = scope.get("client")
            wait = self.rate_limit.wait(client[0] if client else "")
            if wait:
                response = _error(429, "too many requests: slow down and retry after the Retry-After seconds")
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                await response(scope, receive, send)
                return
        is_api = scope["path"].startswith("/api")
        if self.key is not None and is_api:
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                response = _error(401, "missing or wrong API key: send 'Authorization: Bearer <PREFECT_LIKE_API_KEY>'")
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _error(413, f"request body over the {self.max_body} byte limit")(scope, receive, send)
            return
        if is_api:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_PAGE_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"request body over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes, content_type: str) -> list[Any]:
    if not body:
        raise Problem(400, "empty request body; send a batch of events")
    try:
        if content_type == MSGPACK:
            payload = msgpack.unpackb(body, raw=False)
        else:
            payload = orjson.loads(body)
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData, RecursionError) as exc:
        kind = "msgpack" if content_type == MSGPACK else "JSON"
        raise Problem(400, f"the request body is not valid {kind}: {exc}") from None
    return parse_batch(payload)


def create_app(
    home: Path | str,
    *,
    api_key: str | None = None,
    max_body: int | None = None,
    cors_origins: list[str] | None = None,
    rate_limit: float | None = None,
    rate_burst: float | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The tracking API over the store in ``home``.

    ``allowed_hosts``: the host names (any port) a request's ``Host`` header may give; others
    get 421. None answers any host (``serve`` passes a list for every loopback bind).

    ``api_key``, ``max_body``, ``cors_origins``, ``rate_limit`` and ``rate_burst`` default to the
    settings ``PREFECT_LIKE_API_KEY``, ``PREFECT_LIKE_SERVER_MAX_BODY`` (bytes, 64 MiB),
    ``PREFECT_LIKE_SERVER_CORS_ORIGINS`` (comma-separated; none by default),
    ``PREFECT_LIKE_SERVER_RATE_LIMIT`` (requests a second per client address, 200; 0 for no
    limit) and ``PREFECT_LIKE_SERVER_RATE_BURST`` (400).
    """
    tracker = Tracker(Path(home))
    api_key = api_key if api_key is not None else settings.api_key()
    limit = max_body or settings.int_setting("SERVER_MAX_BODY", DEFAULT_MAX_BODY)
    if cors_origins is None:
        raw = settings._get("SERVER_CORS_ORIGINS") or ""
        cors_origins = [o.strip() for o in raw.split(",") if o.strip()]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        watcher = asyncio.create_task(tracker.watch_heartbeats())
        yield
        watcher.cancel()
        tracker.close()

    app = FastAPI(
        title="prefect-like tracking API",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.tracker = tracker
    api = APIRouter(prefix="/api")

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return _error(exc.status, exc.errors)

    @app.exception_handler(RunNotFoundError)
    async def _not_found(request: Request, exc: RunNotFoundError) -> Response:
        return _error(404, str(exc))

    @app.exception_handler(TrackingError)
    async def _unavailable(request: Request, exc: TrackingError) -> Response:
        return _error(503, f"the tracking store is unavailable: {exc}")

    @api.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @api.get("/states", tags=["meta"])
    def states() -> dict[str, Any]:
        """The state vocabulary (which states exist, are final, count as failures), from the one
        place that defines it; the dashboard reads it here instead of keeping a copy."""
        return vocabulary()

    @api.post(
        "/events",
        tags=["ingest"],
        response_model=BatchAccepted,
        responses={400: {}, 413: {}, 415: {}, 422: {}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A batch of events: an array of events or {\"events\": [...]}; "
                "each event an array in Event field order or an object by field name. "
                "Idempotent by (kind, run_id, seq).",
                "content": {
                    JSON: {"schema": EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")},
                    MSGPACK: {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def post_events(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (MSGPACK, JSON, "application/x-msgpack"):
            raise Problem(415, f"send events as {MSGPACK} or {JSON}, not {content_type or 'no content type'!r}")
        content_type = JSON if content_type == JSON else MSGPACK
        body = await _read_body(request, limit)
        events = await run_in_threadpool(_decode, body, content_type)
        await tracker.write(events)
        cancel = cancellations(app, events)  # the flow's process stops the runs named here
        return _json({"accepted": len(events), "cancel": cancel} if cancel else {"accepted": len(events)})

    @api.get("/flow-runs", tags=["flow runs"])
    def list_flow_runs(
        state: StateQuery = None,
        flow_name: Annotated[str | None, Query(max_length=500)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
        tags: Annotated[
            list[str] | None,
            Query(max_length=20, description="only flow runs with every one of these tags (repeat it)"),
        ] = None,
    ) -> Response:
        """Flow runs, newest first, with the total matching the filters."""

        def read(s: Store) -> dict[str, Any]:
            items = s.list_flow_runs(state=state, flow_name=flow_name, limit=limit, offset=offset, tags=tags)
            total = s.count_flow_runs(state=state, flow_name=flow_name, tags=tags)
            return {"items": items, "total": total, "limit": limit, "offset": offset}

        return _json(tracker.read(read))

    @api.get("/flow-runs/{flow_run_id}", tags=["flow runs"])
    def get_flow_run(flow_run_id: IdParam) -> Response:
        """A flow run, with its task runs counted by state name in ``task_runs``."""
        return _json(tracker.read(lambda s: s.get_flow_run(flow_run_id)))

    @api.get("/flow-runs/{flow_run_id}/task-runs", tags=["flow runs"])
    def list_task_runs(
        flow_run_id: IdParam,
        state: StateQuery = None,
        task_name: Annotated[str | None, Query(max_length=500)] = None,
        limit: Limit = 100,
        offset: Offset = 0,
        order_by: Annotated[
            str | None,
            Query(max_length=200, description="e.g. result.loss, -result.accuracy, duration"),
        ] = None,
        tags: Annotated[
            list[str] | None,
            Query(max_length=20, description="only task runs with every one of these tags (repeat it)"),
        ] = None,
        where: Annotated[
            str | None,
            Query(max_length=4000, description='e.g. param.kernel == "rbf" and result.accuracy > 0.95'),
        ] = None,
    ) -> Response:
        """One page of a flow run's task runs, in submission order unless ``order_by`` says else."""

        def read(s: Store) -> dict[str, Any]:
            items = s.list_task_runs(
                flow_run_id, state=state, task_name=task_name, limit=limit, offset=offset,
                order_by=order_by, tags=tags, where_text=where,
            )
            total = s.count_task_runs(flow_run_id, state=state, task_name=task_name, tags=tags, where_text=where)
            return {"items": items, "total": total, "limit": limit, "offset": offset}

        return _json(tracker.read(read))

    @api.get("/flow-runs/{flow_run_id}/task-run-counts", tags=["flow runs"])
    def task_run_counts(flow_run_id: IdParam) -> Response:
        """The flow run's task runs by state name, counted now."""
        return _json(tracker.read(lambda s: s.task_run_counts(flow_run_id)))

    @api.get("/flow-runs/{flow_run_id}/throughput", tags=["flow runs"])
    def throughput(flow_run_id: IdParam, buckets: Annotated[int, Query(ge=1, le=1000)] = 60) -> Response:
        return _json(tracker.read(lambda s: s.throughput(flow_run_id, buckets=buckets)))

    @api.get("/flow-runs/{flow_run_id}/logs", tags=["logs"])
    def flow_run_logs(flow_run_id: IdParam, limit: Limit = 1000, offset: Offset = 0) -> Response:
        """A flow run's log lines, its task runs' included, oldest first."""
        items = tracker.read(lambda s: s.logs(flow_run_id=flow_run_id, limit=limit, offset=offset))
        return _json({"items": items, "limit": limit, "offset": offset})

    @api.get("/task-runs/{task_run_id}", tags=["task runs"])
    def get_task_run(task_run_id: IdParam) -> Response:
        """A task run: parameters, result, error with traceback, and its state history."""
        return _json(tracker.read(lambda s: s.get_task_run(task_run_id)))

    @api.get("/task-runs/{task_run_id}/logs", tags=["logs"])
    def task_run_logs(task_run_id: IdParam, limit: Limit = 1000, offset: Offset = 0) -> Response:
        items = tracker.read(lambda s: s.logs(task_run_id=task_run_id, limit=limit, offset=offset))
        return _json({"items": items, "limit": limit, "offset": offset})

    @api.get("/runs/{run_id}", tags=["meta"])
    def find_run(run_id: IdParam) -> Response:
        """Whether an id (or unique prefix) is a flow run or a task run: ``{"kind", "id"}``."""
        kind, found = tracker.read(lambda s: s.find_run(run_id))
        return _json({"kind": kind, "id": found})

    @api.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown_route(rest: str) -> Response:
        return _error(404, f"no such API route: /api/{rest}")

    from prefect_like.server.dashboard import router as dashboard_router

    app.include_router(dashboard_router)  # the dashboard's routes, before the catch-all below
    from prefect_like.server.routes_artifacts import router as artifacts_router

    app.include_router(artifacts_router)
    from prefect_like.server.routes_concurrency import router as concurrency_router

    app.include_router(concurrency_router)
    from prefect_like.server.routes_deployments import router as deployments_router

    app.include_router(deployments_router)
    from prefect_like.server.routes_sweeps import router as sweeps_router

    app.include_router(sweeps_router)
    app.include_router(api)
    if (STATIC / "index.html").is_file():
        from starlette.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC, html=True), name="dashboard")

    rate = rate_limit if rate_limit is not None else settings.float_setting("SERVER_RATE_LIMIT", DEFAULT_RATE_LIMIT)
    burst = rate_burst if rate_burst is not None else settings.float_setting("SERVER_RATE_BURST", DEFAULT_RATE_BURST)
    bucket = RateLimit(rate, burst) if rate > 0 else None
    app.add_middleware(Guard, api_key=api_key, max_body=limit, rate_limit=bucket, allowed_hosts=allowed_hosts)
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


__all__ = ["Guard", "RateLimit", "Tracker", "create_app"]
