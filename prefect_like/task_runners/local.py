"""The in-process runners: sequential, a thread pool, an event loop, and a process pool.

Each implements ``execute`` on top of ``base.TaskRunner``, which owns dependencies, the
lifecycle and cancellation. The thread runner also overrides ``map`` to hand its workers runs
in small batches (one queue item per batch, each run still its own tracked task run).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from prefect_like.futures import FutureList
from prefect_like.states import Cancelled
from prefect_like.task_runners.base import (
    ABANDONED,
    DEFAULT_MAX_IN_FLIGHT,
    NOT_STARTED,
    TaskRunner,
    Work,
    run_payload,
    when_done,
)
from prefect_like.tasks import TaskCall


class SequentialTaskRunner(TaskRunner):
    """Runs each task in the thread that submits it (or ends its last upstream), at once."""

    name = "sequential"

    def execute(self, work: Work) -> None:
        work.run()


class ThreadPoolTaskRunner(TaskRunner):
    """Runs tasks on a pool of worker threads; a run with upstreams is queued by their callbacks.

    ``map`` hands the workers runs in small batches sized by how long runs take: one at a time
    while they are slow (a batch never holds back parallel work), up to ``MAX_BATCH`` while
    they take microseconds, so a worker takes one queue item, not one per run.
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
        self._seconds_per_run = 1.0

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"

    def on_start(self) -> None:
        self._queue: queue.SimpleQueue[list[Work] | None] = queue.SimpleQueue()
        self._seconds_per_run = 1.0  # until measured, assume runs are slow: batches of one
        self._threads = [
            threading.Thread(target=self._work, name=f"prefect-like-worker-{index}", daemon=True)
            for index in range(self.max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def execute(self, work: Work) -> None:
        self._queue.put([work])

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        futures: FutureList[Any] = FutureList()
        window = self.max_in_flight
        batch: list[Work] = []
        track = self.track
        pending = iter(calls)
        size = self._batch_size()  # sized again after each batch handed over, not per run
        for index in itertools.count():
            if index >= window:  # before the next call is made: an interrupt here orphans none
                futures[index - window].wait()
            call = next(pending, None)
            if call is None:
                break
            if call.upstream:  # never batched: it waits for its own upstreams
                futures.append(self.submit(call))
                continue
            work = track(call)
            futures.append(work.future)
            batch.append(work)
            if len(batch) >= size:
                self._queue.put(batch)
                batch = []
                size = self._batch_size()
        if batch:
            self._queue.put(batch)
        return futures

    def _batch_size(self) -> int:
        return max(1, min(self.MAX_BATCH, int(self.BATCH_SECONDS / max(self._seconds_per_run, 1e-9))))

    def _work(self) -> None:
        get = self._queue.get
        clock = time.perf_counter
        while (batch := get()) is not None:
            started = clock()
            for work in batch:
                work.run()
            # A moving average of how long one run takes, for sizing the next batches.
            self._seconds_per_run = 0.8 * self._seconds_per_run + 0.2 * (clock() - started) / len(batch)

    def on_shutdown(self, cancelled: bool) -> None:
        for _ in self._threads:
            self._queue.put(None)
        if not cancelled:  # a cancelled run's thread may be stuck in it: the threads are daemons
            for thread in self._threads:
                thread.join()
        self._threads = []


class AsyncioTaskRunner(TaskRunner):
    """Runs async tasks concurrently on one event loop (in its own thread), sync tasks in a pool.

    An async run is a coroutine on the loop, so a thousand waiting runs cost a thousand
    coroutines, not threads; ``map`` hands the loop its runs in chunks, one thread-safe call per
    chunk. Sync tasks go to a thread pool.
    """

    name = "asyncio"
    CHUNK = 256

    def __init__(self, max_workers: int | None = None, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        super().__init__(max_in_flight)
        self.max_workers = max_workers
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_start(self) -> None:
        self._loop = loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolTaskRunner(self.max_workers, self.max_in_flight)
        self._pool.on_start()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="prefect-like-asyncio", daemon=True)
        self._thread.start()
        ready.wait()

    def execute(self, work: Work) -> None:
        if work.call.task.is_async:
            self._loop.call_soon_threadsafe(self._schedule, [work])  # type: ignore[union-attr]
        else:
            self._pool.execute(work)

    def map(self, calls: Iterable[TaskCall]) -> FutureList[Any]:
        calls = iter(calls)
        first = next(calls, None)
        if first is None:
            return FutureList()
        calls = itertools.chain([first], calls)
        if not first.task.is_async:  # one task per map: all sync or all async
            return super().map(calls)
        futures: FutureList[Any] = FutureList()
        window = self.max_in_flight
        size = min(self.CHUNK, max(1, window // 2))  # a chunk is always handed over before its wait
        chunk: list[Work] = []
        loop = self._loop
        assert loop is not None
        pending = iter(calls)
        for index in itertools.count():
            if index >= window:  # always in a chunk already handed to the loop
                futures[index - window].wait()
            call = next(pending, None)
            if call is None:
                break
            if call.upstream:
                futures.append(self.submit(call))
                continue
            work = self.track(call)
            futures.append(work.future)
            chunk.append(work)
            if len(chunk) >= size:
                loop.call_soon_threadsafe(self._schedule, chunk)
                chunk = []
        if chunk:
            loop.call_soon_threadsafe(self._schedule, chunk)
        return futures

    def _schedule(self, chunk: list[Work]) -> None:
        create, run, add = self._loop.create_task, self._run, self._tasks.add  # type: ignore[union-attr]
        for work in chunk:
            add(create(run(work)))  # held here: the loop keeps only weak references to tasks

    async def _run(self, work: Work) -> None:
        try:
            await work.run_async()
        except asyncio.CancelledError:
            # A run the engine had begun recorded its own Cancelled; one cancelled before it
            # began is recorded here. Either way it is recorded once.
            if work.started:
                work.finish(Cancelled(ABANDONED))
            else:
                work.cancel(NOT_STARTED)
        finally:  # not a done-callback: that would be one more loop iteration per run
            self._tasks.discard(asyncio.current_task())

    def on_cancel(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def cancel_all() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):  # a task that ignores cancellation is abandoned
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=5)

    def on_shutdown(self, cancelled: bool) -> None:
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join()
        self._pool.on_shutdown(cancelled)
        loop.close()
        self._loop = None


class ProcessPoolTaskRunner(TaskRunner):
    """Runs tasks in a pool of worker processes (``concurrent.futures.ProcessPoolExecutor``).

    For CPU-bound tasks that hold the GIL. A run's arguments and result cross the process
    boundary by cloudpickle; its events come home with its result.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        super().__init__(max_in_flight)
        self.max_workers = max_workers or os.cpu_count() or 1

    def on_start(self) -> None:
        # Spawned, not forked: the flow process has threads (the Recorder's, the pool's).
        self._pool = ProcessPoolExecutor(self.max_workers, mp_context=multiprocessing.get_context("spawn"))

    def execute(self, work: Work) -> None:
        answer = self._pool.submit(run_payload, work.payload())

        def done(answer: Any) -> None:
            try:
                work.finish_payload(answer.result())
            except BaseException as exc:  # the worker process died, or the pool was shut down
                work.crash(exc)

        answer.add_done_callback(done)

    def on_shutdown(self, cancelled: bool) -> None:
        self._pool.shutdown(wait=not cancelled, cancel_futures=cancelled)


__all__ = [
    "AsyncioTaskRunner",
    "ProcessPoolTaskRunner",
    "SequentialTaskRunner",
    "ThreadPoolTaskRunner",
    "when_done",
]
