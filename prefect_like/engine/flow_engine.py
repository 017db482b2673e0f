"""The flow engine: how one flow run happens, sync or async, from one body.

``run_flow`` and ``run_flow_async`` drive the same steps (``steps``):

1. Validate the parameters, record RUNNING (the Recorder watches the run: heartbeats) and
   take a fresh task runner for the run.
2. For each attempt (``retries`` + 1): start the runner, run the body (under
   ``timeout_seconds``), resolve what it returned (futures waited for, failed ones make the
   run FAILED), shut the runner down: it waits for every run the body submitted, including
   runs queued later by done-callbacks. A failed attempt logs a warning, records Retrying and
   waits ``retry_delay_seconds``.
3. Record the final state with the task runs' counts by state, and flush the Recorder, so
   every event of the run is stored when the call returns.

Ctrl-C (SIGINT) and SIGTERM end the run the same way on both drivers (``signals``): the runner
cancels what has not started and abandons what runs, the run ends CANCELLED, events are
flushed, and the call raises ``KeyboardInterrupt`` (``Interrupted`` for SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prefect_like import collector
from prefect_like.calls import walk
from prefect_like.context import (
    FlowRunContext,
    FlowRunView,
    current_tags,
    flow_run_context,
    register_flow_run,
    task_run_context,
)
from prefect_like.engine import signals
from prefect_like.engine.hooks import call_hooks, flow_hooks
from prefect_like.engine.outcomes import state_from_return
from prefect_like.engine.signals import Interrupted
from prefect_like.engine.steps import Blocking, Call, Sleep, Steps, drive, drive_async
from prefect_like.engine.task_engine import error_details
from prefect_like.errors import FlowRunTimeoutError, ParameterTypeError, TrackingError
from prefect_like.futures import TaskFuture
from prefect_like.logging import capture_prints, install_print_capture, logger, setup_logging
from prefect_like.results import summarize, summarize_parameters
from prefect_like.states import (
    DONE_NAMES,
    Cancelled,
    Crashed,
    Failed,
    Retrying,
    Running,
    State,
    TimedOut,
)
from prefect_like.tracking.events import emit, flow_event

if TYPE_CHECKING:
    from prefect_like.flows import Flow

# The id the next outermost flow run takes (``run_as``), instead of a fresh one.
_given_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("prefect_like_flow_run_id", default=None)


@contextlib.contextmanager
def run_as(flow_run_id: str) -> Iterator[None]:
    """The first flow called in the block (not its subflows) runs under ``flow_run_id``: a
    worker runs the flow run the tracking server made and it claimed, not a new one."""
    token = _given_id.set(flow_run_id)
    try:
        yield
    finally:
        _given_id.reset(token)


def _take_given_id() -> str | None:
    given = _given_id.get()
    if given is None or flow_run_context.get() is not None or task_run_context.get() is not None:
        return None
    _given_id.set(None)  # once: a second flow called in the block gets an id of its own
    return given


class FlowRun:
    """One flow run's record: its runner, events and final state."""

    def __init__(
        self, flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool = False
    ) -> None:
        from prefect_like.task_runners import resolve_task_runner
        from prefect_like.tracking.recorder import get_recorder

        self.flow = flow
        self.options = flow.options
        self.invalid: ParameterTypeError | None = None
        # Futures given to a flow (a subflow called with a task's future) are resolved to
        # their results first, so typed parameters validate against the values.
        args, kwargs = walk((args, kwargs), _result_of, (TaskFuture, State), unwrap=True)
        try:
            self.parameters = flow.validate(args, kwargs)
        except ParameterTypeError as exc:
            if not return_state:
                raise
            self.invalid = exc
            self.parameters = flow.bind(args, kwargs)
        self.id = _take_given_id() or uuid.uuid4().hex
        self.name = flow.run_name(self.parameters)
        parent_task = task_run_context.get()
        parent_flow = flow_run_context.get()
        self.parent_flow_run_id = parent_task.flow_run_id if parent_task else (parent_flow.flow_run_id if parent_flow else None)
        self.parent_task_run_id = parent_task.task_run_id if parent_task else None
        # A subflow without log_prints of its own takes its parent's, as in Prefect.
        parent = parent_task or parent_flow
        inherited = bool(parent.log_prints) if parent is not None else False
        self.log_prints = inherited if self.options.log_prints is None else bool(self.options.log_prints)
        self.runner = resolve_task_runner(self.options.task_runner)
        try:
            self.recorder = get_recorder()
        except TrackingError as exc:  # a store that cannot be opened: its one line says why
            signals.in_one_line(exc)
            raise
        self.stopped: str | None = None  # why the tracker's failure stopped the run, if it did
        self.recorder.watch(self.id, on_stop=self._tracking_failed)
        self.seq = 0
        self.started = time.time()
        self.interrupted: str | None = None  # why a signal ended the run, once one did
        self.counts: dict[str, int] = {}  # the task runs' final states, once the run has ended
        self.ending: State | None = None  # the final state, once the run is ending
        self.recorded = False  # whether its final event is made
        parent_record = parent_flow.record if parent_flow is not None else None
        self.root_flow_run_id: str = getattr(parent_record, "root_flow_run_id", None) or self.parent_flow_run_id or self.id
        self.run_count = 0  # attempts begun
        self.tags = current_tags.get()  # ``with tags(...)`` around the flow call
        self.context = FlowRunContext(
            self.id, self.name, flow, self.runner, self.parameters, self.log_prints, record=self
        )
        register_flow_run(self.context)
        setup_logging()
        if self.log_prints:
            install_print_capture()
        self.emit(
            Running(),
            {
                "name": self.name,
                "flow_name": flow.name,
                "parameters": summarize_parameters(self.parameters),
                "parent_task_run_id": self.parent_task_run_id,
                "runner": type(self.runner).__name__,
                **({"tags": sorted(self.tags)} if self.tags else {}),
            },
        )
        logger.info("Beginning flow run %r for flow %r", self.name, flow.name)

    def emit(self, state: State, data: dict[str, Any] | None = None) -> None:
        emit(flow_event(self.id, self.parent_flow_run_id, self.seq, state, data))
        self.seq += 1

    def enter(self) -> tuple[Any, Any]:
        self.runner.start()
        self.run_count += 1
        tokens = flow_run_context.set(self.context), capture_prints.set(self.log_prints)
        if self.options.on_running:
            self.hooks(Running())
        return tokens

    def hooks(self, state: State) -> None:
        """Call the flow's hooks for ``state`` (``engine.hooks``), if it has any."""
        found = flow_hooks(self.options, state, self.interrupted is not None)
        if found:
            call_hooks(found, self.flow, FlowRunView(self.context, state), state, self.context, flow_run_context)

    def reset(self, tokens: tuple[Any, Any]) -> None:
        flow_run_context.reset(tokens[0])
        capture_prints.reset(tokens[1])

    def body(self) -> Call:
        what = f"flow run {self.name!r}"
        return Call(lambda: self.flow.call_function(self.parameters), self.options.timeout_seconds, what, FlowRunTimeoutError)

    def evaluate(self, result: Any) -> State:
        """The final state the body's return value gives the run (``outcomes``): the futures
        in it are waited for and become their runs' states, as in Prefect."""

        def state_of(future: TaskFuture[Any], allowed: bool) -> State:
            future.wait()
            return future.state

        return state_from_return(walk(result, state_of, (TaskFuture,)))

    def finish(self, state: State, error: BaseException | None) -> State:
        self.ending = state
        signals.ending(self)
        # Tracking (see the Recorder): events it could not store or keep fail a completed run.
        tracking_error = self.recorder.settle(self.id)
        if tracking_error is not None and state.is_completed():
            state, error = Failed(tracking_error), tracking_error
        self.ending = state
        self.recorder.unwatch(self.id)
        self.recorder.flush(delivered=False)
        counts = self.counts = self.recorder.take_counts(self.id)
        data: dict[str, Any] = {"task_runs": counts, "duration": time.time() - self.started}
        if error is not None:
            data["error"] = error_details(error)
        elif state.is_completed():
            data["result"] = summarize(state.result())
        state.run_id = self.id
        self.emit(state, data)
        self.recorded = True
        self.hooks(state)
        failed = sum(n for name, n in counts.items() if name not in DONE_NAMES)
        summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no task runs"
        log = logger.info if state.is_completed() else logger.error
        log("Finished flow run %r in state %s (%s)%s", self.name, state.name, summary,
            f"; {failed} task run(s) did not complete" if failed and state.is_completed() else "")
        self.recorder.report(self.id, self.name)  # what the tracker still lacks, why, and where it is
        return state


    def _tracking_failed(self, cause: str) -> None:
        signals.stop(
            f"stopped because its tracker cannot write (PREFECT_LIKE_ON_TRACKING_ERROR=stop): {cause}"
        )

    def abandon(self) -> None:
        """The process exits at once (a second signal): make the run's final event now, if its
        end had not made it yet, so the record never shows it RUNNING."""
        if self.recorded:
            return
        self.recorded = True
        state = self.ending if self.ending is not None and not self.interrupted else Cancelled(
            f"Cancelled: the flow process {self.interrupted or 'was interrupted'}, and exited before "
            "every event was written"
        )
        self.emit(state, {"duration": time.time() - self.started})


def _result_of(value: TaskFuture[Any] | State, allowed: bool) -> Any:
    if isinstance(value, TaskFuture):
        value.wait()
        value = value.state
    return value.result(raise_on_failure=not allowed)


def _cancellation(run: FlowRun, exc: BaseException) -> str:
    if run.interrupted:
        return f"Cancelled: the flow process {run.interrupted}"
    if isinstance(exc, Interrupted):
        return f"Cancelled: the flow process {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "Cancelled: the flow process was interrupted (Ctrl-C)"
    if isinstance(exc, asyncio.CancelledError):
        return "Cancelled: the flow run's asyncio task was cancelled"
    return f"Cancelled: {type(exc).__name__}"


def _exception_of(state: State) -> BaseException | None:
    try:
        state.result()
    except BaseException as exc:
        return exc
    return None


def steps(run: FlowRun, return_state: bool) -> Steps[Any]:
    """The one body of a flow run; ``run_flow`` and ``run_flow_async`` drive it."""
    error: BaseException | None = None
    state: State = Crashed("the flow body did not run")
    if run.invalid is not None:  # only with return_state: the run is recorded Failed
        state = Failed(run.invalid)
        yield Blocking(lambda: run.finish(state, run.invalid))
        return state
    retries = run.options.retries
    for attempt in range(retries + 1):
        tokens = run.enter()
        cancel = False
        try:
            result = yield run.body()
            state = yield Blocking(functools.partial(run.evaluate, result))
            run.runner.keep(result)
            error = None if state.is_completed() else _exception_of(state)
        except Exception as exc:
            cancel = isinstance(exc, TimeoutError)
            state = TimedOut(error=exc) if isinstance(exc, FlowRunTimeoutError) else Failed(exc)
            error = exc
        except BaseException as exc:
            run.reset(tokens)
            signals.announce(run)
            cancelled = Cancelled(_cancellation(run, exc))
            yield Blocking(functools.partial(run.runner.shutdown, cancel_pending=True))
            if run.stopped is not None:
                error = TrackingError(f"the flow process {run.stopped}")
                yield Blocking(functools.partial(run.finish, Failed(error), error))
                raise error from None
            yield Blocking(functools.partial(run.finish, cancelled, None))
            if not run.interrupted:
                raise
            if not isinstance(exc, KeyboardInterrupt):  # the signal cancelled the flow's asyncio task
                exc = signals.exception()
            signals.note_summary(exc, run, run.counts)
            raise exc from None
        run.reset(tokens)
        yield Blocking(functools.partial(run.runner.shutdown, cancel_pending=cancel))
        if state.is_completed() or attempt == retries:
            break
        logger.warning("Flow run %r failed (%s); retrying", run.name, state.message)
        run.emit(Retrying(state.message))
        if run.options.retry_delay_seconds:
            yield Sleep(run.options.retry_delay_seconds)
    state = yield Blocking(lambda: run.finish(state, error))
    return state if return_state else state.result()


def run_flow(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool) -> Any:
    """Run a sync flow to its final state; returns its value (or the State, if asked)."""
    with collector.tuned():
        run = FlowRun(flow, args, kwargs, return_state)
        with signals.handled(run):
            return drive(steps(run, return_state))


async def run_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
) -> Any:
    """Run an async flow to its final state: the same steps, the body awaited."""
    with collector.tuned():
        run = FlowRun(flow, args, kwargs, return_state)
        with signals.handled(run, asyncio.current_task()):
            return await drive_async(steps(run, return_state))


__all__ = ["FlowRun", "Interrupted", "run_as", "run_flow", "run_flow_async"]
