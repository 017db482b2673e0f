"""A synchronous client of the tracking API whose reads mirror the ``Store``'s.

``Client(url).list_task_runs(...)`` returns exactly what ``Store(path).list_task_runs(...)``
returns, so the CLI and the export code take either one (``connect()`` picks by settings).
A 404 raises ``RunNotFoundError``, a refused argument ``ValueError`` (as the store does), and
anything else that goes wrong on the way ``TrackingError`` with a message that says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol

import httpx

from prefect_like import settings
from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.tracking.events import Event
from prefect_like.tracking.http import auth_headers, detail, retry_after


class Reader(Protocol):
    """What the Store and the Client both offer: the read side of the tracker."""

    def list_flow_runs(self, state: str | None = None, flow_name: str | None = None, limit: int = 50, offset: int = 0, tags: Sequence[str] | None = None) -> list[dict[str, Any]]: ...
    def count_flow_runs(self, state: str | None = None, flow_name: str | None = None, tags: Sequence[str] | None = None) -> int: ...
    def get_flow_run(self, id_or_prefix: str) -> dict[str, Any]: ...
    def list_task_runs(self, flow_run_id: str, state: str | None = None, task_name: str | None = None, limit: int = 100, offset: int = 0, order_by: str | None = None, tags: Sequence[str] | None = None, where_text: str | None = None) -> list[dict[str, Any]]: ...
    def count_task_runs(self, flow_run_id: str, state: str | None = None, task_name: str | None = None, tags: Sequence[str] | None = None, where_text: str | None = None) -> int: ...
    def metrics(self, task_run_id: str | None = None, flow_run_id: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]: ...
    def list_sweeps(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]: ...
    def count_sweeps(self) -> int: ...
    def get_sweep(self, id_or_name: str) -> dict[str, Any]: ...
    def get_task_run(self, id_or_prefix: str) -> dict[str, Any]: ...
    def task_run_counts(self, flow_run_id: str) -> dict[str, int]: ...
    def iter_task_runs(self, flow_run_id: str, batch: int = 5000) -> Iterator[dict[str, Any]]: ...
    def throughput(self, flow_run_id: str, buckets: int = 60) -> list[dict[str, Any]]: ...
    def logs(self, flow_run_id: str | None = None, task_run_id: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]: ...
    def find_run(self, id_or_prefix: str) -> tuple[str, str]: ...
    def list_artifacts(self, key: str | None = None, flow_run_id: str | None = None, task_run_id: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]: ...
    def count_artifacts(self, key: str | None = None, flow_run_id: str | None = None, task_run_id: str | None = None) -> int: ...
    def get_artifact(self, key_or_id: str) -> dict[str, Any]: ...
    def task_tags(self, flow_run_id: str, limit: int = 500) -> list[str]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> None: ...


def connect() -> Reader:
    """The tracker the settings point at: the server if PREFECT_LIKE_API_URL is set, else the
    embedded store in PREFECT_LIKE_HOME."""
    url = settings.api_url()
    if url:
        return Client(url)
    from prefect_like.tracking.store import Store

    store = Store(settings.database_path())
    # No server watches an embedded store: whoever reads it ends the runs whose process died,
    # each judged by its own heartbeat timeout (this reader's is for runs stored without one).
    store.mark_crashed(default_timeout=settings.heartbeat_timeout())
    return store


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Client:
    """The tracking API over HTTP. Thread-safe; use as a context manager or ``close()`` it."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        url = url or settings.api_url()
        if not url:
            raise TrackingError("no tracking server: pass a URL or set PREFECT_LIKE_API_URL")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=auth_headers(api_key),
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(4):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise TrackingError(
                    f"cannot reach the tracking server at {self.url} ({type(exc).__name__}: {exc}); "
                    "is it running (`prefect-like server start`) and is PREFECT_LIKE_API_URL right?"
                ) from exc
            wait = retry_after(response)
            if wait is None or attempt == 3:
                break
            time.sleep(wait)  # the server's rate limit asked for this pause
        status = response.status_code
        if status < 300:
            return response.json()
        reason = detail(response)
        if status == 404:
            if reason.startswith("no such API route"):
                raise TrackingError(f"{reason}; is {self.url} a prefect-like tracking API?")
            raise RunNotFoundError(reason)
        if status == 422:
            raise ValueError(reason)
        if status in (401, 403):
            raise TrackingError(
                f"the tracking server at {self.url} refused the API key (HTTP {status}); "
                "set PREFECT_LIKE_API_KEY to the server's key"
            )
        raise TrackingError(f"the tracking server answered HTTP {status}: {reason}")

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=_params(**params))

    # -- the Store's read methods ----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._get("/health")

    def list_flow_runs(
        self, state: str | None = None, flow_name: str | None = None, limit: int = 50, offset: int = 0,
        tags: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        page = self._get("/flow-runs", state=state, flow_name=flow_name, limit=limit, offset=offset,
                         tags=list(tags) if tags else None)
        return page["items"]

    def count_flow_runs(
        self, state: str | None = None, flow_name: str | None = None, tags: Sequence[str] | None = None
    ) -> int:
        return int(self._get("/flow-runs", state=state, flow_name=flow_name, limit=0,
                             tags=list(tags) if tags else None)["total"])

    def get_flow_run(self, id_or_prefix: str) -> dict[str, Any]:
        return self._get(f"/flow-runs/{_quote(id_or_prefix)}")

    def list_task_runs(
        self,
        flow_run_id: str,
        state: str | None = None,
        task_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str | None = None,
        tags: Sequence[str] | None = None,
        where_text: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.task_run_page(flow_run_id, state, task_name, limit, offset, order_by, tags, where_text)["items"]

    def task_run_page(
        self,
        flow_run_id: str,
        state: str | None = None,
        task_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str | None = None,
        tags: Sequence[str] | None = None,
        where_text: str | None = None,
    ) -> dict[str, Any]:
        """One page of task runs with ``total``, as the API returns it."""
        return self._get(
            f"/flow-runs/{_quote(flow_run_id)}/task-runs", state=state, task_name=task_name,
            limit=limit, offset=offset, order_by=order_by, tags=list(tags) if tags else None,
            where=where_text,
        )

    def count_task_runs(
        self, flow_run_id: str, state: str | None = None, task_name: str | None = None,
        tags: Sequence[str] | None = None, where_text: str | None = None,
    ) -> int:
        return int(self.task_run_page(flow_run_id, state, task_name, limit=0, tags=tags, where_text=where_text)["total"])

    # -- metrics and sweeps (``routes_sweeps``) ------------------------------------------------

    def metrics(
        self, task_run_id: str | None = None, flow_run_id: str | None = None,
        limit: int | None = None, offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Reported metrics of a task run or a flow run, as ``Store.metrics``."""
        if (task_run_id is None) == (flow_run_id is None):
            raise ValueError("give exactly one of task_run_id and flow_run_id")
        path = (f"/task-runs/{_quote(task_run_id)}/metrics" if task_run_id is not None
                else f"/flow-runs/{_quote(flow_run_id)}/metrics")  # type: ignore[arg-type]
        points: list[dict[str, Any]] = []
        while True:
            want = 10_000 if limit is None else min(10_000, limit - len(points))
            items = self._get(path, limit=want, offset=offset + len(points))["items"]
            points.extend(items)
            if len(items) < want or want == 0:
                return points

    def list_sweeps(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return self._get("/sweeps", limit=limit, offset=offset)["items"]

    def count_sweeps(self) -> int:
        return int(self._get("/sweeps", limit=0)["total"])

    def get_sweep(self, id_or_name: str) -> dict[str, Any]:
        return self._get(f"/sweeps/{_quote(id_or_name)}")

    def get_task_run(self, id_or_prefix: str) -> dict[str, Any]:
        return self._get(f"/task-runs/{_quote(id_or_prefix)}")

    def task_run_counts(self, flow_run_id: str) -> dict[str, int]:
        return self._get(f"/flow-runs/{_quote(flow_run_id)}/task-run-counts")

    def iter_task_runs(self, flow_run_id: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every task run of a flow run in submission order, ``batch`` per request."""
        flow_run_id = self.get_flow_run(flow_run_id)["id"]
        offset = 0
        while True:
            rows = self.list_task_runs(flow_run_id, limit=batch, offset=offset)
            yield from rows
            if len(rows) < batch:
                return
            offset += len(rows)

    def throughput(self, flow_run_id: str, buckets: int = 60) -> list[dict[str, Any]]:
        return self._get(f"/flow-runs/{_quote(flow_run_id)}/throughput", buckets=buckets)

    def logs(
        self,
        flow_run_id: str | None = None,
        task_run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Log lines, oldest first (all of them unless ``limit``), as ``Store.logs``."""
        if (flow_run_id is None) == (task_run_id is None):
            raise ValueError("give exactly one of flow_run_id and task_run_id")
        path = (f"/flow-runs/{_quote(flow_run_id)}/logs" if flow_run_id is not None
                else f"/task-runs/{_quote(task_run_id)}/logs")  # type: ignore[arg-type]
        lines: list[dict[str, Any]] = []
        page = 10_000 if limit is None else min(limit, 10_000)
        while True:
            want = page if limit is None else min(page, limit - len(lines))
            items = self._get(path, limit=want, offset=offset + len(lines))["items"]
            lines.extend(items)
            if len(items) < want or (limit is not None and len(lines) >= limit) or want == 0:
                return lines

    def find_run(self, id_or_prefix: str) -> tuple[str, str]:
        found = self._get(f"/runs/{_quote(id_or_prefix)}")
        return found["kind"], found["id"]

    def task_tags(self, flow_run_id: str, limit: int = 500) -> list[str]:
        return self._get(f"/flow-runs/{_quote(flow_run_id)}/task-tags", limit=limit)

    # -- artifacts -------------------------------------------------------------------------

    def list_artifacts(
        self, key: str | None = None, flow_run_id: str | None = None, task_run_id: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:
        return self._artifact_page(key, flow_run_id, task_run_id, limit, offset)["items"]

    def count_artifacts(
        self, key: str | None = None, flow_run_id: str | None = None, task_run_id: str | None = None
    ) -> int:
        return int(self._artifact_page(key, flow_run_id, task_run_id, 0, 0)["total"])

    def _artifact_page(
        self, key: str | None, flow_run_id: str | None, task_run_id: str | None, limit: int, offset: int
    ) -> dict[str, Any]:
        return self._get(
            "/artifacts", key=key, flow_run_id=flow_run_id, task_run_id=task_run_id, limit=limit,
            offset=offset,
        )

    def get_artifact(self, key_or_id: str) -> dict[str, Any]:
        return self._get(f"/artifacts/{_quote(key_or_id)}")

    # -- writing ---------------------------------------------------------------------------

    def send_events(self, events: Sequence[Event]) -> None:
        """Deliver events now (as the Recorder's sink does), raising ``TrackingError`` if not."""
        from prefect_like.tracking.http import HttpSink

        sink = HttpSink(self.url)
        try:
            sink.write(events)
        finally:
            sink.close()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value).strip(), safe="")
