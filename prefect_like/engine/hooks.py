"""State change hooks: Prefect's ``on_completion``, ``on_failure``, ``on_running`` (tasks and
flows), ``on_cancellation`` and ``on_crashed`` (flows).

A hook is called as ``hook(task, task_run, state)`` or ``hook(flow, flow_run, state)`` where
the run's state changed, in the run's own context (``get_run_logger()`` works in it) and on
whichever thread or worker process runs the task. An async hook is awaited to its end. A
hook that raises is logged with its traceback, stored with the run, and changes nothing:
not the run's state, not the other hooks, not the flow.

Only a definition with a hook ever reaches this module: a plain task run does not look.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prefect_like.logging import RunLogger, _runs_logger, setup_logging
from prefect_like.states import State, StateType


def task_hooks(options: Any, state: State) -> tuple[Callable[..., Any], ...]:
    """The hooks of a task's options that ``state`` calls (Prefect: failed, completed, running)."""
    kind = state.type
    if kind is StateType.FAILED:
        return options.on_failure
    if kind is StateType.COMPLETED:
        return options.on_completion
    if kind is StateType.RUNNING:
        return options.on_running
    return ()


def flow_hooks(options: Any, state: State, interrupted: bool) -> tuple[Callable[..., Any], ...]:
    """The hooks of a flow's options that ``state`` calls. A run ended by a signal is recorded
    Cancelled; it calls ``on_cancellation`` and, as Prefect's runs killed by a signal end
    Crashed, ``on_crashed`` too."""
    kind = state.type
    if kind is StateType.FAILED:
        return options.on_failure
    if kind is StateType.COMPLETED:
        return options.on_completion
    if kind is StateType.CANCELLED:
        return (*options.on_cancellation, *options.on_crashed) if interrupted else options.on_cancellation
    if kind is StateType.CRASHED:
        return options.on_crashed
    if kind is StateType.RUNNING:
        return options.on_running
    return ()


def hook_name(hook: Callable[..., Any]) -> str:
    """The hook's name in the log: a ``functools.partial`` is named by its function, as in Prefect."""
    inner = getattr(hook, "func", hook)
    return getattr(inner, "__name__", None) or type(inner).__name__


def call_hooks(
    hooks: Iterable[Callable[..., Any]],
    definition: Any,
    run: Any,
    state: State,
    context: Any,
    variable: contextvars.ContextVar[Any],
) -> None:
    """Call each hook with ``(definition, run, state)``, ``context`` in force in ``variable``;
    a hook's error is logged to the run and goes no further."""
    setup_logging()
    logger = RunLogger(_runs_logger, {"run_context": context})
    token = variable.set(context)
    context.hook_state = state  # what ``context.flow_run.state`` / ``.task_run.state`` says meanwhile
    try:
        for hook in hooks:
            name = hook_name(hook)
            logger.info("Running hook %r in response to entering state %r", name, state.name)
            try:
                result = hook(definition, run, state)
                if asyncio.iscoroutine(result):
                    _run_to_end(result)
            except Exception:
                logger.error("An error was encountered while running hook %r", name, exc_info=True)
            else:
                logger.info("Hook %r finished running successfully", name)
    finally:
        context.hook_state = None
        variable.reset(token)


def _run_to_end(coroutine: Any) -> None:
    """Await an async hook from sync code: on a loop of its own, in a helper thread if this
    thread already runs one (the hook's errors reach the caller)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    errors: list[BaseException] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            context.run(asyncio.run, coroutine)
        except BaseException as exc:  # delivered to the calling thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="prefect-like-hook")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


__all__ = ["call_hooks", "flow_hooks", "hook_name", "task_hooks"]
