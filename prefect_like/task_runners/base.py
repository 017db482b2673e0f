"""The task runner contract: where task runs execute, and who waits for their upstreams.

A runner is a small interface, like ``concurrent.futures.Executor``. The base class owns
everything every runner must get right; a runner implements one method, ``execute``, and may
hook ``on_start``, ``on_shutdown`` and ``on_cancel``:

- ``submit(call)`` makes the run's future and a ``Work`` item, and hands the item to
  ``execute`` once the call's upstream futures are done, from their done-callbacks: no thread
  ever blocks waiting for an upstream, so a chain of 10,000 dependent tasks runs on two
  threads. ``execute`` must not block for long: it queues or ships the work. It may run
  ``work.run()`` on any thread (or ``await work.run_async()`` on an event loop), or send
  ``work.payload()`` to another process, run it there with ``run_payload`` and give the
  answer to ``work.finish_payload``. An exception from ``execute`` ends that run Crashed.
- ``map(calls)`` is ``submit`` for each, with at most ``max_in_flight`` runs unfinished.
- ``start()`` resets the bookkeeping and calls ``on_start`` (threads, a cluster); a runner is
  restartable: start, shutdown, start again.
- ``shutdown()`` waits for every submitted run, those still waiting on upstreams included,
  then calls ``on_shutdown``. ``shutdown(cancel_pending=True)`` (Ctrl-C, SIGTERM, a flow
  timeout) calls ``on_cancel`` (stop what the engine can stop), then ends every unfinished run
  CANCELLED: one that never started "before it started", one running "while running" (Python
  cannot stop a thread: the run is abandoned and its late result ignored).
- ``duplicate()`` gives an unstarted runner built with the same constructor arguments; the
  flow engine takes one per flow run, so one instance can serve many flows.

A runner must pass the shipped conformance suite, ``prefect_like.testing.RunnerConformance``.
"""

from __future__ import annotations

import abc
import itertools
import pickle
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import cloudpickle

from prefect_like.futures import FutureList, TaskFuture, when_done
from prefect_like.results import summarize_call_parameters
from prefect_like.states import Cancelled, Crashed, State
from prefect_like.tasks import TaskCall
from prefect_like.tracking import events as _events
from prefect_like.tracking.events import OVERRIDE_SEQ, task_event

DEFAULT_MAX_IN_FLIGHT = 10_000
NOT_STARTED = "Cancelled before it started: the flow run was interrupted"
ABANDON_GRACE = 0.5  # seconds a cancelled flow run's running task runs get to end by themselves
ABANDONED = "Cancelled while running: the flow run was interrupted"


class Work:
    """One submitted task run: its call, its future, and the ways to run it."""

    __slots__ = ("call", "future", "runner", "started")

    def __init__(self, call: TaskCall, future: TaskFuture[Any], runner: TaskRunner) -> None:
        self.call = call
        self.future = future
        self.runner = runner
        self.started = False

    def run(self) -> None:
        """Run the task run to its end in this thread and end its future."""
        if self.runner._cancelling:
            self.cancel(NOT_STARTED)
            return
        self.started = True
        self.finish(self.call.run())

    async def run_async(self) -> None:
        """Run the task run to its end from an event loop and end its future."""
        if self.runner._cancelling:
            self.cancel(NOT_STARTED)
            return
        self.started = True
        self.finish(await self.call.run_async())

    def payload(self) -> bytes:
        """The run as bytes for another process: the call, its upstreams as their final states,
        and this process's ``PREFECT_LIKE_*`` settings. Run it there with ``run_payload``."""
        from prefect_like.task_runners.worker import settings_for_workers

        call = self.call
        if call.upstream:
            call = call.with_upstream_states()
        self.started = True
        return cloudpickle.dumps((call, settings_for_workers()))

    def finish_payload(self, answer: bytes) -> None:
        """End the run with what ``run_payload`` returned: its events, then its state."""
        state, events = pickle.loads(answer)
        _events.BUFFER.extend(events)
        self.finish(state)

    def finish(self, state: State) -> bool:
        """End the run's future with its final state; False if it had ended (cancelled) already."""
        if not self.future.set_state(state):
            return False
        self.runner._finished(self)
        return True

    def cancel(self, reason: str, started: bool = False) -> bool:
        """End the run CANCELLED and record it: ``started`` for one abandoned while it ran, whose
        record outranks whatever its abandoned call still sends."""
        call = self.call
        state = Cancelled(reason)
        state.run_id = call.task_run_id
        if not self.future.set_state(state):  # it ended first, or another thread cancelled it
            return False
        data = {"parameters": summarize_call_parameters(call.parameters)}
        _events.emit(task_event(call.task_run_id, call.flow_run_id, OVERRIDE_SEQ if started else 1, state, data))
        self.runner._finished(self)
        return True

    def crash(self, exc: BaseException) -> bool:
        """End the run Crashed: the runner failed to run it (an engine error, say)."""
        from prefect_like.engine.task_engine import error_details

        call = self.call
        state = Crashed(f"the task runner could not run it: {type(exc).__name__}: {exc}", exc)
        state.run_id = call.task_run_id
        if not self.future.set_state(state):
            return False
        data = call.describe({"parameters": summarize_call_parameters(call.parameters), "run_count": 0,
                              "error": error_details(exc)})
        _events.emit(task_event(call.task_run_id, call.flow_run_id, OVERRIDE_SEQ, state, data))
        self.runner._finished(self)
        return True

    def __repr__(self) -> str:
        return f"Work({self.call.name!r}, {self.future.state!r})"


def run_payload(payload: bytes) -> bytes:
    """Run a ``Work.payload()`` in this process; the answer goes to ``Work.finish_payload``."""
    from prefect_like.task_runners.worker import apply_settings, take_events

    call, settings = pickle.loads(payload)
    apply_settings(settings)
    state = call.run()
    return cloudpickle.dumps((state, take_events()))


class TaskRunner(abc.ABC):
    """Runs task calls and hands back futures of their runs; see the module docstring."""

    name: ClassVar[str] = "base"
    _arguments: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> TaskRunner:
        runner = super().__new__(cls)
        runner._arguments = (args, kwargs)  # what duplicate() builds the copy with
        return runner

    def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._started = False
        self._cancelling = False
        self._closing = False
        self._unfinished: dict[str, Work] = {}
        self._deferred = 0  # submissions under way on threads of their own (``defer``)
        self._idle = threading.Condition()

    # -- what a runner implements --------------------------------------------------------------

    @abc.abstractmethod
    def execute(self, work: Work) -> None:
        """Start running ``work``, whose upstreams are done: see the module docstring."""

    def on_start(self) -> None:
        """Acquire what the runner needs (threads, a cluster); called by ``start``."""

    def on_shutdown(self, cancelled: bool) -> None:
        """Release what ``on_start`` acquired; every run has ended by now."""

    def on_cancel(self) -> None:
        """Stop what the engine can stop (queued work, remote tasks); runs end CANCELLED after."""

    def keep(self, value: Any) -> None:
        """Called with what the flow body returned, before ``shutdown``: the futures and states
        in it are the ones used after the flow ends. A runner whose results live elsewhere (on
        a cluster) brings theirs home in ``on_shutdown``; nothing else is fetched."""

    # -- the lifecycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Start the runner for a flow run; after ``shutdown`` it can start again."""
        if self._started:
            raise RuntimeError(f"this {type(self).__name__} is already started; use duplicate()")
        self._unfinished = {}
        self._cancelling = False
        self._closing = False
        self.on_start()
        self._started = True

    def shutdown(self, cancel_pending: bool = False) -> None:
        """Wait for every submitted run to end (or, with ``cancel_pending``, end them CANCELLED),
        then release the runner's resources."""
        if not self._started:
            return
        try:
            self._closing = True
            if cancel_pending:
                self._cancel_all()
            else:
                with self._idle:
                    while self._unfinished or self._deferred:
                        self._idle.wait(0.5)
        finally:
            self._started = False
            self.on_shutdown(cancel_pending)

    def _cancel_all(self) -> None:
        self._cancelling = True
        try:
            self.on_cancel()
        finally:
            # A run under way gets a moment to end by itself, so its record is what it did and
            # not a guess made while it was recording its own end. Ending a run may queue its
            # downstream runs (their callbacks): take until none is left.
            deadline = time.monotonic() + ABANDON_GRACE
            while self._unfinished:
                works = list(self._unfinished.values())
                for work in works:
                    if not work.started:
                        work.cancel(NOT_STARTED)
                for work in works:
                    if work.started and work.future.wait(max(0.0, deadline - time.monotonic())):
                        continue
                    work.cancel(ABANDONED, started=True)
                for work in works:
                    self._unfinished.pop(work.call.task_run_id, None)

    def duplicate(self) -> TaskRunner:
        """A new, unstarted runner built with the same arguments."""
        args, kwargs = self._arguments
        return type(self)(*args, **kwargs)

    def __enter__(self) -> TaskRunner:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.shutdown(cancel_pending=exc_type is not None and not issubclass(exc_type, Exception))

    def __repr__(self) -> str:
        args, kwargs = self._arguments
        shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- submission ----------------------------------------------------------------------------

    def new_future(self, call: TaskCall) -> TaskFuture[Any]:
        """The future of a run; a runner whose engine has futures of its own may subclass it."""
        return TaskFuture(call.task_run_id, call.task.name)

    def waits_for(self, call: TaskCall) -> list[TaskFuture[Any]]:
        """The upstream futures to wait for before ``execute``: by default every one not done.
        A runner whose engine resolves dependencies itself waits only for the others."""
        return [u for u in call.upstream if not u.done()] if call.upstream else []

    def track(self, call: TaskCall) -> Work:
        """Make and count the work item of a call (``submit`` does this; a ``map`` override too)."""
        if not self._started:
            raise RuntimeError("the task runner is not started")
        work = Work(call, self.new_future(call), self)
        self._unfinished[call.task_run_id] = work
        return work

    def submit(self, call: TaskCall) -> TaskFuture[Any]:
        """Run ``call`` once its upstream futures are done; return the future of its run."""
        work = self.track(call)
        waiting = self.waits_for(call) if call.upstream else None
        if waiting:
            when_done(waiting, lambda: self._ready(work))
        else:
            self._ready(work)
        return work.future

    def defer(self, submit: Callable[[], None]) -> None:
        """Run ``submit`` (which submits or maps) on a thread of its own, now; ``shutdown`` waits
        for it. For submissions decided in a done-callback, which must not block."""
        with self._idle:
            self._deferred += 1

        def run() -> None:
            try:
                submit()
            finally:
                with self._idle:
                    self._deferred -= 1
                    self._idle.notify_all()

        threading.Thread(target=run, name="prefect-like-deferred-map", daemon=True).start()

    def _ready(self, work: Work) -> None:
        if self._cancelling:
            work.cancel(NOT_STARTED)
            return
        try:
            self.execute(work)
        except Exception as exc:  # a run the engine refused must end, never hang its flow
            work.crash(exc)

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        """Submit every call, keeping at most ``max_in_flight`` unfinished at a time."""
        futures: FutureList[Any] = FutureList()
        window = self.max_in_flight
        submit = self.submit
        append = futures.append
        pending = iter(calls)
        for index in itertools.count():
            # Every run more than `window` places back has ended before the next is made and
            # submitted, so at most `window` are in flight (a done() check is all it costs when
            # they have), and an interrupt while waiting leaves no call made but not tracked.
            if index >= window:
                futures[index - window].wait()
            call = next(pending, None)
            if call is None:
                break
            append(submit(call))
        return futures

    def _finished(self, work: Work) -> None:
        unfinished = self._unfinished
        unfinished.pop(work.call.task_run_id, None)
        if self._closing and not unfinished:
            with self._idle:
                self._idle.notify_all()
