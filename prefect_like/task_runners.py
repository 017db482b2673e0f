"""Task runners: where task runs execute, and who waits for their upstreams.

A runner is a small interface, like ``concurrent.futures.Executor``: ``submit`` is the one
primitive (a ``TaskCall`` in, a ``TaskFuture`` out), ``map`` is built on it with a bounded number
of runs in flight, ``start``/``shutdown`` (or ``with``) bracket a flow run, and ``duplicate``
gives a fresh runner with the same settings for each flow run and subflow.

The runner resolves dependencies, never the flow: a call whose upstream futures are not done is
handed to the engine only when they are, by the engine's own means (done-callbacks here, Dask
futures and Ray ObjectRefs as arguments in those runners). No thread ever blocks waiting for an
upstream task, so a chain of 10,000 dependent tasks runs on two worker threads.

Runners are found by name through the ``prefect_like.task_runners`` entry-point group;
``sequential``, ``thread`` and ``asyncio`` are built in, ``dask`` and ``ray`` come with their extras.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from prefect_like.engine import run_task, run_task_async
from prefect_like.errors import MissingEngineError, UnknownTaskRunnerError
from prefect_like.futures import FutureList, TaskFuture
from prefect_like.results import summarize_parameters
from prefect_like.states import Cancelled, State, StateType
from prefect_like.tasks import TaskCall
from prefect_like.tracking.events import OVERRIDE_SEQ, TASK, Event, emit

DEFAULT_MAX_IN_FLIGHT = 10_000


class TaskRunner(abc.ABC):
    """Runs task calls and hands back futures of their runs."""

    name: ClassVar[str] = "base"

    def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight

    @abc.abstractmethod
    def submit(self, call: TaskCall) -> TaskFuture[Any]:
        """Run ``call`` once its upstream futures are done; return the future of its run."""

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        """Submit every call, keeping at most ``max_in_flight`` unfinished at a time."""
        futures: FutureList[Any] = FutureList()
        window = self.max_in_flight
        submit = self.submit
        append = futures.append
        for index, call in enumerate(calls):
            # Every run more than `window` places back has ended before the next is submitted,
            # so at most `window` are in flight; a done() check is all it costs when they have.
            if index >= window:
                futures[index - window].wait()
            append(submit(call))
        return futures

    def start(self) -> None:
        """Acquire what the runner needs (threads, a cluster); called as a flow run begins."""

    def shutdown(self, cancel_pending: bool = False) -> None:
        """Wait for every submitted run to end, then release resources.

        With ``cancel_pending`` runs that have not started end CANCELLED instead of running.
        """

    def duplicate(self) -> TaskRunner:
        """A new, unstarted runner with the same settings."""
        return type(self)()

    def __enter__(self) -> TaskRunner:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.shutdown(cancel_pending=exc_type is not None and not issubclass(exc_type, Exception))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def cancel_call(call: TaskCall, future: TaskFuture[Any], reason: str, started: bool = False) -> None:
    """End a run as CANCELLED: one that never started, or (``started``) one abandoned mid-run."""
    state = Cancelled(reason)
    state.run_id = call.task_run_id
    seq = OVERRIDE_SEQ if started else 1
    emit(Event(TASK, call.task_run_id, seq, call.flow_run_id, state.timestamp, StateType.CANCELLED.value,
               state.name, reason, {"parameters": summarize_parameters(call.parameters) if not call.upstream else {}}))
    future._set_state(state)


NOT_STARTED = "Cancelled before it started: the flow run was interrupted"
ABANDONED = "Cancelled while running: the flow run was interrupted"


def when_done(futures: list[TaskFuture[Any]], then: Callable[[], None]) -> None:
    """Call ``then()`` once every future in ``futures`` is done, from the last one's callback."""
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then()

    for future in futures:
        future.add_done_callback(one_done)


class SequentialTaskRunner(TaskRunner):
    """Runs each task in the flow's own thread, the moment it is submitted."""

    name = "sequential"

    def submit(self, call: TaskCall) -> TaskFuture[Any]:
        future: TaskFuture[Any] = TaskFuture(call.task_run_id, call.task.name)
        future._set_state(_run_sync_or_async(call))
        return future


Batch = list[tuple[TaskCall, TaskFuture[Any]]]


class ThreadPoolTaskRunner(TaskRunner):
    """Runs tasks on a pool of worker threads; a run with upstreams is queued by their callbacks.

    ``map`` hands the workers runs in small batches sized by how long runs take: one at a time
    while they are slow (a batch never holds back parallel work), up to ``MAX_BATCH`` while
    they take microseconds, so a worker takes one queue item, not one per run. Each run is
    still its own tracked task run with its own future.
    """

    name = "thread"
    BATCH_SECONDS = 0.002  # aim for batches of about this much work
    MAX_BATCH = 64

    def __init__(self, max_workers: int | None = None, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        super().__init__(max_in_flight)
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._threads: list[threading.Thread] = []
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._submitted = 0
        self._finished = 0
        self._idle = threading.Event()
        self._closing = False
        self._cancelling = False
        self._seconds_per_run = 1.0  # until measured, assume runs are slow: batches of one
        self._running: dict[str, tuple[TaskCall, TaskFuture[Any]]] = {}

    def duplicate(self) -> ThreadPoolTaskRunner:
        return ThreadPoolTaskRunner(self.max_workers, self.max_in_flight)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("this ThreadPoolTaskRunner is already started; use duplicate()")
        for index in range(self.max_workers):
            thread = threading.Thread(target=self._work, name=f"prefect-like-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, call: TaskCall) -> TaskFuture[Any]:
        if not self._threads:
            raise RuntimeError("the task runner is not started")
        future: TaskFuture[Any] = TaskFuture(call.task_run_id, call.task.name)
        with self._lock:
            self._submitted += 1
        self._enqueue([(call, future)])
        return future

    def _enqueue(self, batch: Batch) -> None:
        """Queue a batch of one run with upstreams once they are done, any other at once."""
        call = batch[0][0]
        waiting = [u for u in call.upstream if not u.done()] if call.upstream else None
        if waiting:
            when_done(waiting, lambda: self._queue.put(batch))
        else:
            self._queue.put(batch)

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        if not self._threads:
            raise RuntimeError("the task runner is not started")
        futures: FutureList[Any] = FutureList()
        window = self.max_in_flight
        batch: Batch = []
        for index, call in enumerate(calls):
            if index >= window:
                futures[index - window].wait()
            future: TaskFuture[Any] = TaskFuture(call.task_run_id, call.task.name)
            futures.append(future)
            if call.upstream:  # never batched: it waits for its own upstreams
                with self._lock:
                    self._submitted += 1
                self._enqueue([(call, future)])
                continue
            batch.append((call, future))
            if len(batch) >= self._batch_size():
                self._put_batch(batch)
                batch = []
        if batch:
            self._put_batch(batch)
        return futures

    def _batch_size(self) -> int:
        return max(1, min(self.MAX_BATCH, int(self.BATCH_SECONDS / max(self._seconds_per_run, 1e-9))))

    def _put_batch(self, batch: Batch) -> None:
        with self._lock:
            self._submitted += len(batch)
        self._queue.put(batch)

    def _work(self) -> None:
        get = self._queue.get
        lock = self._lock
        clock = time.perf_counter
        running = self._running
        while (batch := get()) is not None:
            started = clock()
            for call, future in batch:
                if self._cancelling:
                    cancel_call(call, future, NOT_STARTED)
                    continue
                running[call.task_run_id] = (call, future)
                state = _run_sync_or_async(call)
                del running[call.task_run_id]
                if not future.done():  # else it was cancelled while it ran
                    future._set_state(state)
            # A moving average of how long one run takes, for sizing the next batches.
            self._seconds_per_run = 0.8 * self._seconds_per_run + 0.2 * (clock() - started) / len(batch)
            with lock:
                self._finished += len(batch)
                if self._closing and self._finished == self._submitted:
                    self._idle.set()

    def shutdown(self, cancel_pending: bool = False) -> None:
        if not self._threads:
            return
        with self._lock:
            self._cancelling = cancel_pending
            self._closing = True
            if self._finished == self._submitted:
                self._idle.set()
        if cancel_pending:
            self._cancel_all()
        else:
            self._idle.wait()
        for _ in self._threads:
            self._queue.put(None)
        if not cancel_pending:  # a cancelled run's threads may be mid-task: they are daemons
            for thread in self._threads:
                thread.join()
        self._threads = []

    def is_running(self, call: TaskCall) -> bool:
        return call.task_run_id in self._running

    def _cancel_all(self) -> None:
        """End every queued run and every running one CANCELLED, without waiting for them.

        Python cannot stop a running thread, so a run in progress is recorded as cancelled
        and abandoned; its thread is a daemon and ends with the process.
        """
        for call, future in list(self._running.values()):
            if not future.done():
                cancel_call(call, future, ABANDONED, started=True)
        while True:  # cancelling a run queues its downstream runs: drain until none are left
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return
            if batch is not None:
                for call, future in batch:
                    if not future.done():
                        cancel_call(call, future, NOT_STARTED)


def _run_sync_or_async(call: TaskCall) -> State:
    """Run a call to its end in this thread; an async task gets an event loop of its own."""
    if not call.task.is_async:
        return run_task(call)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_task_async(call))
    # Called from inside a running loop (an async flow body): run it on a loop in another thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run_task_async(call)).result()


class AsyncioTaskRunner(TaskRunner):
    """Runs async tasks concurrently on one event loop (in its own thread), sync tasks in a pool.

    An async run's upstreams are awaited on the loop, so a waiting run costs a coroutine, not a
    thread; ``map`` hands the loop its runs in chunks, one thread-safe call per chunk. Sync tasks
    go straight to a ``ThreadPoolTaskRunner``, which waits for upstreams by callbacks.
    """

    CHUNK = 256

    name = "asyncio"

    def __init__(self, max_workers: int | None = None, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        super().__init__(max_in_flight)
        self.max_workers = max_workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sync: ThreadPoolTaskRunner | None = None  # runs the sync tasks
        self._pending = 0
        self._idle: asyncio.Event | None = None
        self._cancelling = False
        self._tasks: set[asyncio.Task[None]] = set()

    def duplicate(self) -> AsyncioTaskRunner:
        return AsyncioTaskRunner(self.max_workers, self.max_in_flight)

    def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("this AsyncioTaskRunner is already started; use duplicate()")
        self._loop = asyncio.new_event_loop()
        self._sync = ThreadPoolTaskRunner(self.max_workers, self.max_in_flight)
        self._sync.start()
        ready = threading.Event()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._idle = asyncio.Event()
            self._idle.set()
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="prefect-like-asyncio", daemon=True)
        self._thread.start()
        ready.wait()

    def submit(self, call: TaskCall) -> TaskFuture[Any]:
        if self._loop is None or self._sync is None:
            raise RuntimeError("the task runner is not started")
        if not call.task.is_async:
            return self._sync.submit(call)
        future: TaskFuture[Any] = TaskFuture(call.task_run_id, call.task.name)
        self._loop.call_soon_threadsafe(self._schedule, [(call, future)])
        return future

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        if self._loop is None or self._sync is None:
            raise RuntimeError("the task runner is not started")
        calls = iter(calls)
        first = next(calls, None)
        if first is None:
            return FutureList()
        calls = itertools.chain([first], calls)
        if not first.task.is_async:  # one task per map: all sync or all async
            return self._sync.map(calls)
        futures: FutureList[Any] = FutureList()
        window = max(self.max_in_flight, 2 * self.CHUNK)
        chunk: Batch = []
        for index, call in enumerate(calls):
            if index >= window:  # always in a chunk already handed to the loop
                futures[index - window].wait()
            future: TaskFuture[Any] = TaskFuture(call.task_run_id, call.task.name)
            futures.append(future)
            chunk.append((call, future))
            if len(chunk) >= self.CHUNK:
                self._loop.call_soon_threadsafe(self._schedule, chunk)
                chunk = []
        if chunk:
            self._loop.call_soon_threadsafe(self._schedule, chunk)
        return futures

    def _schedule(self, chunk: Batch) -> None:
        assert self._idle is not None
        self._pending += len(chunk)
        self._idle.clear()
        for call, future in chunk:
            running = asyncio.ensure_future(self._run(call, future))
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    async def _run(self, call: TaskCall, future: TaskFuture[Any]) -> None:
        assert self._loop is not None and self._idle is not None
        started = False
        try:
            waiting = [u for u in call.upstream if not u.done()]
            if waiting:
                await asyncio.gather(*(self._wrap(u) for u in waiting))
            if self._cancelling:
                cancel_call(call, future, NOT_STARTED)
            else:
                started = True
                future._set_state(await run_task_async(call))
        except asyncio.CancelledError:
            # Record each cancelled run exactly once: the engine records a run it began.
            if future.done():
                pass
            elif started:
                future._set_state(Cancelled(ABANDONED))
            else:
                cancel_call(call, future, NOT_STARTED)
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def _wrap(self, future: TaskFuture[Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        loop = self._loop
        waiter = loop.create_future()

        def done(_: Any) -> None:
            loop.call_soon_threadsafe(_resolve, waiter)

        future.add_done_callback(done)
        return waiter

    def shutdown(self, cancel_pending: bool = False) -> None:
        if self._loop is None:
            return
        loop = self._loop
        self._cancelling = cancel_pending
        if cancel_pending:
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in list(self._tasks)])

        async def drain() -> None:
            assert self._idle is not None
            await asyncio.sleep(0)  # let calls scheduled just before shutdown register
            while self._pending:
                await self._idle.wait()
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(drain(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None and self._sync is not None
        self._thread.join()
        self._sync.shutdown(cancel_pending=cancel_pending)
        loop.close()
        self._loop = None


def _resolve(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_BUILTIN: dict[str, type[TaskRunner]] = {
    "sequential": SequentialTaskRunner,
    "thread": ThreadPoolTaskRunner,
    "threads": ThreadPoolTaskRunner,
    "asyncio": AsyncioTaskRunner,
}
_EXTRAS = {"dask": ("prefect_like_dask", "DaskTaskRunner", "dask"), "ray": ("prefect_like_ray", "RayTaskRunner", "ray")}


def registered_task_runners() -> dict[str, Any]:
    """Runner names to their entry points (or classes), built-in and installed."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = dict(_BUILTIN)
    for entry in entry_points(group="prefect_like.task_runners"):
        found.setdefault(entry.name, entry)
    return found


def load_task_runner_class(name: str) -> type[TaskRunner]:
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _EXTRAS:
        module_name, class_name, extra = _EXTRAS[name]
        try:
            module = __import__(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            if missing.split(".")[0] in ("dask", "distributed", "ray") or missing == module_name:
                raise MissingEngineError(name.capitalize(), extra) from exc
            raise
        runner_class: type[TaskRunner] = getattr(module, class_name)
        return runner_class
    entry = registered_task_runners().get(name)
    if entry is None:
        known = ", ".join(sorted(set(registered_task_runners()) | set(_EXTRAS)))
        raise UnknownTaskRunnerError(f"no task runner named {name!r}; known runners: {known}")
    loaded: type[TaskRunner] = entry.load()
    return loaded


def resolve_task_runner(spec: Any) -> TaskRunner:
    """A fresh runner from an instance (duplicated), a class, or a registered name."""
    if isinstance(spec, TaskRunner):
        return spec.duplicate()
    if isinstance(spec, type) and issubclass(spec, TaskRunner):
        return spec()
    if isinstance(spec, str):
        return load_task_runner_class(spec.lower())()
    raise TypeError(f"task_runner must be a TaskRunner, a TaskRunner class or a runner name, got {spec!r}")
