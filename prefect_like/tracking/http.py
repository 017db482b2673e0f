"""The HTTP sink: the Recorder's batches, as msgpack, POSTed to the tracking server.

What belongs here and what belongs to the Recorder. The Recorder decides *when* to send (a
batch per ``max_batch`` events or ``interval`` seconds, whichever first), and its sender thread
owns the long game when the server is down: it keeps failed batches (bounded in memory, then
spilled to a file), retries them with backoff, and reports the backlog when a flow ends. This
sink owns one delivery, on the sender's thread, and must either deliver the batch or raise:

1. Split the batch into requests of at most ``PREFECT_LIKE_HTTP_BATCH`` events (10,000:
   about 1.5 MB of msgpack), each one POST to ``{api_url}/events``, two at a time
   (``PREFECT_LIKE_HTTP_CONCURRENCY``) so the server decodes one while it stores the other;
   the store applies batches in any order with the same result. The second request goes on a
   thread the sink starts with itself, not on an executor: ``ThreadPoolExecutor`` refuses work
   once the interpreter begins to exit, and the exit is when the last batches are sent.
2. Retry a request a few times with short exponential backoff (tenacity), for what a retry
   can fix: connection errors, timeouts, 5xx, and 429 (after the server's ``Retry-After``). Short, because a down server is the
   Recorder's problem: its backoff is the one that should grow, and the Recorder thread must
   come back to take more events off the buffer. Retrying is safe: ingestion is idempotent.
3. A refused request is not retried as is. 413 (too large): send each half. 400/422 (the
   server cannot accept some event): halve until the bad events are isolated, deliver the
   rest, and write the refused ones to ``PREFECT_LIKE_HOME/rejected/`` with the server's
   reason, logged as an error; holding them would block every later batch forever.
   401/403/404 mean the URL or the key is wrong: raise, so the Recorder keeps the events.
4. After the first successful delivery, send the spill files that ended processes left (see
   ``spill``), so events kept while the server was down arrive on the next run.

Timeouts are explicit (connect 5 s, read 60 s). A server that accepts connections and never
answers holds only the sender thread: the Recorder goes on, and a flow's end waits at most
``PREFECT_LIKE_FLUSH_TIMEOUT``. The API key, when set, goes in ``Authorization: Bearer``.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgpack
import tenacity

from prefect_like import __version__, settings
from prefect_like.errors import TrackingError
from prefect_like.tracking.events import Event

log = logging.getLogger("prefect_like.tracking")

MSGPACK = "application/msgpack"


MAX_RETRY_AFTER = 10.0  # seconds: the longest a 429's Retry-After holds one request


class _Transient(Exception):
    """A response worth retrying (5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.TransportError, _Transient))


def retry_after(response: httpx.Response) -> float | None:
    """A 429's Retry-After in seconds (capped), or None."""
    if response.status_code != 429:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


_backoff = tenacity.wait_exponential(multiplier=0.05, max=1.0)


def _wait(state: tenacity.RetryCallState) -> float:
    """The server's Retry-After when it asked us to slow down, else a short exponential backoff."""
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, _Transient) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


def _fallback(value: Any) -> Any:
    return str(value)


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    key = api_key if api_key is not None else settings.api_key()
    headers = {"User-Agent": f"prefect-like/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def detail(response: httpx.Response) -> str:
    """The server's reason for an error response, as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    found = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(found, list) and found and isinstance(found[0], dict):
        first = found[0]
        loc = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"{loc}: {first.get('msg')}{more}" if loc else f"{first.get('msg')}{more}"
    return str(found)[:300]


def _cancel_requested(response: httpx.Response) -> None:
    """The server answered a batch with cancellation requests for flow runs it was about
    (``prefect-like runs cancel``): end those running in this process as Ctrl-C would."""
    from prefect_like.engine import signals

    try:
        requests = response.json().get("cancel") or {}
    except (ValueError, AttributeError):
        return
    for flow_run_id, reason in requests.items():
        signals.cancel(str(flow_run_id), str(reason))


class _Lanes:
    """Threads, started with the sink, that run jobs beside the caller's thread."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event] | None] = (
            queue.SimpleQueue()
        )
        for index in range(count):
            threading.Thread(
                target=self._work, name=f"prefect-like-http-{index}", daemon=True
            ).start()
        self.count = count

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                job()
            finally:
                done.set()

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` on every lane and on this thread at once; return when all have ended."""
        ended = [threading.Event() for _ in range(self.count)]
        for done in ended:
            self._jobs.put((job, done))
        job()
        for done in ended:
            done.wait()

    def close(self) -> None:
        for _ in range(self.count):
            self._jobs.put(None)


class HttpSink:
    """Deliver event batches to the tracking server, or raise ``TrackingError``."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        batch_size: int | None = None,
        attempts: int | None = None,
        send_orphans: bool = True,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.url = self.base_url + "/events"
        self.batch_size = max(1, batch_size or settings.int_setting("HTTP_BATCH", 10_000))
        self.attempts = max(1, attempts or settings.int_setting("HTTP_ATTEMPTS", 3))
        self.concurrency = max(1, settings.int_setting("HTTP_CONCURRENCY", 2))
        self._lanes = _Lanes(self.concurrency - 1)
        timeout = httpx.Timeout(
            settings.float_setting("HTTP_TIMEOUT", 60.0),
            connect=settings.float_setting("HTTP_CONNECT_TIMEOUT", 5.0),
        )
        self._client = httpx.Client(
            timeout=timeout, headers={**auth_headers(api_key), "Content-Type": MSGPACK}
        )
        self._orphans = self._find_orphans() if send_orphans else []
        # (seconds, events) of each delivered POST, latest last: what the load benchmark reports.
        self.timings: collections.deque[tuple[float, int]] = collections.deque(maxlen=100_000)

    # -- the Sink interface ----------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        # At least one request per connection, so the server decodes one while it stores another.
        size = min(self.batch_size, max(1000, -(-len(events) // self.concurrency)))
        chunks = [events[start : start + size] for start in range(0, len(events), size)]
        if len(chunks) == 1:
            self._send(chunks[0])
        else:
            todo: queue.SimpleQueue[Sequence[Event]] = queue.SimpleQueue()
            for chunk in chunks:
                todo.put(chunk)
            errors: list[Exception] = []

            def send_until_done() -> None:
                while True:
                    try:
                        chunk = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        self._send(chunk)
                    except Exception as exc:  # raised below, once every request has ended
                        errors.append(exc)

            self._lanes.run(send_until_done)
            if errors:
                raise errors[0]
        if self._orphans:
            self._send_orphans()

    def close(self) -> None:
        self._lanes.close()
        self._client.close()

    # -- one request -----------------------------------------------------------------------

    def _send(self, events: Sequence[Event]) -> None:
        body = msgpack.packb(events, use_bin_type=True, default=_fallback)
        started = time.perf_counter()
        response = self._post(body)
        status = response.status_code
        if status < 300:
            self.timings.append((time.perf_counter() - started, len(events)))
            if b'"cancel"' in response.content:
                _cancel_requested(response)
            return
        if status in (400, 413, 422) and len(events) > 1:
            half = len(events) // 2
            self._send(events[:half])
            self._send(events[half:])
            return
        if status in (400, 413, 422):
            self._reject(events, f"HTTP {status}: {detail(response)}")
            return
        if status in (401, 403):
            raise TrackingError(
                f"the tracking server at {self.base_url} refused the API key (HTTP {status}); "
                "set PREFECT_LIKE_API_KEY to the server's key"
            )
        if status in (404, 405):
            raise TrackingError(
                f"no tracking API at {self.url} (HTTP {status}); PREFECT_LIKE_API_URL should be "
                "the server's API root, e.g. http://127.0.0.1:4300/api"
            )
        raise TrackingError(
            f"the tracking server refused a batch: HTTP {status}: {detail(response)}"
        )

    def _post(self, body: bytes) -> httpx.Response:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=_wait,
            retry=tenacity.retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._client.post(self.url, content=body)
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Transient(
                            f"HTTP {response.status_code}: {detail(response)}",
                            retry_after(response),
                        )
        except httpx.TransportError as exc:
            raise TrackingError(
                f"cannot reach the tracking server at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        except _Transient as exc:
            raise TrackingError(f"the tracking server at {self.base_url} failed: {exc}") from exc
        return response

    def _reject(self, events: Sequence[Event], reason: str) -> None:
        path = settings.home() / "rejected" / f"events-{os.getpid()}-{time.time_ns()}.msgpack"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as file:
            file.write(
                msgpack.packb(
                    {"reason": reason, "events": [list(e) for e in events]},
                    use_bin_type=True,
                    default=_fallback,
                )
            )
        log.error(
            "the tracking server refused %d event(s) (%s); they are kept in %s",
            len(events),
            reason,
            path,
        )

    # -- spill files of earlier runs -------------------------------------------------------

    def _find_orphans(self) -> list[Path]:
        from prefect_like.tracking import spill

        try:
            return spill.orphans()
        except OSError:
            return []

    def _send_orphans(self) -> None:
        from prefect_like.tracking import spill

        paths, self._orphans = self._orphans, []
        try:
            files, events = spill.deliver(self, paths)
        except Exception as exc:
            log.warning(
                "sending the events earlier runs left in %s failed (%s); they stay there",
                spill.spill_dir(),
                exc,
            )
            return
        if files:
            log.info(
                "sent %d event(s) that earlier runs could not deliver (%d spill file(s))",
                events,
                files,
            )
