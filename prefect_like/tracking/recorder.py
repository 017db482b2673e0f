"""The Recorder: one thread per process that moves events from the buffer to the tracking sink.

Task runs only append events to ``events.BUFFER``; they never wait on the tracker. The Recorder
wakes every ``interval`` seconds (or at once when a flow asks it to flush), drains the buffer in
batches of up to ``max_batch`` events and hands each batch to the sink in one call: the embedded
SQLite ``Store`` (one transaction per batch) or the HTTP sink (one request per batch).

Flushing is ordered by the buffer itself: ``flush()`` appends a marker and waits until the
Recorder has written everything before it. So when a flow call returns, every event of that run
is stored (or, if the sink is failing, safely spilled; see the sink).

While a flow run is live the Recorder sends a heartbeat for it every ``heartbeat_seconds``: a
run whose heartbeats stop (its process was killed) is marked CRASHED by the server, or by the
next command that reads the embedded store (``Store.mark_crashed``).

The Recorder also counts the final states of task runs per flow run as they pass, so a flow run
can record "how many of my task runs ended how" without a query or a lock on the hot path.

A sink that raises keeps its batch, and the Recorder goes on draining: retries never block it.
After a failure it notes a retry-at time (exponential backoff, at most ``MAX_BACKOFF`` seconds)
and, until then, appends every new batch to the ones it holds, at most ``max_held`` events in
memory; past that the oldest go to a spill file under PREFECT_LIKE_HOME. So a fast flow keeps
its speed and its memory while the tracker is down. When a retry succeeds the Recorder delivers
the spill file, then what it holds, in the order the events were made, before anything new.
Nothing is dropped: what is still undelivered when the process stops stays in the spill file,
sent by the next run or by ``prefect-like runs flush``.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from prefect_like import settings
from prefect_like.tracking import events as _events
from prefect_like.tracking.events import Event, heartbeat_event

log = logging.getLogger("prefect_like.tracking")

MAX_BACKOFF = 5.0  # seconds between retries of a failing sink, at most
# Held batches are merged up to this size: fewer requests when the sink is back, yet small
# enough that a retry which fails part-way does not resend much.
HELD_BATCH = 10_000


class Sink(Protocol):
    def write(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class _Flush:
    __slots__ = ("drained", "done")

    def __init__(self) -> None:
        self.drained = threading.Event()  # everything before it is counted and handed on
        self.done = threading.Event()  # everything before it is delivered to the sink


def open_sink(target: str) -> Sink:
    """The sink for a target: an API URL (HTTP) or a database path (embedded SQLite)."""
    if target.startswith(("http://", "https://")):
        from prefect_like.tracking.http import HttpSink

        return HttpSink(target)
    from prefect_like.tracking.writer import StoreWriter

    return StoreWriter(target)


def current_target() -> str:
    return settings.api_url() or str(settings.database_path())


class Recorder:
    """Drains the event buffer into one sink, in batches, on its own thread."""

    def __init__(self, target: str, interval: float | None = None, max_batch: int | None = None) -> None:
        self.target = target
        self.interval = interval if interval is not None else settings.float_setting("RECORDER_INTERVAL", 0.2)
        self.max_batch = max_batch or settings.int_setting("RECORDER_MAX_BATCH", 50_000)
        self.final_flush_timeout = settings.float_setting("FLUSH_TIMEOUT", 30.0)
        self._sink = open_sink(target)
        self._wake = threading.Event()
        self._stopping = False
        self._counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._held: collections.deque[list[Event]] = collections.deque()
        self._carried: list[_events.PendingCall] = []  # pending calls held for the next batch
        self._markers: list[_Flush] = []  # flushes waiting for held events to be delivered
        self._held_events = 0
        self.max_held = settings.int_setting("RECORDER_MAX_HELD", 200_000)
        # The pid in the name tells a later run whether this file's process has ended.
        self._spill_path = settings.home() / "spill" / f"events-{os.getpid()}-{id(self):x}-{time.time_ns()}.msgpack"
        self._spilled = 0
        self._spill_sent = 0  # batches at the head of the spill file already delivered
        self._failures = 0
        self._retry_at = 0.0  # time.monotonic() before which a failing sink is not tried again
        self._last_error: str | None = None
        self.heartbeat_seconds = settings.float_setting("HEARTBEAT_SECONDS", 10.0)
        self._live: dict[str, list[int]] = {}  # flow run id -> [next heartbeat seq]
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name="prefect-like-recorder", daemon=True)
        self._thread.start()

    # -- what flows call ---------------------------------------------------------------------

    def flush(self, timeout: float | None = None, delivered: bool = True) -> bool:
        """Wait until every event emitted before this call is written; False on timeout.

        With ``delivered=False`` wait only until they are drained and counted (``take_counts``),
        which never waits on a slow or unreachable sink.
        """
        marker = _Flush()
        _events.emit(marker)
        self._wake.set()
        return (marker.done if delivered else marker.drained).wait(timeout)

    def watch(self, flow_run_id: str) -> None:
        """Send heartbeats for this flow run until ``unwatch``."""
        self._live[flow_run_id] = [0]
        self._next_heartbeat = 0.0

    def unwatch(self, flow_run_id: str) -> None:
        self._live.pop(flow_run_id, None)

    def _heartbeats(self) -> list[Event]:
        now = time.time()
        if not self._live or now < self._next_heartbeat:
            return []
        self._next_heartbeat = now + self.heartbeat_seconds
        beats = []
        for flow_run_id, counter in list(self._live.items()):
            beats.append(heartbeat_event(flow_run_id, counter[0], now))
            counter[0] += 1
        return beats

    def take_counts(self, flow_run_id: str) -> dict[str, int]:
        """The final states of a flow run's task runs seen so far (call after ``flush``)."""
        return dict(self._counts.pop(flow_run_id, {}))

    def describe_backlog(self) -> str:
        if self._spilled or self._held_events:
            return (
                f"{self._held_events} events held in memory and {self._spilled} spilled to "
                f"{self._spill_path} ({self._last_error}); they are sent when the tracker is reachable "
                "again, or by the next run or `prefect-like runs flush` if this process ends first"
            )
        return "the tracker is slow to answer"

    def stop(self, timeout: float | None = 10.0) -> None:
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._spill_held()
        try:
            self._sink.close()
        except Exception:
            log.exception("closing the tracking sink failed")

    def _spill_held(self) -> None:
        """On stop, keep what the sink never took in the spill file, for a later run to send."""
        held = list(self._held)
        for batch in held:
            self._spill(batch)
        self._held.clear()
        self._held_events = 0
        if self._spilled:
            log.warning(
                "%d tracking events could not be delivered to %s (%s); they are kept in %s and "
                "sent by the next run or by `prefect-like runs flush`",
                self._spilled, self.target, self._last_error, self._spill_path,
            )

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait = min(self.interval, self.heartbeat_seconds)
            if self._held:
                wait = max(0.0, min(wait, self._retry_at - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            try:
                beats = self._heartbeats()
                if beats:
                    self._deliver(beats)
                self._drain()
            except Exception:  # the Recorder must outlive any one bad batch
                log.exception("the tracking recorder failed to process a batch")
            if self._stopping and not _events.BUFFER:
                return

    def _drain(self) -> None:
        while True:
            fresh = _events.drain(self.max_batch)
            batch = self._carried + fresh if self._carried else fresh
            self._carried = []
            if not batch and not self._held and not self._spilled:
                return
            # Calls made within the last interval wait for the next batch, where most of them
            # have ended (see events.fold); a pass that drained nothing new carries nothing.
            carry_from = time.time() - self.interval if fresh and not self._stopping else None
            events, markers, self._carried = _events.fold(batch, self._counts, carry_from)
            for marker in markers:
                marker.drained.set()
            self._deliver(events)
            self._markers.extend(markers)
            if self._markers and not self._held and not self._spilled:
                self._settle_sink()
            if not self._held and not self._spilled:
                for marker in self._markers:
                    marker.done.set()
                self._markers.clear()
            if not fresh:
                return

    def _deliver(self, events: list[Event]) -> None:
        backlog = bool(self._held or self._spilled)
        if backlog and time.monotonic() >= self._retry_at:
            backlog = not self._retry_held()
        if not events:
            return
        if backlog:
            self._hold(events)  # keep order: older undelivered batches go first
            return
        try:
            self._sink.write(events)
            self._failures = 0
        except Exception as exc:
            self._note_failure(exc)
            self._hold(events)

    def _settle_sink(self) -> None:
        """A sink that keeps a batch in flight (the store's writer) stores it before a flush ends."""
        settle = getattr(self._sink, "flush", None)
        if settle is None:
            return
        try:
            settle()
        except Exception as exc:  # the sink still holds the batch and retries it itself
            self._note_failure(exc)
            self._held.append([])  # makes the flush wait until the sink has caught up

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        # Never a wait: the Recorder goes on draining into held and spilled batches until then.
        self._retry_at = time.monotonic() + min(MAX_BACKOFF, 0.05 * 2 ** min(self._failures, 7))
        if self._failures in (1, 10) or self._failures % 100 == 0:
            log.warning("tracking sink %s failed (%s); events are kept and retried", self.target, self._last_error)

    def _hold(self, events: list[Event]) -> None:
        held = self._held
        if held and len(held[-1]) + len(events) <= min(self.max_batch, HELD_BATCH):
            held[-1].extend(events)  # fewer, fuller requests when the sink is back
        else:
            held.append(events)
        self._held_events += len(events)
        while self._held_events > self.max_held and len(held) > 1:
            spilled = held.popleft()
            self._held_events -= len(spilled)
            self._spill(spilled)
        if self._held_events > self.max_held and len(held[0]) > 1:
            first = held[0]  # one batch over the bound on its own: spill all of it but the last event
            self._spill(first[:-1])
            del first[:-1]
            self._held_events = len(first)

    def _spill(self, events: list[Event]) -> None:
        import msgpack

        self._spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self._spill_path.open("ab") as file:
            file.write(msgpack.packb([list(e) for e in events], use_bin_type=True))
        self._spilled += len(events)

    def _retry_held(self) -> bool:
        """Try to deliver the backlog, oldest first; True once it is all delivered."""
        try:
            if self._spilled:
                for index, batch in enumerate(iter_spill(self._spill_path)):
                    if index >= self._spill_sent:
                        self._sink.write(batch)
                        self._spill_sent = index + 1
                self._spill_path.unlink(missing_ok=True)
                self._spilled = self._spill_sent = 0
            while self._held:
                self._sink.write(self._held[0])
                self._held_events -= len(self._held.popleft())
        except Exception as exc:
            self._note_failure(exc)
            return False
        self._failures = 0
        return True


def iter_spill(path: Path) -> Iterator[list[Event]]:
    """The batches in a spill file, as events, read one at a time."""
    import msgpack

    with path.open("rb") as file:
        for batch in msgpack.Unpacker(file, raw=False, strict_map_key=False):
            yield [Event(*item) for item in batch]


def read_spill(path: Path) -> list[list[Event]]:
    """The batches in a spill file, as events."""
    return list(iter_spill(path))


_lock = threading.Lock()
_recorder: Recorder | None = None


def get_recorder() -> Recorder:
    """The process's Recorder for the current settings, started on first use."""
    global _recorder
    target = current_target()
    recorder = _recorder
    if recorder is not None and recorder.target == target:
        return recorder
    with _lock:
        if _recorder is not None and _recorder.target != target:
            _recorder.stop()
            _recorder = None
        if _recorder is None:
            _recorder = Recorder(target)
            if not _atexit_registered:
                _register_atexit()
        return _recorder


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    atexit.register(shutdown_recorder)
    _atexit_registered = True


def shutdown_recorder(timeout: float | None = 10.0) -> None:
    """Write what is buffered and stop the Recorder (at interpreter exit, or when told)."""
    global _recorder
    with _lock:
        if _recorder is not None:
            _recorder.stop(timeout)
            _recorder = None
