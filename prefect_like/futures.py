"""Futures of task runs, in the standard library's words.

A ``TaskFuture`` ends when its task run reaches a final state. Its producer side is one public,
fenced method, ``set_state`` (like ``concurrent.futures.Future.set_result``: only task runners,
the engine and tests call it); the first state set wins, so a run cancelled while it ran keeps
its Cancelled state when the abandoned call returns. A failed run is a FAILED state, not an
exception. Everything a
user calls (``result``, ``exception``, ``wait``, ``done``, ``add_done_callback``) and the module
functions ``wait`` and ``as_completed`` are built on ``done``/``add_done_callback``/``state``, so a
runner whose engine has futures of its own (Dask, Ray) may subclass and override those three.

No lock per future: one module lock guards the rare race between adding a callback and the state
being set, and waiting creates a ``threading.Event`` only for a future someone actually waits on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from prefect_like.states import Pending, State

R = TypeVar("R")

_LOCK = threading.Lock()
SIGNAL_CHECK_SECONDS = 0.2


class TaskFuture(Generic[R]):
    """The future of one task run."""

    __slots__ = ("task_run_id", "task_name", "_state", "_callbacks", "__weakref__")

    def __init__(self, task_run_id: str, task_name: str) -> None:
        self.task_run_id = task_run_id
        self.task_name = task_name
        self._state: State | None = None
        self._callbacks: list[Callable[[TaskFuture[R]], Any]] | None = None

    # -- the producer side: task runners, the engine and tests only --------------------------------

    def set_state(self, state: State) -> bool:
        """End the future with the run's final ``state`` and call its done callbacks.

        Only task runners, the engine and tests call this. Returns False, changing nothing, if
        the future had already ended.
        """
        with _LOCK:
            if self._state is not None:
                return False
            self._state = state
            callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                callback(self)
        return True

    @property
    def state(self) -> State:
        """The final state once done, else a Pending state."""
        state = self._state
        return Pending() if state is None else state

    def done(self) -> bool:
        return self._state is not None

    def add_done_callback(self, fn: Callable[[TaskFuture[R]], Any]) -> None:
        """Call ``fn(future)`` when the run ends (at once if it has ended)."""
        if self._state is None:
            with _LOCK:
                if self._state is None:
                    if self._callbacks is None:
                        self._callbacks = [fn]
                    else:
                        self._callbacks.append(fn)
                    return
        fn(self)

    # -- built on the three above -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends or ``timeout`` seconds pass; True if it ended."""
        if self.done():
            return True
        event = threading.Event()
        self.add_done_callback(lambda _: event.set())
        if timeout is None and threading.current_thread() is threading.main_thread():
            # A signal that another thread received (a task's os.kill, say) runs its Python
            # handler only when the main thread runs bytecode again: wake up to let it.
            while not event.wait(SIGNAL_CHECK_SECONDS):
                pass
            return True
        return event.wait(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; raises its exception if it failed (or returns it, if told)."""
        if not self.done() and not self.wait(timeout):
            raise TimeoutError(f"task run {self.task_name!r} did not finish within {timeout} s")
        return self.state.result(raise_on_failure=raise_on_failure)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the run failed with, or None if it completed."""
        if not self.wait(timeout):
            raise TimeoutError(f"task run {self.task_name!r} did not finish within {timeout} s")
        state = self.state
        return None if state.is_completed() else state.result(raise_on_failure=False)

    def __repr__(self) -> str:
        return f"TaskFuture({self.task_name!r}, {self.task_run_id!r}, {self.state!r})"


class FutureList(list[TaskFuture[R]]):
    """The futures ``Task.map`` returns: a list, plus ``result()`` and ``wait()`` over all of them."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        if timeout is None:
            return [f.result(None, raise_on_failure) for f in self]
        deadline = time.monotonic() + timeout
        return [f.result(max(0.0, deadline - time.monotonic()), raise_on_failure) for f in self]


class DeferredFutureList(FutureList[R]):
    """What ``.map`` over an upstream future returns at once: the futures arrive when the
    upstream has ended and the runs are made; reading the list waits for them."""

    def __init__(self) -> None:
        super().__init__()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def fill(self, futures: Iterable[TaskFuture[R]]) -> None:
        list.extend(self, futures)
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    def _arrived(self) -> None:
        while not self._ready.wait(SIGNAL_CHECK_SECONDS):
            pass
        if self._error is not None:
            raise self._error

    def __iter__(self) -> Iterator[TaskFuture[R]]:
        self._arrived()
        return super().__iter__()

    def __len__(self) -> int:
        self._arrived()
        return super().__len__()

    def __getitem__(self, index: Any) -> Any:
        self._arrived()
        return super().__getitem__(index)

    def __repr__(self) -> str:
        return "DeferredFutureList(<waiting for its upstream>)" if not self._ready.is_set() else super().__repr__()


class DoneAndNotDoneFutures(NamedTuple):
    done: set[TaskFuture[Any]]
    not_done: set[TaskFuture[Any]]


def wait(futures: Iterable[TaskFuture[Any]], timeout: float | None = None) -> DoneAndNotDoneFutures:
    """Wait for all ``futures`` to end (or ``timeout``); returns the done and the not-done sets."""
    futures = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in futures:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not future.wait(remaining):
            break
    done = {f for f in futures if f.done()}
    return DoneAndNotDoneFutures(done, set(futures) - done)


def as_completed(
    futures: Iterable[TaskFuture[R]], timeout: float | None = None
) -> Iterator[TaskFuture[R]]:
    """Yield each future as its run ends, in the order they end."""
    pending = set(futures)
    finished: queue.SimpleQueue[TaskFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"{len(pending)} of the futures did not finish within {timeout} s")
        try:
            future = finished.get(timeout=remaining)
        except queue.Empty:
            continue
        if future in pending:
            pending.discard(future)
            yield future


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


# Prefect 3's names for the same classes (``prefect.futures``).
PrefectFuture = TaskFuture
PrefectFutureList = FutureList
