"""The engine: how one task run, and one flow run, happens.

A task run, wherever the runner executes it (a pool thread, the event loop, a Dask or Ray
worker), goes through ``run_task`` (or ``run_task_async`` for an async function):

1. Resolve inputs. Upstream futures are done by now (the runner waited for them natively);
   each is replaced by its result. An upstream that did not complete ends this run PENDING
   named NotReady, without calling the function, unless it was wrapped in ``allow_failure``.
2. Look up the cache, when a cache policy or ``cache_key_fn`` is set: a hit ends COMPLETED
   named Cached, without calling the function.
3. RUNNING, then call the function, under ``timeout_seconds``, retried by tenacity as the task's
   options say (a RUNNING state named Retrying between attempts).
4. Persist the result if asked, and end COMPLETED or FAILED.

Every state change is an event appended to the process-local buffer (``tracking.events``); the
engine does no I/O of its own but reading and writing persisted results. The function returns
the final ``State``, never raises for the task's own errors: a failing task fails its run, not
the framework. The sync and async paths share ``TaskRun`` and differ only in how they call and
sleep.

A flow run (``run_flow``) validates its parameters, enters its task runner, runs the body,
waits for the tasks it submitted, and ends COMPLETED, or FAILED if the body raised or returned
failed runs. Before the call returns, the Recorder has stored every event of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import functools
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import tenacity

from prefect_like import collector
from prefect_like.context import FlowRunContext, TaskRunContext, flow_run_context, task_run_context
from prefect_like.futures import TaskFuture
from prefect_like.logging import capture_prints, install_print_capture, logger, setup_logging
from prefect_like.results import resolve_storage, short_repr, summarize, summarize_parameters
from prefect_like.states import VALUES as _VALUES
from prefect_like.states import (
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Retrying,
    Running,
    State,
)
from prefect_like.tasks import _LEAVES, TaskCall, _new_event, allow_failure
from prefect_like.tracking.events import FLOW, TASK, Event, emit

if TYPE_CHECKING:
    from prefect_like.flows import Flow

MAX_TRACEBACK = 20_000
_FIRST_RUN = {"run_count": 1}  # the data of every first RUNNING event: one shared dict, never changed


def error_details(exc: BaseException) -> dict[str, str]:
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK:
        text = text[: MAX_TRACEBACK // 2] + "\n…\n" + text[-MAX_TRACEBACK // 2 :]
    return {"type": type(exc).__name__, "message": str(exc), "traceback": text}


# -- inputs ---------------------------------------------------------------------------------


def _upstream_state(value: Any) -> State:
    return value.state if isinstance(value, TaskFuture) else value


def _describe(value: Any, state: State) -> str:
    if isinstance(value, TaskFuture):
        return f"upstream task run {value.task_name!r} ({value.task_run_id}) ended {state.name}"
    return f"upstream task run {state.run_id or ''} ended {state.name}".replace("run  ", "run ")


def _future_label(value: TaskFuture[Any] | State) -> str:
    if isinstance(value, TaskFuture):
        return f"<result of {value.task_name} {value.task_run_id}>"
    return f"<result of {value.run_id}>"


def resolve_inputs(call: TaskCall) -> tuple[dict[str, Any], str | None]:
    """The call's parameters with upstream futures (or the States a runner put there) replaced
    by their results, and a reason the run cannot start, if an upstream did not complete."""
    blockers: list[str] = []

    def resolve(value: Any) -> Any:
        kind = type(value)
        if kind in _LEAVES:
            return value
        if isinstance(value, (TaskFuture, State)):
            state = _upstream_state(value)
            if state.is_completed():
                return state.result()
            blockers.append(_describe(value, state))
            return None
        if kind is allow_failure:
            inner = value.future
            if isinstance(inner, (TaskFuture, State)):
                return _upstream_state(inner).result(raise_on_failure=False)
            return resolve(inner)
        if kind in (list, tuple, set, frozenset):
            return kind(resolve(item) for item in value)
        if kind is dict:
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):  # FutureList and other subclasses: a plain list of results
            return [resolve(item) for item in value]
        return value

    parameters = {name: resolve(value) for name, value in call.parameters.items()}
    for value in call.wait_for:
        if type(value) is not allow_failure and isinstance(value, (TaskFuture, State)):
            state = _upstream_state(value)
            if not state.is_completed():
                blockers.append(_describe(value, state))
    return parameters, ("; ".join(blockers) if blockers else None)


# -- one task run ---------------------------------------------------------------------------


class TaskRun:
    """The steps of one task run that the sync and async paths share."""

    __slots__ = ("call", "options", "seq", "run_count", "parameters", "context", "cache_key", "started")

    def __init__(self, call: TaskCall) -> None:
        self.call = call
        self.options = call.task.options
        self.seq = 1  # 0 was the PENDING event, made where the call was built
        self.run_count = 0
        self.cache_key: str | None = None
        self.started = 0.0

    def _emit(self, state: State, data: dict[str, Any] | None = None) -> None:
        call = self.call
        emit(
            _new_event(
                Event,
                (TASK, call.task_run_id, self.seq, call.flow_run_id, state.timestamp,
                 _VALUES[state.type], state.name, state.message, data),
            )
        )
        self.seq += 1

    def begin(self) -> State | None:
        """Resolve inputs and look up the cache; a State if the run ends here, else None."""
        call = self.call
        if call.upstream:
            parameters, blocker = resolve_inputs(call)
            if blocker is not None:
                self.parameters = call.parameters
                return self._finish(NotReady(f"Not run: {blocker}"), {"parameters": self._parameter_summary()})
        else:
            parameters = call.parameters
        self.parameters = parameters
        self.context = TaskRunContext(
            call.task_run_id, call.flow_run_id, call.name, call.task, parameters, 0, bool(self.options.log_prints)
        )
        policy = call.task.cache_policy
        if policy is not None:
            try:
                self.cache_key = policy.compute_key(call.task, parameters, self.context)
            except Exception as exc:
                return self.fail(exc)
            if self.cache_key is not None:
                found, value = resolve_storage(self.options.result_storage).read(self.cache_key)
                if found:
                    return self._finish(Cached(value), self._terminal_data(value))
        if self.options.log_prints:
            install_print_capture()
        self.started = time.time()
        self.run_count = 1
        self.context.run_count = 1
        emit(_new_event(Event, (TASK, call.task_run_id, self.seq, call.flow_run_id, self.started, "RUNNING",
                                "Running", None, _FIRST_RUN)))
        self.seq += 1
        return None

    def _parameter_summary(self) -> dict[str, Any]:
        try:
            if self.call.upstream and self.parameters is self.call.parameters:  # unresolved: NotReady
                return {k: _future_label(v) if isinstance(v, (TaskFuture, State)) else summarize(v)
                        for k, v in self.parameters.items()}
            return summarize_parameters(self.parameters)
        except Exception:
            return {name: short_repr(value) for name, value in self.parameters.items()}

    def _terminal_data(self, result: Any = None, error: BaseException | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "parameters": self._parameter_summary(),
            "run_count": self.run_count,
            "duration": time.time() - self.started if self.started else 0.0,
        }
        if error is None:
            data["result"] = summarize(result)
        else:
            data["error"] = error_details(error)
        if self.cache_key is not None:
            data["cache_key"] = self.cache_key
        return data

    def _finish(self, state: State, data: dict[str, Any]) -> State:
        """Emit the final state. Its event says all the run's Pending and Running said (task
        name, map index, both timestamps), so it stands alone when they were never sent."""
        call = self.call
        state.run_id = call.task_run_id
        call.describe(data)
        if call.created:
            data["created"] = call.created
        if self.started:
            data["started"] = self.started
        self._emit(state, data)
        return state

    def complete(self, result: Any) -> State:
        if self.call.task.persists:
            key = self.cache_key or self.call.task_run_id
            expiration = self.options.cache_expiration
            expires_at = time.time() + expiration.total_seconds() if expiration is not None else None
            try:
                resolve_storage(self.options.result_storage).write(key, result, expires_at)
            except Exception as exc:
                return self.fail(exc)
        return self._finish(Completed(result), self._terminal_data(result))

    def fail(self, exc: BaseException) -> State:
        return self._finish(Failed(exc), self._terminal_data(error=exc))

    def crash(self, exc: BaseException) -> State:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            state = Cancelled("Cancelled while running: the flow run was interrupted")
        else:
            state = Crashed(f"{type(exc).__name__}: {exc}", exc)
        return self._finish(state, self._terminal_data(error=exc))

    # -- retries (tenacity) ------------------------------------------------------------------

    def retry_options(self) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.options.retries + 1),
            "wait": self._delay,
            "retry": tenacity.retry_if_exception(self._should_retry),
            "before_sleep": self._before_retry,
            "reraise": True,
        }

    def _delay(self, retry_state: tenacity.RetryCallState) -> float:
        attempt = retry_state.attempt_number
        delay_option = self.options.retry_delay_seconds
        if delay_option is None:
            delay = 0.0
        elif callable(delay_option):
            delay = float(delay_option(attempt))
        elif isinstance(delay_option, (list, tuple)):
            delay = float(delay_option[min(attempt, len(delay_option)) - 1]) if delay_option else 0.0
        else:
            delay = float(delay_option)
        jitter = self.options.retry_jitter_factor
        if jitter:
            delay += random.uniform(0, jitter * delay)
        return max(0.0, delay)

    def _should_retry(self, exc: BaseException) -> bool:
        condition = self.options.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.call.task, self.context, Failed(exc)))
        except Exception:
            logger.exception("retry_condition_fn of task %r raised; not retrying", self.call.task.name)
            return False

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        self.run_count += 1
        self.context.run_count = self.run_count
        error = retry_state.outcome.exception() if retry_state.outcome else None
        message = f"Retrying (attempt {self.run_count} of {self.options.retries + 1}) after {type(error).__name__}: {error}"
        self._emit(Retrying(message), {"run_count": self.run_count})


def _raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask a thread to stop by raising in it at its next bytecode (a blocking C call ends first)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def call_with_timeout(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run ``fn`` in a helper thread and stop waiting for it after ``timeout`` seconds.

    Python cannot kill a thread: a timed-out function is asked to stop (an exception raised
    at its next bytecode) and abandoned, and the run ends FAILED at once so the flow goes on.
    ``what`` names the run in the TimeoutError, e.g. "task run 'train-3'".
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
        raise TimeoutError(f"{what} exceeded its timeout of {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _invoke(run: TaskRun) -> Any:
    call = run.call
    timeout = run.options.timeout_seconds
    if timeout is None:
        return call.task.call_function(run.parameters)
    return call_with_timeout(functools.partial(call.task.call_function, run.parameters), timeout, f"task run {call.name!r}")


async def _invoke_async(run: TaskRun) -> Any:
    coroutine = run.call.task.call_function(run.parameters)
    timeout = run.options.timeout_seconds
    if timeout is None:
        return await coroutine
    try:
        return await asyncio.wait_for(coroutine, timeout)
    except TimeoutError:
        raise TimeoutError(f"task run {run.call.name!r} exceeded its timeout of {timeout:g} s") from None


def run_task(call: TaskCall) -> State:
    """Run one task call to its final state, in this thread. Never raises for the task's errors."""
    run = TaskRun(call)
    try:
        state = run.begin()
        if state is not None:
            return state
        token = task_run_context.set(run.context)
        prints = capture_prints.set(run.context.log_prints) if run.options.log_prints is not None else None
        try:
            if not run.options.retries:
                result = _invoke(run)
            else:
                for attempt in tenacity.Retrying(**run.retry_options()):
                    with attempt:
                        result = _invoke(run)
        finally:
            task_run_context.reset(token)
            if prints is not None:
                capture_prints.reset(prints)
    except Exception as exc:
        return run.fail(exc)
    except BaseException as exc:
        state = run.crash(exc)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and threading.current_thread() is threading.main_thread():
            raise
        return state
    return run.complete(result)


async def run_task_async(call: TaskCall) -> State:
    """The async twin of ``run_task``: the same steps, awaiting the function and retry sleeps."""
    run = TaskRun(call)
    try:
        state = run.begin()
        if state is not None:
            return state
        token = task_run_context.set(run.context)
        prints = capture_prints.set(run.context.log_prints) if run.options.log_prints is not None else None
        try:
            if not run.options.retries:
                result = await _invoke_async(run)
            else:
                async for attempt in tenacity.AsyncRetrying(**run.retry_options()):
                    with attempt:
                        result = await _invoke_async(run)
        finally:
            task_run_context.reset(token)
            if prints is not None:
                capture_prints.reset(prints)
    except Exception as exc:
        return run.fail(exc)
    except asyncio.CancelledError:
        run.crash(KeyboardInterrupt())
        raise
    except BaseException as exc:
        run.crash(exc)
        raise
    return run.complete(result)


def _inline_outcome(state: State, return_state: bool) -> Any:
    return state if return_state else state.result()


def _wait_upstream(call: TaskCall) -> None:
    for future in call.upstream:
        future.wait()


def run_task_inline(call: TaskCall, return_state: bool) -> Any:
    """A task called directly in a flow or task body: run here, tracked like any other."""
    if call.task.options.log_prints:
        install_print_capture()
    _wait_upstream(call)
    return _inline_outcome(run_task(call), return_state)


async def run_task_inline_async(call: TaskCall, return_state: bool) -> Any:
    if call.task.options.log_prints:
        install_print_capture()
    if any(not future.done() for future in call.upstream):
        await asyncio.to_thread(_wait_upstream, call)
    return _inline_outcome(await run_task_async(call), return_state)


# -- one flow run ---------------------------------------------------------------------------


class FlowRun:
    """The steps of one flow run that the sync and async paths share."""

    def __init__(self, flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        from prefect_like.task_runners import resolve_task_runner
        from prefect_like.tracking.recorder import get_recorder

        self.flow = flow
        self.options = flow.options
        self.parameters = flow.validate(args, kwargs)
        self.id = uuid.uuid4().hex
        self.name = flow.run_name(self.parameters)
        parent_task = task_run_context.get()
        parent_flow = flow_run_context.get()
        self.parent_flow_run_id = parent_task.flow_run_id if parent_task else (parent_flow.flow_run_id if parent_flow else None)
        self.parent_task_run_id = parent_task.task_run_id if parent_task else None
        self.runner = resolve_task_runner(self.options.task_runner)
        self.recorder = get_recorder()
        self.recorder.watch(self.id)
        self.seq = 0
        self.started = time.time()
        self.context = FlowRunContext(
            self.id, self.name, flow, self.runner, self.parameters, bool(self.options.log_prints)
        )
        setup_logging()
        if self.options.log_prints:
            install_print_capture()
        self._emit(
            Running(),
            {
                "name": self.name,
                "flow_name": flow.name,
                "parameters": summarize_parameters(self.parameters),
                "parent_task_run_id": self.parent_task_run_id,
                "runner": type(self.runner).__name__,
            },
        )
        logger.info("Beginning flow run %r for flow %r", self.name, flow.name)

    def _emit(self, state: State, data: dict[str, Any] | None = None) -> None:
        emit(
            Event(
                FLOW, self.id, self.seq, self.parent_flow_run_id, state.timestamp,
                state.type.value, state.name, state.message, data,
            )
        )
        self.seq += 1

    def enter(self) -> tuple[Any, Any]:
        self.runner.start()
        return flow_run_context.set(self.context), capture_prints.set(bool(self.options.log_prints))

    def exit(self, tokens: tuple[Any, Any], cancel: bool) -> None:
        try:
            self.runner.shutdown(cancel_pending=cancel)
        finally:
            self.reset(tokens)

    def reset(self, tokens: tuple[Any, Any]) -> None:
        flow_run_context.reset(tokens[0])
        capture_prints.reset(tokens[1])

    def evaluate(self, result: Any) -> tuple[State, Any]:
        """The state a returned value gives the run: FAILED if it holds failed runs."""
        failures: list[str] = []
        errors: list[BaseException] = []

        def resolve(value: Any) -> Any:
            if isinstance(value, (TaskFuture, State)):
                state = value.state if isinstance(value, TaskFuture) else value
                if isinstance(value, TaskFuture):
                    value.wait()
                    state = value.state
                if not state.is_completed():
                    label = value.task_name if isinstance(value, TaskFuture) else state.run_id
                    failures.append(f"{label}: {state.name}{': ' + state.message if state.message else ''}")
                    errors.append(state.result(raise_on_failure=False))
                    return None
                return state.result()
            if type(value) in (list, tuple):
                return type(value)(resolve(item) for item in value)
            if type(value) is dict:
                return {key: resolve(item) for key, item in value.items()}
            if isinstance(value, list):  # FutureList and other list subclasses
                return [resolve(item) for item in value]
            return value

        resolved = resolve(result)
        if failures:
            # As in Prefect, the call raises the first failed run's own exception; the state's
            # message names every failure.
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            return Failed(errors[0], f"{len(failures)} returned task run(s) did not complete: {shown}"), None
        return Completed(resolved), resolved

    def finish(self, state: State, error: BaseException | None) -> State:
        self.recorder.unwatch(self.id)
        self.recorder.flush(delivered=False)
        counts = self.recorder.take_counts(self.id)
        data: dict[str, Any] = {"task_runs": counts, "duration": time.time() - self.started}
        if error is not None:
            data["error"] = error_details(error)
        elif state.is_completed():
            data["result"] = summarize(state.result())
        state.run_id = self.id
        self._emit(state, data)
        failed = sum(n for name, n in counts.items() if name not in ("Completed", "Cached"))
        summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no task runs"
        log = logger.info if state.is_completed() else logger.error
        log("Finished flow run %r in state %s (%s)%s", self.name, state.name, summary,
            f"; {failed} task run(s) did not complete" if failed and state.is_completed() else "")
        if not self.recorder.flush(timeout=self.recorder.final_flush_timeout):
            logger.warning("Flow run %r: not every event reached the tracker yet; %s", self.name, self.recorder.describe_backlog())
        return state

    def attempts(self) -> range:
        return range(self.options.retries + 1)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so a flow run ends CANCELLED and flushes its events."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interruption(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return f"Cancelled: the flow process {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "Cancelled: the flow process was interrupted (Ctrl-C)"
    return f"Cancelled: {type(exc).__name__}"


def run_flow(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool) -> Any:
    """Run a sync flow to its final state; returns its value (or the State, if asked)."""
    with _sigterm_interrupts(), collector.tuned():
        return _run_flow(flow, args, kwargs, return_state)


def _run_flow(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool) -> Any:
    run = FlowRun(flow, args, kwargs)
    error: BaseException | None = None
    state: State = Crashed("the flow body did not run")
    for attempt in run.attempts():
        tokens = run.enter()
        cancel = False
        try:
            body = lambda: flow.fn(**run.parameters)  # noqa: E731
            timeout = run.options.timeout_seconds
            result = body() if timeout is None else call_with_timeout(body, timeout, f"flow run {run.name!r}")
            state, _ = run.evaluate(result)
            error = None if state.is_completed() else state.result(raise_on_failure=False)
        except Exception as exc:
            cancel = isinstance(exc, TimeoutError)
            state, error = Failed(exc), exc
        except BaseException as exc:
            run.exit(tokens, cancel=True)
            run.finish(Cancelled(_interruption(exc)), None)
            raise
        run.exit(tokens, cancel)
        if state.is_completed() or attempt == run.options.retries:
            break
        logger.warning("Flow run %r failed (%s); retrying", run.name, state.message)
        run._emit(Retrying(state.message))
        time.sleep(run.options.retry_delay_seconds)
    state = run.finish(state, error)
    return state if return_state else state.result()


async def run_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
) -> Any:
    """The async twin of ``run_flow``: the body is awaited; the same steps around it."""
    with collector.tuned():
        return await _run_flow_async(flow, args, kwargs, return_state)


async def _run_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
) -> Any:
    run = FlowRun(flow, args, kwargs)
    error: BaseException | None = None
    state: State = Crashed("the flow body did not run")
    for attempt in run.attempts():
        tokens = run.enter()
        cancel = False
        try:
            body: Awaitable[Any] = flow.fn(**run.parameters)
            timeout = run.options.timeout_seconds
            try:
                result = await (body if timeout is None else asyncio.wait_for(body, timeout))
            except TimeoutError:
                raise TimeoutError(f"flow run {run.name!r} exceeded its timeout of {timeout:g} s") from None
            state, _ = await asyncio.to_thread(run.evaluate, result)
            error = None if state.is_completed() else state.result(raise_on_failure=False)
        except Exception as exc:
            cancel = isinstance(exc, TimeoutError)
            state, error = Failed(exc), exc
        except BaseException as exc:
            run.reset(tokens)
            await asyncio.shield(asyncio.to_thread(run.runner.shutdown, cancel_pending=True))
            run.finish(Cancelled(_interruption(exc)), None)
            raise
        run.reset(tokens)
        await asyncio.to_thread(run.runner.shutdown, cancel_pending=cancel)
        if state.is_completed() or attempt == run.options.retries:
            break
        run._emit(Retrying(state.message))
        await asyncio.sleep(run.options.retry_delay_seconds)
    state = await asyncio.to_thread(run.finish, state, error)
    return state if return_state else state.result()


__all__ = ["call_with_timeout", "resolve_inputs", "run_flow", "run_flow_async", "run_task", "run_task_async"]
