"""Ctrl-C and SIGTERM: one way a flow run ends on a signal, whatever started it.

While a flow run is on the main thread (a script, ``prefect-like run``, an async flow under
``asyncio.run``), ``handled(run, task)`` gives SIGINT and SIGTERM one handler:

1. The first signal records why (``reason()``) and interrupts the flow where it is. It raises
   ``Interrupted`` on the main thread when that thread runs the flow's own code (a sync flow,
   or an async flow whose loop thread is busy in sync code: a blocking ``result()``, a task run
   inline), and cancels the flow's asyncio task when its loop is idle. The flow engine then ends
   the run: the runner cancels what has not started and abandons what runs (both recorded
   Cancelled), the flow run is recorded CANCELLED, and the events are flushed.
2. A second signal while that happens exits at once (exit status 130, or 143 for SIGTERM) and
   says what could not be flushed.
3. The interrupt reaches the flow's caller as ``KeyboardInterrupt`` (for SIGTERM its subclass
   ``Interrupted``), so ``except KeyboardInterrupt`` works as it always did. Left uncaught, it
   prints one line (what was recorded, where, and how to resume) instead of a traceback, and
   the process exits as Python exits on Ctrl-C (status 130; 1 for SIGTERM).

A nested flow run (a subflow) shares the outermost run's handler. A task that raises
``KeyboardInterrupt`` or ``SystemExit`` itself, with no signal behind it, is not an interrupt:
``interrupting()`` is how the task engine tells the two apart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_like.engine.flow_engine import FlowRun

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STATUS: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
_SUMMARY = "summary"  # the attribute that holds the one line an uncaught exception prints


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or a signal that cancelled an async flow), raised like Ctrl-C so a flow run
    ends CANCELLED and flushes its events."""

    def __init__(self, reason: str = "", signum: int = signal.SIGTERM) -> None:
        super().__init__(reason)
        self.signum = signum


class _State:
    """The process's one signal state: the runs that hold the handler, and the first signal."""

    def __init__(self) -> None:
        self.runs: list[FlowRun] = []
        self.reason: str | None = None
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}
        self.task: asyncio.Task[Any] | None = None
        self.ending = False  # the outermost run has its final state and is writing its events
        self.deferred: int | None = None  # a signal that came then, raised once they are written
        self.announced = False
        self.stop: str | None = None  # why the flow runs must stop, for the handler to act on
        self.cancel: str | None = None  # why they are cancelled (a request to the tracking server)


_state = _State()
# flow run id -> how to resume it, said instead of "run the flow again" when it is interrupted:
# a search (``sweep.optimize``) resumes from its stored trials, not by being run again.
RESUME_HINTS: dict[str, str] = {}


def interrupting() -> str | None:
    """Why the flow runs of this process are being interrupted, while they are; else None."""
    return _state.reason


def _describe(signum: int) -> str:
    return "was interrupted (Ctrl-C)" if signum == signal.SIGINT else f"received {signal.Signals(signum).name}"


def _handle(signum: int, frame: Any) -> None:
    stop, _state.stop = _state.stop, None
    cancel, _state.cancel = _state.cancel, None
    asked = stop or cancel  # a signal sent by this process to itself, not by the user
    if asked is not None and (_state.reason is not None or _state.ending):
        return  # already ending: its end says what the tracker could not keep
    if asked is None and (_state.reason is not None or _state.deferred is not None):
        _exit_now(signum)
    if _state.ending:  # nothing left to cancel: let the events be written, then stop
        _state.deferred = signum
        return
    _state.reason = asked or _describe(signum)
    _state.signum = signum
    for run in _state.runs:
        run.interrupted = _state.reason
        run.stopped = stop
    task = _state.task
    if task is None or task.done() or _running(task):
        raise exception()
    # The loop is idle (waiting on I/O or a timer): cancelling the task wakes it where it waits.
    task.get_loop().call_soon_threadsafe(task.cancel)


def stop(reason: str) -> bool:
    """From any thread: stop this process's flow runs as a signal would (the tracker cannot
    write, under ``PREFECT_LIKE_ON_TRACKING_ERROR=stop``); False if no flow run holds the handler."""
    if not _state.previous or _state.reason is not None:
        return False
    _state.stop = reason
    # A real signal to the main thread: it wakes a blocking wait or an idle event loop.
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
    return True


def cancel(flow_run_id: str, reason: str) -> bool:
    """From any thread: if ``flow_run_id`` is one of this process's flow runs, end them
    CANCELLED as Ctrl-C would, saying ``reason`` (the tracking server relayed a cancellation
    request in its answer to their events); False if none of them is."""
    if not _state.previous or _state.reason is not None:
        return False
    if not any(run.id == flow_run_id for run in _state.runs):
        return False
    _state.cancel = f"was cancelled: {reason}"
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
    return True


def _running(task: asyncio.Task[Any]) -> bool:
    """Whether the loop thread is inside the flow's coroutine now (blocked in sync code there),
    where cancelling the task would take effect only once that code returned."""
    coro = task.get_coro()
    return bool(getattr(coro, "cr_running", False))


def _exit_now(signum: int) -> None:
    """A second signal: keep on disk what the tracker has not got, say so, and exit at once."""
    from prefect_like.tracking.recorder import get_recorder

    sys.stderr.write("\nInterrupted again: exiting now, without waiting for the tracker.\n")
    sys.stderr.flush()
    for run in reversed(_state.runs):
        run.abandon()
    try:
        unsent = get_recorder().abandon()
    except Exception as exc:  # exiting is what was asked for; say why nothing could be kept
        unsent = f"what the tracker had not stored could not be kept: {type(exc).__name__}: {exc}"
    sys.stderr.write(f"{unsent or 'The tracker has every event.'}\n")
    sys.stderr.flush()
    os._exit(EXIT_STATUS.get(signum, 130))


@contextlib.contextmanager
def handled(run: FlowRun, task: asyncio.Task[Any] | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM end ``run`` as the module says, while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outermost = not _state.runs
    if outermost:
        _state.reason = _state.signum = _state.deferred = _state.stop = None
        _state.ending = _state.announced = False
        _state.task = task
        _state.previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
    _state.runs.append(run)
    try:
        yield
    finally:
        _state.runs.remove(run)
        if outermost:
            for signum, previous in _state.previous.items():
                signal.signal(signum, previous)
            deferred = _state.deferred
            _state.previous = {}
            _state.task = None
            _state.reason = _state.signum = _state.deferred = _state.stop = None
            _state.ending = False
            if deferred is not None:
                _raise_deferred(run, deferred)


def announce(run: FlowRun) -> None:
    """Say once, as the interrupted flow run begins to end, that a second signal exits at once."""
    if _state.reason is None or _state.announced:
        return
    _state.announced = True
    from prefect_like.logging import logger

    logger.warning(
        "Cancelling flow run %r: the process %s. Recording what ran (at most %.0f s); "
        "interrupt again to exit at once.", run.name, _state.reason, run.recorder.final_flush_timeout,
    )


def ending(run: FlowRun) -> None:
    """The run has its final state: a signal from now on waits until its events are written
    (unless it is a subflow, whose parent a signal still cancels)."""
    if _state.runs and _state.runs[0] is run:
        _state.ending = True


def _raise_deferred(run: FlowRun, signum: int) -> None:
    _state.signum = signum
    exc = exception()
    _state.signum = None
    in_one_line(exc, f"Flow run {run.name!r} ({run.id}) had ended {run.ending.name if run.ending else 'its run'} when the process "
        f"{_describe(signum)}; nothing was cancelled, and its record is in {run.recorder.target}.")
    raise exc


def exception() -> KeyboardInterrupt:
    """What the signal raises: ``KeyboardInterrupt`` for Ctrl-C (so Python exits as on any
    Ctrl-C), ``Interrupted`` for SIGTERM."""
    if _state.signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Interrupted(_state.reason or "received a signal", _state.signum or signal.SIGTERM)


def exit_status(exc: BaseException) -> int:
    """The exit status a command gives for an interrupt: 130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_STATUS.get(getattr(exc, "signum", signal.SIGINT), 130)


def one_line(exc: BaseException) -> str | None:
    """The line ``exc`` prints if uncaught (``in_one_line``), if it has one."""
    line = getattr(exc, _SUMMARY, None)
    return line if isinstance(line, str) else None


def note_summary(exc: BaseException, run: FlowRun, counts: dict[str, int]) -> None:
    """Say on ``exc`` what the interrupted run (with the subflow runs it passed through)
    recorded; printed if nobody catches it."""
    total: collections.Counter[str] = collections.Counter(getattr(exc, "task_run_counts", {}))
    total.update(counts)
    runs = getattr(exc, "flow_runs", 0) + 1
    exc.task_run_counts, exc.flow_runs = total, runs  # type: ignore[attr-defined]
    recorded = ", ".join(f"{n:,} {name}" for name, n in sorted(total.items())) or "no task runs"
    if runs > 1:
        recorded += f" (with its {runs - 1} subflow run{'s' if runs > 2 else ''})"
    resume = RESUME_HINTS.get(run.id) or (
        "run the flow again to resume (task runs with a cache policy are not run again)."
    )
    in_one_line(
        exc,
        f"Flow run {run.name!r} ({run.id}) is CANCELLED: the process {run.interrupted}. Recorded: "
        f"{recorded}, in {run.recorder.target}. `prefect-like runs show {run.id}` lists them; {resume}",
    )


def in_one_line(exc: BaseException, line: str | None = None) -> None:
    """If nobody catches ``exc``, the process prints ``line`` (default: ``Error: `` and ``str(exc)``) as it
    exits, not a traceback: for what a user must act on and that no traceback explains better
    (an interrupted run's record, a tracking store that cannot be opened)."""
    setattr(exc, _SUMMARY, line if line is not None else f"Error: {exc}")
    _install_excepthook()


def _install_excepthook() -> None:
    if getattr(sys.excepthook, "_prefect_like", False):
        return
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        summary = one_line(value)
        if summary is not None:
            sys.stderr.write(summary + "\n")
            return
        previous(kind, value, tb)

    excepthook._prefect_like = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook


__all__ = ["Interrupted", "cancel", "exception", "exit_status", "handled", "in_one_line", "interrupting", "note_summary", "one_line"]
