"""The Recorder: moves events from the buffer to the tracking sink, and never waits on the sink.

Task runs only append events to ``events.BUFFER``; they never wait on the tracker. Two threads
per process take them from there:

1. The Recorder thread wakes every ``interval`` seconds (at once when a flow asks it to flush),
   drains the buffer in batches of up to ``max_batch`` events, folds each (``events.fold``),
   counts the final states of task runs per flow run as they pass (``take_counts``: no query,
   no lock on the hot path), adds the heartbeats of live flow runs, and hands the batch to the
   sender. It does no I/O on the tracker, so nothing the tracker does can hold it.
2. The sender thread writes batches to the sink, oldest first: the embedded SQLite store
   (``writer.StoreWriter``) or the HTTP sink (``http.HttpSink``). What it has not delivered
   yet it holds in memory, at most ``PREFECT_LIKE_RECORDER_MAX_HELD`` events (a metric event
   weighs a third of an event per report it holds: ``weight``); past that the
   oldest go to a spill file (``spill.SpillFile``). A failed write is retried with backoff (at
   most ``MAX_BACKOFF`` seconds apart), always the oldest events first, so a flow run's final
   event is stored only after every event before it: its record never counts task runs the
   store does not hold.

Flushing is ordered by the buffer itself: ``flush()`` appends a marker and waits until every
event before it is delivered (or, see below, lost).

A live flow run sends a heartbeat every ``heartbeat_seconds``: a run whose heartbeats stop (its
process was killed) is marked CRASHED by the server, or by the next command that reads the
embedded store (``Store.mark_crashed``).

**When tracking cannot write.** The first failed write is a warning at once, naming the cause:
the store's error and its likely OS cause (a full disk, the file size limit), or the server's
answer or connection error; recovery is logged too. At a flow run's end (``settle``, then
``report``, both called by the flow engine) the flow waits for its events while the tracker keeps
storing them, and at most ``PREFECT_LIKE_FLUSH_TIMEOUT`` seconds without one write succeeding;
what is still undelivered then is spilled and named in an error: how many events, why, which
files, and that ``prefect-like runs flush`` delivers them. A server that
accepts connections and never answers holds only the sender, never the Recorder or the flow.
Events that can be kept nowhere (the spill cannot be written either) stay in memory up to the
bound; past it, and when the process exits, they are lost: counted exactly, reported with both
causes, and left out of the flow run's task-run counts.

**What a tracking failure does to a flow run** is ``PREFECT_LIKE_ON_TRACKING_ERROR``:

- ``continue`` (the default): the work goes on. A run whose events are all kept (stored, or in
  spill files for ``runs flush``) ends as its work did, with the error above at its end. A run
  some of whose events could not be kept (lost, or in memory only) ends FAILED with a
  ``TrackingError``: the flow call raises, a script exits non-zero.
- ``stop``: the work stops when writes begin to fail: a live flow run on the main thread is
  stopped as a signal would stop it (queued runs never start, running ones are cancelled) and
  ends FAILED with a ``TrackingError``; a run whose events are not all stored when it ends fails
  the same way. So whatever runs it (a parent flow, a script, ``prefect-like run``) stops there
  rather than go on with work its tracker cannot see.

``continue`` is the default because a sweep's work is the expensive part: a tracker that loses
its disk or its server for a while is no reason to throw away hours of results, as long as every
event is kept and ``runs flush`` can deliver it once the cause is fixed. Losing events is never
silent, under either setting.

At interpreter exit an atexit handler stops the Recorder: it waits at most
``PREFECT_LIKE_FLUSH_TIMEOUT`` for delivery, on threads started long before (no executor, which
refuses work once the interpreter shuts down), and spills what is left.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prefect_like import settings
from prefect_like.errors import TrackingError
from prefect_like.tracking import events as _events
from prefect_like.tracking.events import Event, heartbeat_event, rows
from prefect_like.tracking.spill import SpillFile

log = logging.getLogger("prefect_like.tracking")

MAX_BACKOFF = 5.0  # seconds between retries of a failing sink, at most
STOPPING_BACKOFF = 0.5  # at most, while the process exits: it has nothing else to do
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


def _n(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def weight(events: list[Event]) -> int:
    """What a batch weighs against the memory bound, in events: a report in a metric event
    counts a third of one (about 350 bytes held, against 1 KB for a task run's final event)."""
    extra = rows(events) - len(events)
    return len(events) + extra // 3


class _Held:
    """Events in memory not delivered yet; ``start`` is the position of the first in the stream."""

    __slots__ = ("start", "events", "weight")

    def __init__(self, start: int, events: list[Event]) -> None:
        self.start = start
        self.events = events
        self.weight = weight(events)  # what the memory bound counts


class _Sender:
    """Delivers batches to the sink on its own thread, oldest first, keeping what it cannot.

    Every event handed over gets a position in the stream; a flush waits for the lowest
    position still undelivered to pass its own. Held batches, spilled ranges and the batch in
    flight are all ordered by position, so the oldest always goes first.
    """

    def __init__(self, sink: Sink, target: str, max_held: int, merge: int) -> None:
        self.sink = sink
        self.target = target
        self.max_held = max_held
        self._merge = merge
        self._cond = threading.Condition()
        self._held: collections.deque[_Held] = collections.deque()
        self._held_events = 0
        self._held_weight = 0  # the held events' ``weight``: what the memory bound counts
        self._spill = SpillFile()
        # Spilled ranges of positions, [start, count], in the order they are in the spill file.
        self._spilled: collections.deque[list[int]] = collections.deque()
        self._flight: _Held | None = None  # the held batch being written now
        self._flight_since = 0.0
        self._accepted = 0  # positions handed out
        self.delivered = 0  # events written so far: how a flow's end tells slow from stuck
        self._waiters: list[tuple[int, threading.Event]] = []
        self.failure: str | None = None  # why the last write failed; None once one succeeds
        self._failures = 0
        self._retry_at = 0.0
        self.lost = 0
        self.lost_finals = 0  # task runs whose final state was among the lost events
        self._lost_counts: dict[Any, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._lost_why: str | None = None
        self.on_failure: Callable[[str], None] | None = None  # told (on this thread) as writes begin to fail
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prefect-like-sender", daemon=True)
        self._thread.start()

    # -- what the Recorder calls ---------------------------------------------------------------

    def put(self, events: list[Event]) -> None:
        """Queue a batch; never waits on the sink (past the memory bound it writes a spill file)."""
        with self._cond:
            start = self._accepted
            self._accepted += len(events)
            last = self._held[-1] if self._held else None
            if (
                last is not None
                and last is not self._flight
                and len(last.events) + len(events) <= self._merge
            ):
                added = weight(events)
                last.events.extend(events)  # fewer, fuller writes when the sink is slow or back
                last.weight += added
            else:
                entry = _Held(start, events)
                self._held.append(entry)
                added = entry.weight
            self._held_events += len(events)
            self._held_weight += added
            while self._held_weight > self.max_held and self._spill_oldest(lose=True):
                pass
            self._cond.notify_all()

    def when_delivered(self, done: threading.Event) -> None:
        """Set ``done`` once everything handed over so far is delivered (or lost)."""
        with self._cond:
            self._waiters.append((self._accepted, done))
            self._release_waiters()

    def take_lost_counts(self, flow_run_id: str) -> collections.Counter[str]:
        with self._cond:
            return self._lost_counts.pop(flow_run_id, collections.Counter())

    def keep_on_disk(self) -> int:
        """Spill everything held in memory, the batch in flight too, so it outlives this
        process; how many events the spill could not take (they stay in memory)."""
        with self._cond:
            while self._spill_oldest(lose=False, in_flight=True):
                pass
            return self._held_events

    def unsent(self) -> int:
        """Events handed over and not delivered: in memory, in spill files, or lost."""
        with self._cond:
            return self._spill.events + self._held_events + self.lost

    def describe(self) -> str:
        """What is not stored yet, why, and where it is: one sentence for the user."""
        with self._cond:
            waiting = self._spill.events + self._held_events
            cause = self.failure
            if cause is None and self._flight is not None:
                cause = (
                    f"a write has had no answer for {time.monotonic() - self._flight_since:.0f} s"
                )
            parts = []
            if waiting:
                parts.append(
                    f"{_n(waiting, 'event')} {_are(waiting)} not stored in {self.target} ({cause or 'still being written'})"
                )
            if self._spill.events:
                files = self._spill.files()
                more = f" and {_n(len(files) - 1, 'more file')}" if len(files) > 1 else ""
                parts.append(
                    f"{self._spill.events:,} {_are(self._spill.events)} kept in {files[0]}{more}; run `prefect-like runs flush` to "
                    "deliver them once the tracker takes events again (for a server, the next run does too)"
                )
            if self._held_events and self._spill.error:
                parts.append(
                    f"{self._held_events:,} {_are(self._held_events)} held in memory only and lost if this process ends first: "
                    f"the spill cannot be written ({self._spill.error})"
                )
            elif self._held_events:
                parts.append(f"{self._held_events:,} {_are(self._held_events)} held in memory, waiting for the tracker")
            if self.lost:
                parts.append(self._lost_sentence())
            return "; ".join(parts) or "the Recorder has not taken every event off the buffer yet"

    def stop(self, timeout: float) -> None:
        """Deliver what is left within ``timeout``; spill the rest (and say so); close the sink."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._retry_at = min(self._retry_at, time.monotonic() + STOPPING_BACKOFF)
            self._cond.notify_all()
            while self._backlog() and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            self._closed = True  # a write still under way changes nothing from here on
            while self._spill_oldest(lose=True, in_flight=True):
                pass
            self._spill.release()
            self._cond.notify_all()
            if self._spill.events or self.lost:
                (log.error if self.lost else log.warning)("%s", self.describe())
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            return  # a write that never returns (a server that never answers) dies with the process
        try:
            self.sink.close()
        except Exception:
            log.exception("closing the tracking sink failed")

    # -- keeping and losing --------------------------------------------------------------------

    def _backlog(self) -> bool:
        return bool(self._held or self._spill.events)

    def _spill_oldest(self, lose: bool, in_flight: bool = False) -> bool:
        """Move the oldest held batch (not the one in flight, unless asked) to the spill file.

        What the spill cannot take is lost if ``lose`` (past the memory bound, or at exit), else
        stays held. False when there was nothing to move, or nothing could be.
        """
        index = 0
        if self._held and self._held[0] is self._flight and not in_flight:
            index = 1
        if index >= len(self._held):
            return False
        entry = self._held[index]
        kept = self._spill.append(entry.events) if entry.events else 0
        last = self._spilled[-1] if self._spilled else None
        if last is not None and last[0] + last[1] == entry.start:
            last[1] += kept  # contiguous with the last range: few ranges, cheap to scan
        elif kept:
            self._spilled.append([entry.start, kept])
        rest = entry.events[kept:]
        if rest and not lose:
            if kept:
                self._held[index] = left = _Held(entry.start + kept, rest)
                self._held_events -= kept
                self._held_weight -= entry.weight - left.weight
            return False
        del self._held[index]
        self._held_events -= len(entry.events)
        self._held_weight -= entry.weight
        if rest:
            self._lose(rest, self._spill.error)
        self._release_waiters()
        return True

    def _lose(self, events: list[Event], why: str | None) -> None:
        first = not self.lost
        self.lost += len(events)
        before = sum(sum(c.values()) for c in self._lost_counts.values())
        _events.fold(events, self._lost_counts)  # counts their task runs' final states per flow run
        self.lost_finals += sum(sum(c.values()) for c in self._lost_counts.values()) - before
        tracker = (
            f"the tracker failed ({self.failure})"
            if self.failure
            else f"the tracker was slower than the flow (more than {self.max_held:,} events waited for it, "
            "PREFECT_LIKE_RECORDER_MAX_HELD)"
        )
        self._lost_why = f"{tracker} and the spill could not be written ({why})"
        if first and not self._closed:  # at exit, stop() says how many in all
            log.error("%s", self._lost_sentence())

    def _spill_unreadable(self, exc: Exception) -> None:
        self.lost += self._spill.discard()
        self._spilled.clear()
        self._lost_why = f"the spill file could not be read back ({type(exc).__name__}: {exc})"
        log.error("%s", self._lost_sentence())
        self._release_waiters()

    def _lost_sentence(self) -> str:
        among = (
            f" (the final states of {_n(self.lost_finals, 'task run')} among them)"
            if self.lost_finals
            else ""
        )
        return f"{_n(self.lost, 'tracking event')} were lost{among}: {self._lost_why}"

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        oldest = self._oldest()
        still = []
        for position, done in self._waiters:
            if position <= oldest:
                done.set()
            else:
                still.append((position, done))
        self._waiters = still

    def _oldest(self) -> int:
        """The position of the oldest undelivered event (the next to hand out, if none)."""
        oldest = min((start for start, count in self._spilled if count), default=self._accepted)
        return min(oldest, self._held[0].start) if self._held else oldest

    # -- the thread ----------------------------------------------------------------------------

    def _next(self) -> tuple[list[Event], int, _Held | None] | None:
        """What to write next, oldest first: (events, spilled chunks, held batch); None to exit."""
        with self._cond:
            while True:
                if self._closed or (self._stopping and not self._backlog()):
                    return None
                wait = self._retry_at - time.monotonic() if self.failure else 0.0
                if not self._backlog() or wait > 0:
                    self._cond.wait(wait if self._backlog() else None)
                    continue
                if self._spill.events and (not self._held or self._oldest() < self._held[0].start):
                    try:
                        events, chunks = self._spill.peek(self._merge)
                    except (OSError, ValueError) as exc:  # a spill file removed or damaged under us
                        self._spill_unreadable(exc)
                        continue
                    return events, chunks, None
                entry = self._held[0]
                self._flight, self._flight_since = entry, time.monotonic()
                return entry.events, 0, entry

    def _run(self) -> None:
        while (work := self._next()) is not None:
            events, chunks, entry = work
            try:
                self.sink.write(events)
            except Exception as exc:  # kept and retried: the sender must outlive any one failure
                self._failed(exc)
                continue
            finally:
                with self._cond:
                    self._flight = None
            self._delivered(events, chunks, entry)

    def _delivered(self, events: list[Event], chunks: int, entry: _Held | None) -> None:
        with self._cond:
            if self._closed:
                return
            if entry is None:
                self._spill.delivered(chunks)
                count = len(events)
                while count:
                    first = self._spilled[0]
                    taken = min(count, first[1])
                    first[0] += taken
                    first[1] -= taken
                    count -= taken
                    if not first[1]:
                        self._spilled.popleft()
            elif self._held and self._held[0] is entry:  # not moved to the spill meanwhile
                self._held.popleft()
                self._held_events -= len(entry.events)
                self._held_weight -= entry.weight
            self.delivered += len(events)
            recovered, self.failure, self._failures = self.failure, None, 0
            self._release_waiters()
            self._cond.notify_all()
        if recovered:
            log.info(
                "tracking %s takes events again (after: %s); delivering what was kept",
                self.target,
                recovered,
            )

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            first = self.failure is None
            self._failures += 1
            self.failure = f"{type(exc).__name__}: {exc}"
            cap = STOPPING_BACKOFF if self._stopping else MAX_BACKOFF
            self._retry_at = time.monotonic() + min(cap, 0.05 * 2 ** min(self._failures, 7))
            failures = self._failures
        if first and self.on_failure is not None:
            self.on_failure(self.failure)
        if first or failures == 10 or failures % 100 == 0:
            log.warning(
                "tracking cannot write to %s: %s; events are kept (in memory, past %s in %s) and retried",
                self.target,
                self.failure,
                _n(self.max_held, "event"),
                self._spill.directory,
            )


class Recorder:
    """Drains the event buffer, in batches, to a sender that delivers them to one sink."""

    def __init__(
        self, target: str, interval: float | None = None, max_batch: int | None = None
    ) -> None:
        self.target = target
        self.interval = (
            interval if interval is not None else settings.float_setting("RECORDER_INTERVAL", 0.2)
        )
        self.max_batch = max_batch or settings.int_setting("RECORDER_MAX_BATCH", 50_000)
        self.max_held = settings.int_setting("RECORDER_MAX_HELD", 200_000)
        self._sink = open_sink(target)
        self._sender = _Sender(self._sink, target, self.max_held, min(self.max_batch, HELD_BATCH))
        self._sender.on_failure = self._failing
        self._wake = threading.Event()
        self._stopping = False
        self._counts: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._carried: list[_events.PendingCall] = []  # pending calls held for the next batch
        self.heartbeat_seconds = settings.float_setting("HEARTBEAT_SECONDS", 10.0)
        self._live: dict[str, list[int]] = {}  # flow run id -> [next heartbeat seq]
        # flow run id -> (its PREFECT_LIKE_ON_TRACKING_ERROR and FLUSH_TIMEOUT, events lost before it)
        self._runs: dict[str, tuple[str, float, int]] = {}
        self._stoppers: dict[str, Callable[[str], None]] = {}
        self._deadlines: dict[str, float] = {}  # flow run id -> when its end stops waiting
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name="prefect-like-recorder", daemon=True)
        self._thread.start()

    @property
    def final_flush_timeout(self) -> float:
        """Seconds a flow's end, and the process's exit, wait for delivery (read when asked)."""
        return settings.float_setting("FLUSH_TIMEOUT", 30.0)

    @property
    def failure(self) -> str | None:
        """Why the tracker's last write failed; None while it takes events."""
        return self._sender.failure

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

    def watch(self, flow_run_id: str, on_stop: Callable[[str], None] | None = None) -> None:
        """Send heartbeats for this flow run until ``unwatch``; its end is ``settle`` and ``report``.

        Under ``PREFECT_LIKE_ON_TRACKING_ERROR=stop``, ``on_stop(cause)`` is called (on the
        sender's thread) when writes begin to fail while the run is live."""
        # Read now, so that a bad value stops the run before it starts, not at its end.
        policy = settings.on_tracking_error()
        self._runs[flow_run_id] = (policy, self.final_flush_timeout, self._sender.lost)
        if policy == "stop" and on_stop is not None:
            self._stoppers[flow_run_id] = on_stop
        self._live[flow_run_id] = [0]
        self._next_heartbeat = 0.0

    def unwatch(self, flow_run_id: str) -> None:
        self._live.pop(flow_run_id, None)
        self._stoppers.pop(flow_run_id, None)

    def _failing(self, cause: str) -> None:
        for on_stop in list(self._stoppers.values()):
            on_stop(cause)

    def take_counts(self, flow_run_id: str) -> dict[str, int]:
        """The final states of a flow run's task runs the tracker has or will have (call after
        ``flush``): those among lost events are left out."""
        counts = self._counts.pop(flow_run_id, collections.Counter())
        counts.subtract(self._sender.take_lost_counts(flow_run_id))
        return {name: n for name, n in counts.items() if n > 0}

    def settle(self, flow_run_id: str) -> TrackingError | None:
        """At a flow run's end, before its final event: wait for its events to be stored (while
        writes succeed; at most FLUSH_TIMEOUT without one), spill what is not, and return the error that fails the run under
        its ``PREFECT_LIKE_ON_TRACKING_ERROR``, if any."""
        policy, timeout, lost_before = self._runs.pop(
            flow_run_id, ("continue", self.final_flush_timeout, self._sender.lost)
        )
        stored = self._flush_while_storing(timeout)
        self._deadlines[flow_run_id] = time.monotonic() + timeout
        in_memory = 0 if stored else self._sender.keep_on_disk()
        if self._sender.lost > lost_before or in_memory:
            return TrackingError(
                f"tracking could not keep every event of this flow run: {self._sender.describe()}"
            )
        if not stored and policy == "stop":
            return TrackingError(
                f"PREFECT_LIKE_ON_TRACKING_ERROR=stop and this flow run's events are not all stored: {self._sender.describe()}"
            )
        return None

    def _flush_while_storing(self, timeout: float) -> bool:
        """``flush``, waiting as long as the tracker keeps storing events: ``timeout`` is how
        long the wait may go without one write succeeding, not a limit on the whole wait. A
        store writing a million runs' backlog is slow, not stuck, and what it is writing now
        would only go to a spill file for ``runs flush`` to write again."""
        marker = _Flush()
        _events.emit(marker)
        self._wake.set()
        seen = self._sender.delivered
        while not marker.done.wait(timeout):
            if timeout <= 0 or self._sender.delivered == seen:
                return False
            seen = self._sender.delivered
        return True

    def report(self, flow_run_id: str, flow_run_name: str) -> None:
        """After a flow run's final event: wait for it (within what is left of FLUSH_TIMEOUT);
        if the tracker still lacks events, spill them and say how many, why, and where."""
        deadline = self._deadlines.pop(flow_run_id, time.monotonic() + self.final_flush_timeout)
        if self.flush(timeout=max(0.0, deadline - time.monotonic())):
            return
        self._sender.keep_on_disk()
        log.error("Flow run %r: %s", flow_run_name, self._sender.describe())

    def abandon(self, timeout: float = 1.0) -> str | None:
        """The process exits now, without waiting for the tracker (a second Ctrl-C): hand what
        is buffered to the sender (within ``timeout``), keep on disk what it has not delivered,
        and say in one sentence what became of it; None if the tracker has every event."""
        drained = self.flush(timeout, delivered=False)
        self._sender.keep_on_disk()
        if drained and not self._sender.unsent():
            return None
        unread = "" if drained else f"; {len(_events.BUFFER):,} more were still being recorded and are lost"
        return self._sender.describe() + unread

    def describe_backlog(self) -> str:
        """What the tracker does not have yet, why, and where it is kept."""
        return self._sender.describe()

    def backlog(self) -> int:
        """Events handed to the sender and not delivered yet, in memory (what the bound limits)."""
        return self._sender._held_events

    def stop(self, timeout: float | None = None) -> None:
        timeout = self.final_flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._sender.stop(max(0.0, deadline - time.monotonic()))

    # -- the thread --------------------------------------------------------------------------

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

    def _run(self) -> None:
        while True:
            self._wake.wait(min(self.interval, self.heartbeat_seconds))
            self._wake.clear()
            try:
                beats = self._heartbeats()
                if beats:
                    self._sender.put(beats)
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
            if not batch:
                return
            # Calls made within the last interval wait for the next batch, where most of them
            # have ended (see events.fold); a pass that drained nothing new carries nothing.
            carry_from = time.time() - self.interval if fresh and not self._stopping else None
            events, markers, self._carried = _events.fold(batch, self._counts, carry_from)
            for marker in markers:
                marker.drained.set()
            if events:
                self._sender.put(events)
            for marker in markers:
                self._sender.when_delivered(marker.done)
            if not fresh:
                return


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


def shutdown_recorder(timeout: float | None = None) -> None:
    """Deliver what is buffered (at most ``timeout``, default FLUSH_TIMEOUT) and stop the
    Recorder: at interpreter exit, or when told."""
    global _recorder
    with _lock:
        if _recorder is not None:
            _recorder.stop(timeout)
            _recorder = None
