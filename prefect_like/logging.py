"""Run loggers: ``get_run_logger()`` and ``log_prints``.

A run logger is a standard ``logging.LoggerAdapter``. Its records go to the console through the
``prefect_like`` logger as usual, and to the tracker as log events, stamped with the run they
came from and a per-run sequence number (the event's idempotency key).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prefect_like.context import FlowRunContext, TaskRunContext, get_run_context
from prefect_like.tracking.events import emit, log_event

logger = logging.getLogger("prefect_like")
_runs_logger = logging.getLogger("prefect_like.runs")


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one flow run or task run."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "run_context": (self.extra or {})["run_context"]}
        return msg, kwargs


class _EventHandler(logging.Handler):
    """Turns records from run loggers into log events."""

    def emit(self, record: logging.LogRecord) -> None:
        context = getattr(record, "run_context", None)
        if context is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not break the run
            message = str(record.msg)
        emit(log_event(context.run_id, next(context.log_seq), context.flow_run_id, record.created,
                       record.levelno, record.levelname, message, record.name))


class _RunFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "run_context", None)
        if isinstance(context, TaskRunContext):
            record.run_label = f"Task run {context.name!r}"
        elif isinstance(context, FlowRunContext):
            record.run_label = f"Flow run {context.name!r}"
        else:
            record.run_label = record.name
        return super().format(record)


_setup_lock = threading.Lock()
_set_up = False


def setup_logging() -> None:
    """Attach the event handler, and a console handler unless the user configured one (once)."""
    global _set_up
    if _set_up:
        return
    with _setup_lock:
        if _set_up:
            return
        _runs_logger.addHandler(_EventHandler())
        _runs_logger.setLevel(logging.INFO)
        if not logger.handlers and not logging.getLogger().handlers:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(
                _RunFormatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(run_label)s - %(message)s", "%H:%M:%S")
            )
            logger.addHandler(console)
            logger.setLevel(logging.INFO)
        _set_up = True


def get_run_logger() -> logging.LoggerAdapter[logging.Logger]:
    """A logger for the current flow run or task run; its lines are stored with the run.
    Outside a run it raises, except under ``disable_run_logger()``: then it gives a logger
    that drops everything (so a task's ``.fn`` can be called in a unit test)."""
    setup_logging()
    try:
        context = get_run_context()
    except RuntimeError:
        if not _runs_logger.disabled:
            raise
        silent = logging.getLogger("prefect_like.null")
        silent.disabled = True
        return logging.LoggerAdapter(silent, {})
    return RunLogger(_runs_logger, {"run_context": context})


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger under ``prefect_like`` (Prefect's ``prefect.logging.get_logger``), for code of
    one's own that is not a run's; its lines go to the console, not to the tracker."""
    return logger if not name else logger.getChild(name)


@contextlib.contextmanager
def disable_run_logger() -> Iterator[None]:
    """Run loggers drop their lines in the block, in every thread (as Prefect's does); for
    calling a task's or flow's ``.fn`` in a unit test, where there is no run to log to."""
    was = _runs_logger.disabled
    _runs_logger.disabled = True
    try:
        yield
    finally:
        _runs_logger.disabled = was


# log_prints: one process-wide print that routes to the run logger while a run asks for it.
# Another library may put a print of its own in place after ours, one that calls the print it
# found at its import (Ray's progress bars do, when Ray starts). So each run that captures puts
# ours back if it is gone, and ours hands every print it does not capture to the one it replaced.
capture_prints: contextvars.ContextVar[bool] = contextvars.ContextVar("prefect_like_log_prints", default=False)
_original_print = builtins.print
_replaced: Callable[..., None] = builtins.print
_handing_on = threading.local()


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    if capture_prints.get() and file in (None, sys.stdout):
        try:
            get_run_logger().info((sep if sep is not None else " ").join(map(str, args)))
            return
        except RuntimeError:
            pass
    if getattr(_handing_on, "active", False):  # the print we replaced wraps ours: print once
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    _handing_on.active = True
    try:
        _replaced(*args, sep=sep, end=end, file=file, flush=flush)
    finally:
        _handing_on.active = False


def install_print_capture() -> None:
    """Make ``print`` ours (see above), handing what it does not capture to the one it finds."""
    global _replaced
    found = builtins.print
    if found is not _print:
        _replaced = found
        builtins.print = _print
