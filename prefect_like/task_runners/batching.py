"""The flow half of the distributed runners: batching, dependencies and crashes, engine-agnostic.

``BatchingTaskRunner`` is the Dask and Ray runners' common base; a subclass supplies five engine
hooks (start/stop, submit one batch, cancel, the event channel) and reports each engine task's
outcome to ``_batch_done``. What happens to a submitted call, in order:

1. ``submit`` wraps the call in a ``DistFuture`` and adds it to the pending batch of its task.
   An upstream future still in an unsent batch gets that batch sent first, so a batch never holds
   a run and its upstream. Nothing waits: upstream futures are replaced by ``Upstream``
   placeholders pointing at the upstream batch's engine future (Dask) / ObjectRef (Ray), passed
   to the engine task as arguments, which the engine resolves on the cluster.
2. Batches are sized by measured duration: the first call of a task goes alone as a probe and
   the rest wait (at most ``batch_seconds``) for its time; then a batch holds about
   ``batch_seconds`` of work (1 call for slow tasks, up to ``max_batch_size`` for trivial ones),
   and at most ``batch_bytes`` of arguments and of results (both measured, per call). The time
   per call keeps learning from every batch and follows a slowdown at once (a batch slower than
   the estimate replaces it; a faster one moves it by a fraction), and a batch never holds more
   than its share of the runs in flight (unfinished runs / (4 x worker slots)), so a sweep whose
   first runs are fast and the rest slow still keeps every worker busy.
   A batch goes when full, when submission pauses for a tick, after ``max_linger`` seconds, or
   at once when someone waits on one of its futures.
3. ``worker.run_batch`` runs it (see there); its result carries the final states and the events
   not yet streamed. The events go into this process's buffer (the Recorder's), *then* the
   futures get their states, so a flow that saw a future end never outruns its events.
4. An engine task that raised: if an upstream it was given had not completed on the cluster (it
   crashed or is being re-run), the batch is re-submitted once those upstreams ended, with their
   final states. If its worker died, this process cannot tell which of the runs on that worker
   (this batch's, another thread's, another batch's) killed it, so every run of the batch is
   *lost*: lost for the first time, it is rescheduled and its next attempt runs alone, in a batch
   of one; each further loss uses up one of its ``retries``; a loss with none left, or the
   ``MAX_WORKER_LOSSES``-th (Dask's default allowed-failures + 1: we never take more workers down
   than raw Dask does), ends it CRASHED ("... it was lost N times"). So a bystander of one death
   completes, and a run that kills its worker ends CRASHED after ``min(retries + 2, 4)`` deaths.
   Every re-run is another attempt: a RUNNING state named Rescheduled saying the worker died,
   and ``run_count`` one higher. Any other engine error splits a batch of several calls into
   single re-runs to find the culprit, and ends a single call FAILED. Re-runs number their
   events above everything the earlier attempt could have stored, and this process records the
   end of an attempt (Rescheduled, Crashed) at the top of that attempt's range.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import cloudpickle

from prefect_like.calls import walk
from prefect_like.engine.task_engine import error_details
from prefect_like.futures import TaskFuture
from prefect_like.logging import logger
from prefect_like.results import summarize_call_parameters
from prefect_like.states import Cancelled, Crashed, Failed, State, StateType
from prefect_like.task_runners import shipping
from prefect_like.task_runners.base import (
    DEFAULT_MAX_IN_FLIGHT,
    NOT_STARTED,
    TaskRunner,
    Work,
    when_done,
)
from prefect_like.task_runners.worker import (
    SEQ_STRIDE,
    Channel,
    RemoteResult,
    Upstream,
    replace_upstream,
    settings_for_workers,
)
from prefect_like.tasks import TaskCall
from prefect_like.tracking import events as _events
from prefect_like.tracking.events import task_event

# A run lost with its worker this many times ends CRASHED, whatever its retries: Dask's default
# allowed-failures (3) plus one, so a run that kills its worker takes no more workers down than
# it would on raw Dask.
MAX_WORKER_LOSSES = 4


class DistFuture(TaskFuture[Any]):
    """A task run's future on a distributed runner: waiting on it sends its batch at once."""

    __slots__ = (
        "_runner",
        "_call",
        "_work",
        "_batch",
        "_ref",
        "_slot",
        "_attempt",
        "_runs",
        "_losses",
    )

    def __init__(self, runner: BatchingTaskRunner, call: TaskCall) -> None:
        super().__init__(call.task_run_id, call.task.name)
        self._runner = runner
        self._call: TaskCall | None = call
        self._work: Work | None = None
        self._batch: Batch | None = None
        self._ref: Any = None  # the engine future / ObjectRef whose result holds this run's state
        self._slot = 0
        self._attempt = 0  # re-runs so far (worker deaths, split batches): the seq offset
        self._runs = 0  # attempts lost with their worker: the run_count offset
        self._losses = 0  # worker deaths this run was lost in (Dask may report several at once)

    def add_done_callback(self, fn: Callable[[TaskFuture[Any]], Any]) -> None:
        batch = self._batch
        if self._state is None and batch is not None and batch.ref is None:
            self._runner._send_now(batch)
        super().add_done_callback(fn)


class Batch:
    """Task calls of one task that go to the engine as one engine task."""

    __slots__ = ("task", "futures", "created", "seen", "ref", "home", "uses", "single", "payload_bytes")

    def __init__(self, task: Any, single: bool = False) -> None:
        self.task = task
        self.futures: list[DistFuture] = []
        self.created = time.monotonic()
        self.seen = 0  # its size at the flusher's last tick
        self.ref: Any = None  # the engine's future once sent: its value stays on the cluster
        self.home: Any = None  # the engine future whose end the runner waits for (see _engine_submit)
        self.uses: list[tuple[DistFuture, Any]] = []  # upstream futures and the refs it was given
        self.single = single
        self.payload_bytes = 0  # what its calls' arguments weighed, pickled


class RemoteState(State):
    """A completed run's state whose result is still on the cluster: ``result()`` fetches it
    (once), from the engine object that holds it (``ref``, at ``slot``)."""

    __slots__ = ("_runner", "_remote_ref", "_slot", "_remote")

    def __init__(self, state: State, runner: BatchingTaskRunner, ref: Any, slot: int) -> None:
        super().__init__(state.type, state.name, state.message, None, state.timestamp, state.run_id)
        self._runner = runner
        self._remote_ref = ref
        self._slot = slot
        self._remote: RemoteResult | None = state.result()

    @property
    def fetched(self) -> bool:
        return self._remote is None

    def result(self, raise_on_failure: bool = True) -> Any:
        if self._remote is not None:
            self._runner._fetch([self])
        return super().result(raise_on_failure)

    def _set_fetched(self, value: Any) -> None:
        self._data = value
        self._remote = None
        self._remote_ref = None

    def __reduce__(self) -> tuple[Any, ...]:
        value = self.result()  # sent elsewhere by value: the value goes, not the engine handle
        return (State, (self.type, self.name, self.message, value, self.timestamp, self.run_id))

    def __repr__(self) -> str:
        if self._remote is None:
            return super().__repr__()
        what = f"{self._remote.type_name} of {self._remote.nbytes:,} bytes on the cluster"
        return f"{self.name}(type={self.type.value}, result={what})"


class ResultFetchError(RuntimeError):
    """A result that stayed on the cluster could not be fetched (the cluster is gone, say)."""


class BatchingTaskRunner(TaskRunner):
    """Submits task calls to a distributed engine in adaptively sized batches."""

    name = "batching"

    def __init__(
        self,
        *,
        batch_seconds: float = 0.05,
        max_batch_size: int = 1000,
        batch_bytes: int = 32 * 1024 * 1024,
        event_interval: float = 0.25,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(max_in_flight)
        if batch_seconds < 0 or max_batch_size < 1 or batch_bytes < 1:
            raise ValueError("batch_seconds must be >= 0, max_batch_size and batch_bytes >= 1")
        self.batch_seconds = batch_seconds
        self.max_batch_size = max_batch_size
        self.batch_bytes = batch_bytes
        self.event_interval = event_interval
        self._lock = threading.RLock()

    # -- engine hooks ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _engine_start(self) -> None: ...

    @abc.abstractmethod
    def _engine_stop(self) -> None: ...

    @abc.abstractmethod
    def _engine_channel(self) -> Channel:
        """The picklable channel workers send event batches over."""

    @abc.abstractmethod
    def _engine_submit(
        self, payload: bytes, args: list[Any], options: dict[str, Any], name: str
    ) -> tuple[Any, Any]:
        """Start ``run_batch(payload, channel, interval, *args)``; return the engine's futures of
        the part the flow process fetches (``home_part`` of the value) and of the whole value.
        They may be one future, where the runner gets that part by other means (Dask's does)."""

    @abc.abstractmethod
    def _engine_fetch(self, wanted: list[tuple[Any, int]]) -> list[Any]:
        """The results ``pick_result(value of ref, slot)`` for each ``(ref, slot)``, computed
        beside the batch that holds them, so only those results travel here."""

    @abc.abstractmethod
    def _engine_slots(self) -> int:
        """How many engine tasks the cluster runs at once (worker threads / CPUs)."""

    @abc.abstractmethod
    def _engine_cancel(self, refs: list[Any]) -> None: ...

    @abc.abstractmethod
    def _worker_deaths(self, exc: BaseException) -> int:
        """How many worker deaths the engine error ``exc`` reports (0: it is no worker death)."""

    def _engine_collect_events(self) -> None:
        """Pull streamed events that the engine does not push (called at shutdown)."""

    def _engine_cancellation(self, exc: BaseException) -> str | None:
        """Why the engine cancelled a batch by itself (a restart, another client, a lost
        scheduler), or None if ``exc`` is no such cancellation."""
        return None

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._pending: dict[Any, Batch] = {}
        self._inflight: set[Batch] = set()
        self._seconds_per_call: dict[Any, float] = {}
        self._bytes_per_call: dict[Any, float] = {}  # task function -> argument + result bytes
        self._probing: dict[Any, int] = {}  # task function -> its single runs out while unmeasured
        self._env = settings_for_workers()
        self._key = uuid.uuid4().hex
        self._stopping = False
        self._broken: str | None = None  # why the collector died: every later batch ends Crashed
        self._kept: Any = None  # what the flow returned (``keep``)
        self._wake = threading.Event()
        self._engine_start()
        self._slots = max(1, self._engine_slots())
        self._channel = self._engine_channel()
        self._channel.home = os.getpid()
        self._flusher = threading.Thread(
            target=self._flush_loop, name="prefect-like-batcher", daemon=True
        )
        self._flusher.start()

    def on_shutdown(self, cancelled: bool) -> None:
        try:
            if not cancelled:
                self._engine_collect_events()
                self._fetch_kept()
        finally:
            self._stopping = True
            self._wake.set()
            self._flusher.join()
            self._engine_stop()

    def keep(self, value: Any) -> None:
        self._kept = value

    def _fetch_kept(self) -> None:
        """Fetch the results of what the flow returned (``keep``): the cluster they live on is
        about to be left. Only those: whatever else still holds a future (a thread of this
        runner, a cycle not yet collected) must not bring a sweep's every result home."""
        found: dict[int, RemoteState] = {}

        def visit(target: Any, allowed: bool) -> Any:
            state = target._state if isinstance(target, TaskFuture) else target
            if isinstance(state, RemoteState) and not state.fetched:
                found[id(state)] = state
            return target

        value, self._kept = self._kept, None
        walk(value, visit, (TaskFuture, State))
        kept = list(found.values())
        if kept:
            try:
                self._fetch(kept)
            except ResultFetchError:
                logger.exception("prefect-like could not fetch results from %s", self.name)

    def _fetch(self, states: list[RemoteState]) -> None:
        """Fetch the results of ``states`` from the cluster, in one round trip."""
        wanted = [state for state in states if not state.fetched]
        if not wanted:
            return
        try:
            values = self._engine_fetch([(state._remote_ref, state._slot) for state in wanted])
        except Exception as exc:
            left = "" if self._started else " (the flow run has ended and left the cluster)"
            raise ResultFetchError(
                f"the result of {len(wanted)} task run(s) stayed on the {self.name} cluster and "
                f"could not be fetched{left}: {type(exc).__name__}: {exc}; call .result() in the "
                "flow, or return the futures from it"
            ) from exc
        for state, value in zip(wanted, values, strict=True):
            state._set_fetched(value)

    def start_collector(self, collect: Callable[[], None], name: str) -> threading.Thread:
        """Start the engine's collector thread, watched: if it dies, every run it would have
        ended, and every run submitted after, ends Crashed saying so, instead of waiting forever."""

        def watched() -> None:
            try:
                collect()
            except BaseException as exc:
                self._collector_died(exc)

        thread = threading.Thread(target=watched, name=name, daemon=True)
        thread.start()
        return thread

    def _collector_died(self, exc: BaseException) -> None:
        logger.error(
            "prefect-like's %s collector died; its task runs end Crashed", self.name, exc_info=exc
        )
        why = (
            f"the {self.name} runner stopped hearing from the cluster (its collector thread died: "
            f"{type(exc).__name__}: {exc})"
        )
        with self._lock:
            self._broken = why
            batches = list(self._inflight)
            self._inflight.clear()
            self._wake.set()
        for batch in batches:
            for future in batch.futures:
                if not future.done() and future._call is not None:
                    self._end(future, Crashed(f"Crashed: {why}", exc), exc)

    # -- submission -----------------------------------------------------------------------------

    def new_future(self, call: TaskCall) -> DistFuture:
        return DistFuture(self, call)

    def waits_for(self, call: TaskCall) -> list[TaskFuture[Any]]:
        # Upstreams of this runner are engine arguments; only a future of another runner (a
        # parent flow's), or one itself waiting for such a future, is waited for, by callback.
        return [
            u
            for u in call.upstream
            if not u.done()
            and (not isinstance(u, DistFuture) or u._runner is not self or u._batch is None)
        ]

    def execute(self, work: Work) -> None:
        future = work.future
        assert isinstance(future, DistFuture)
        future._work = work
        self._add(future)

    def _add(self, future: DistFuture) -> None:
        call = future._call
        assert call is not None
        task = call.task
        with self._lock:
            for upstream in call.upstream:
                batch = getattr(upstream, "_batch", None)
                if batch is not None and batch.ref is None:
                    self._send(batch)  # an upstream may never share a batch with its downstream
            fn = task.fn
            if fn not in self._seconds_per_call and self._probing.get(fn, 0) < self._slots:
                self._probing[fn] = self._probing.get(fn, 0) + 1
                self._send_single(future)
                return
            batch = self._pending.get(task)
            if batch is None:
                self._pending[task] = batch = Batch(task)
                self._wake.set()
            future._batch = batch
            batch.futures.append(future)
            size = self._batch_size(fn)
            if size is not None and len(batch.futures) >= size:
                self._send(batch)

    def _batch_size(self, fn: Any) -> int | None:
        """How many calls of ``fn`` make a batch; None while every worker slot runs a probe of it."""
        if self._broken is not None:  # no probe will come back: send each, to end it Crashed
            return 1
        per_call = self._seconds_per_call.get(fn)
        if per_call is None:
            return 1 if self._probing.get(fn, 0) < self._slots else None
        size = min(self.max_batch_size, int(self.batch_seconds / max(per_call, 1e-7)))
        size = min(size, int(self.batch_bytes / max(self._bytes_per_call.get(fn, 0.0), 1.0)))
        # Never more than a share of what is in flight: every worker slot gets batches.
        return max(1, min(size, len(self._unfinished) // (4 * self._slots)))

    def _flush_loop(self) -> None:
        tick = 0.005
        while not self._stopping:
            if not self._pending:
                self._wake.wait()
                self._wake.clear()
                continue
            time.sleep(tick)
            self._flush_due(tick)

    def _flush_due(self, tick: float) -> None:
        """Send the pending batches that are due. A method of its own: the batches it sent die
        with its frame, where a loop variable of ``_flush_loop`` would keep the last one (and
        every result of its runs) alive while the thread waits."""
        now = time.monotonic()
        with self._lock:
            for batch in list(self._pending.values()):
                size = self._batch_size(batch.task.fn)
                if size is None:
                    continue
                paused = len(batch.futures) == batch.seen
                if paused or now - batch.created >= 10 * tick or len(batch.futures) >= size:
                    try:
                        self._send(batch)
                    except Exception as exc:  # this thread must outlive any one batch
                        self._crash_unsent(batch, exc)
                else:
                    batch.seen = len(batch.futures)

    def _crash_unsent(self, batch: Batch, exc: Exception) -> None:
        logger.exception("prefect-like could not send a batch to %s", self.name)
        for future in batch.futures:
            unsent = future._batch is None or future._batch.ref is None
            if unsent and not future.done() and future._call is not None:
                message = f"Crashed: the {self.name} runner could not send it: {type(exc).__name__}: {exc}"
                self._end(future, Crashed(message, exc), exc)

    def _send_now(self, batch: Batch) -> None:
        with self._lock:
            if batch.ref is None and self._pending.get(batch.task) is batch:
                self._send(batch)

    def _send(self, batch: Batch) -> None:
        """Send a pending batch, in chunks of the current batch size (call with the lock held)."""
        if self._pending.get(batch.task) is batch:
            del self._pending[batch.task]
        size = self._batch_size(batch.task.fn) or max(1, len(batch.futures))
        futures = batch.futures
        if len(futures) <= size:
            self._dispatch(batch)
            return
        for start in range(0, len(futures), size):
            chunk = Batch(batch.task)
            chunk.futures = futures[start : start + size]
            self._dispatch(chunk)

    def _send_single(self, future: DistFuture) -> None:
        batch = Batch(future._call.task if future._call else None, single=True)
        batch.futures.append(future)
        self._dispatch(batch)

    def _dispatch(self, batch: Batch) -> None:
        """Ship one batch to the engine (lock held): calls with placeholders, upstream refs as args."""
        args: list[Any] = []
        index: dict[int, int] = {}
        uses: list[tuple[DistFuture, Any]] = []

        def leaf(upstream: Any) -> Upstream:
            if isinstance(upstream, DistFuture) and upstream._runner is self:
                ref = (
                    upstream._ref
                    if upstream.done()
                    else (upstream._batch.ref if upstream._batch else None)
                )
                if ref is not None:
                    uses.append((upstream, ref))
                    if id(ref) not in index:
                        index[id(ref)] = len(args)
                        args.append(ref)
                    return Upstream(
                        index[id(ref)], upstream._slot, upstream.task_run_id, upstream.task_name
                    )
            # Ended in this process (crashed, cancelled) or a foreign future: its state by value.
            args.append(upstream.state)
            return Upstream(len(args) - 1, None, upstream.task_run_id, upstream.task_name)

        calls: list[TaskCall] = []
        offsets: dict[int, tuple[int, int]] = {}
        for position, future in enumerate(batch.futures):
            call = future._call
            assert call is not None
            future._batch, future._slot = batch, position
            if call.upstream:
                call = dataclasses.replace(
                    call,
                    parameters={
                        name: replace_upstream(value, leaf)
                        for name, value in call.parameters.items()
                    },
                    upstream=(True,),
                    wait_for=tuple(replace_upstream(value, leaf) for value in call.wait_for),
                )
            if future._attempt:
                offsets[position] = (future._attempt * SEQ_STRIDE, future._runs)
                # The first loss is free (it may have been a bystander); later ones use retries.
                used = max(0, future._losses - 1)
                if used:
                    retries_left = max(0, call.task.options.retries - used)
                    call = dataclasses.replace(
                        call, task=call.task.with_options(retries=retries_left)
                    )
            calls.append(call)
        batch.uses = uses
        try:
            payload = shipping.dumps((calls, self._env, offsets))
            batch.payload_bytes = len(payload)
        except Exception as exc:
            from prefect_like.errors import SerializationError

            error = SerializationError(_unpicklable(calls, exc))
            self._batch_done(batch, False, error, serialization=True)
            return
        task = batch.futures[0]._call.task  # type: ignore[union-attr]
        options = dict(task.options.engine_options)
        try:
            if self._broken is not None:
                raise RuntimeError(self._broken)
            batch.home, batch.ref = self._engine_submit(payload, args, options, task.name)
        except Exception as exc:  # the engine refused the batch: its runs end, never a hang
            hint = f" (the task's engine_options: {options!r})" if options else ""
            message = f"Crashed: the {self.name} engine refused to run it: {type(exc).__name__}: {exc}{hint}"
            if self._broken is not None:
                message = f"Crashed: {self._broken}"
            for future in batch.futures:
                if not future.done() and future._call is not None:
                    self._end(future, Crashed(message, exc), exc)
            return
        self._inflight.add(batch)

    # -- outcomes -------------------------------------------------------------------------------

    def _batch_done(self, batch: Batch, ok: bool, value: Any, serialization: bool = False) -> None:
        """Called by the engine's collector with a batch's result, or the error it raised."""
        try:
            self._handle_outcome(batch, ok, value, serialization)
        except Exception as exc:  # a bug here must not hang the flow: its runs end CRASHED
            logger.exception("prefect-like could not handle the outcome of a batch")
            for future in batch.futures:
                if not future.done() and future._call is not None:
                    self._end(
                        future,
                        Crashed(f"Crashed: the runner failed to handle the result: {exc}", exc),
                        exc,
                    )

    def _batch_ended_runs(self, batch: Batch, found: list[tuple[int, State]]) -> None:
        """Runs of a batch still running that ended (``worker.Outbox``): their futures end now,
        so a long run does not hold its batch's ended runs until it ends. Their events came
        first. The batch's outcome leaves them be."""
        futures = batch.futures
        for slot, state in found:
            if slot < len(futures):
                future = futures[slot]
                if not future.done() and future._call is not None:
                    self._resolve(future, state)

    def _handle_outcome(self, batch: Batch, ok: bool, value: Any, serialization: bool) -> None:
        if ok:
            small_blob, away, elapsed, events, nbytes = pickle.loads(value)
            states: list[State] = pickle.loads(small_blob)
            for slot, state in away.items():
                states[slot] = state
            if events:
                _events.BUFFER.extend(events)
            fn = batch.task.fn if batch.task is not None else None
            with self._lock:
                self._inflight.discard(batch)
                per_call = elapsed / len(states)
                known = self._seconds_per_call.get(fn)
                self._seconds_per_call[fn] = (
                    per_call if known is None or per_call > known else 0.7 * known + 0.3 * per_call
                )
                sent = batch.payload_bytes / len(states) + nbytes / len(states)
                known_bytes = self._bytes_per_call.get(fn)
                self._bytes_per_call[fn] = (
                    sent if known_bytes is None or sent > known_bytes else 0.7 * known_bytes + 0.3 * sent
                )
                if batch.single:
                    self._probing.pop(fn, None)
            batch.uses = []  # what a failure needs; kept, they would keep the upstream results
            for slot, (future, state) in enumerate(zip(batch.futures, states, strict=True)):
                future._ref, future._slot = batch.ref, slot
                if state.is_completed() and isinstance(state.result(), RemoteResult):
                    state = RemoteState(state, self, batch.ref, slot)
                self._resolve(future, state)
            batch.futures = []  # an engine callback may keep the batch: not its runs' results
            return
        with self._lock:
            self._inflight.discard(batch)
            fn = batch.task.fn if batch.task is not None else None
            if batch.single and self._probing.get(fn, 0) > 0:
                self._probing[fn] -= 1
            batch.futures = [f for f in batch.futures if f._call is not None]  # ended early: done
            if not batch.futures:
                return
            if self._stopping or self._cancelling:
                for future in batch.futures:
                    if not future.done():
                        self._end(future, Cancelled("the flow run ended before it ran"))
                return
            fresh = [u for u, ref in batch.uses if not (u.done() and u._ref is ref)]
        if fresh:  # an upstream did not complete on the cluster: retry once they all ended
            futures = batch.futures
            when_done(fresh, lambda: self._rerun(futures))  # type: ignore[arg-type]
            return
        cancelled = None if serialization else self._engine_cancellation(value)
        if cancelled is not None:  # as raw engine futures do: the runs end, nothing re-runs them
            message = f"Crashed: the {self.name} cluster cancelled it: {cancelled}"
            for future in batch.futures:
                if not future.done() and future._call is not None:
                    self._end(future, Crashed(message, value), value)
            return
        deaths = 0 if serialization else self._worker_deaths(value)
        if deaths:
            for future in batch.futures:
                self._lost(future, value, deaths)
            return
        if len(batch.futures) > 1:  # find the culprit: every call again, on its own
            for future in batch.futures:
                future._attempt += 1
            self._rerun(batch.futures, singles=True)
            return
        (future,) = batch.futures
        self._end(future, Failed(value), value)

    def _lost(self, future: DistFuture, error: BaseException, deaths: int) -> None:
        """A run whose worker died under it: rescheduled, or CRASHED (the rule in step 4 above)."""
        call = future._call
        assert call is not None
        future._losses += deaths
        losses, retries = future._losses, call.task.options.retries
        died = f"the worker died while running task run {call.name!r}"
        why = f"{type(error).__name__}: {error}"
        if losses > min(retries + 1, MAX_WORKER_LOSSES - 1):
            self._end(future, Crashed(f"{died}: it was lost {losses} times ({why})", error), error)
            return
        if losses == 1:
            message = (
                f"{died}, which may have been another run's doing: rescheduled to run alone ({why})"
            )
        else:
            message = f"{died} again: rescheduled, retry {losses - 1} of {retries} ({why})"
        self._emit(
            future,
            State(StateType.RUNNING, "Rescheduled", message),
            {"run_count": future._runs + 2},
        )
        future._attempt += 1
        future._runs += 1
        self._rerun([future], singles=True)

    def _rerun(self, futures: list[DistFuture], singles: bool = False) -> None:
        with self._lock:
            if singles:
                for future in futures:
                    self._send_single(future)
                return
            batch = Batch(futures[0]._call.task)  # type: ignore[union-attr]
            batch.futures = list(futures)
            self._dispatch(batch)

    def _emit(self, future: DistFuture, state: State, data: dict[str, Any]) -> None:
        call = future._call
        assert call is not None
        seq = future._attempt * SEQ_STRIDE + SEQ_STRIDE - 1
        _events.emit(task_event(call.task_run_id, call.flow_run_id, seq, state, data))

    def _end(self, future: DistFuture, state: State, error: BaseException | None = None) -> None:
        """End a run in this process (crashed, failed to ship, cancelled) and record it."""
        call = future._call
        assert call is not None
        state.run_id = call.task_run_id
        data: dict[str, Any] = {
            "parameters": summarize_call_parameters(call.parameters),
            "run_count": future._runs + (1 if state.type is not StateType.CANCELLED else 0),
            "duration": 0.0,
        }
        if error is not None:
            data["error"] = error_details(error)
        self._emit(future, state, data)
        future._ref = None
        self._resolve(future, state)

    def _resolve(self, future: DistFuture, state: State) -> None:
        work = future._work
        future._batch = None
        future._call = None
        future._work = None  # its call holds the arguments: upstream futures and their results
        if work is not None:
            work.finish(state)

    def on_cancel(self) -> None:
        with self._lock:
            for batch in list(self._pending.values()):
                for future in batch.futures:
                    if future._work is not None:
                        future._work.cancel(NOT_STARTED)
            self._pending.clear()
            inflight = list(self._inflight)
            self._stopping = True
            self._engine_cancel([ref for batch in inflight for ref in (batch.home, batch.ref)])
            for batch in inflight:
                for future in batch.futures:
                    if (
                        future._work is not None
                    ):  # outranks anything its attempt sent from the cluster
                        future._work.cancel(ON_CLUSTER, started=True)
            self._inflight.clear()


def _unpicklable(calls: list[TaskCall], exc: Exception) -> str:
    """What cannot travel to the cluster, and why: the first argument cloudpickle refuses."""
    for call in calls:
        for name, value in call.parameters.items():
            try:
                cloudpickle.dumps(value)
            except Exception as error:
                return (
                    f"argument {name!r} of task run {call.name!r} ({type(value).__name__}) cannot be "
                    f"sent to the cluster: {error}; pass something picklable, or create it inside the task"
                )
    return f"task run arguments cannot be sent to the cluster: {exc}"


# This process cannot tell which calls of a batch sent to the cluster had begun.
ON_CLUSTER = "Cancelled while running or queued on the cluster: the flow run was interrupted"


def pythonpath_for_workers() -> str:
    """A PYTHONPATH under which worker processes import prefect_like and these runners."""
    import prefect_like

    core = os.path.dirname(os.path.dirname(os.path.abspath(prefect_like.__file__)))
    runners = os.path.join(core, "runners")  # the Dask and Ray hooks, in a source checkout
    parts = [
        core,
        *([runners] if os.path.isdir(runners) else []),
        *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
    ]
    return os.pathsep.join(dict.fromkeys(parts))
