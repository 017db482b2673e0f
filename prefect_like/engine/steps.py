"""One body, two drivers: how the engine is written once for sync and async runs.

A task run's and a flow run's steps are each one generator (``task_engine.steps``,
``flow_engine.steps``). Wherever sync and async code would differ (calling the user's
function, sleeping before a retry, blocking work such as shutting a runner down) the body
yields a ``Step`` and receives its outcome: its value, or its exception thrown back in at the
``yield``. ``drive`` runs the steps on this thread; ``drive_async`` awaits them, sending
blocking work to a thread so the event loop keeps going. So every behaviour of a run (retries,
timeouts, signals, warnings, events) exists once, and async is only the other driver (the
spirit of dask's ``get_sync`` over ``get_async``).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")

Steps = Generator["Step", Any, R]


class Step:
    """Something the body needs done that sync and async code do differently."""

    __slots__ = ()

    def run(self) -> Any:
        raise NotImplementedError

    async def run_async(self) -> Any:
        raise NotImplementedError


class Blocking(Step):
    """Plain blocking work: done in place, or in a worker thread under an event loop."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def run(self) -> Any:
        return self.fn()

    async def run_async(self) -> Any:
        return await asyncio.to_thread(self.fn)


class Sleep(Step):
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self) -> None:
        time.sleep(self.seconds)

    async def run_async(self) -> None:
        await asyncio.sleep(self.seconds)


class Call(Step):
    """Call the user's function: ``fn()`` gives a value (sync) or an awaitable (async), with a
    timeout that raises ``timeout_error`` (``what`` names the run in its message)."""

    __slots__ = ("fn", "timeout", "what", "timeout_error")

    def __init__(
        self, fn: Callable[[], Any], timeout: float | None, what: str, timeout_error: type[TimeoutError]
    ) -> None:
        self.fn = fn
        self.timeout = timeout
        self.what = what
        self.timeout_error = timeout_error

    def run(self) -> Any:
        if self.timeout is None:
            return self.fn()
        return call_with_timeout(self.fn, self.timeout, self.what, self.timeout_error)

    async def run_async(self) -> Any:
        awaitable: Awaitable[Any] = self.fn()
        if self.timeout is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except TimeoutError:
            raise self.timeout_error(f"{self.what} exceeded its timeout of {self.timeout:g} s") from None


def drive(steps: Steps[R]) -> R:
    """Run a body's steps to its end on this thread."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = step.run(), None
        except BaseException as exc:  # thrown back into the body, which decides
            value, error = None, exc


async def drive_async(steps: Steps[R]) -> R:
    """Run a body's steps to its end, awaiting each."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = await step.run_async(), None
        except BaseException as exc:
            value, error = None, exc


def _raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask a thread to stop by raising in it at its next bytecode (a blocking C call ends first)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def call_with_timeout(
    fn: Callable[[], Any], timeout: float, what: str, error: type[TimeoutError] = TimeoutError
) -> Any:
    """Run ``fn`` in a helper thread and stop waiting for it after ``timeout`` seconds.

    Python cannot kill a thread: a timed-out function is asked to stop (an exception raised
    at its next bytecode) and abandoned, and ``error`` is raised at once so the run ends and
    the flow goes on. ``what`` names the run in the message, e.g. "task run 'train-3'".
    """
    outcome: list[Any] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as exc:  # delivered to the waiting thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name=f"prefect-like-timeout {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _raise_in_thread(thread, TimeoutError)
        raise error(f"{what} exceeded its timeout of {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
