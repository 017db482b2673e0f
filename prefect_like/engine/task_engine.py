"""The task engine: how one task run happens, wherever a runner executes it.

A pool thread, the event loop, a Dask or Ray worker or a child process all run a call through
``run_task`` (or ``run_task_async``); both drive the one body, ``steps``:

1. Resolve inputs. Upstream futures are done by now (the runner waited for them natively);
   each is replaced by its result (``calls.walk``). An upstream that did not complete ends this
   run PENDING named NotReady without calling the function, unless wrapped in ``allow_failure``.
2. Look up the cache, when a cache policy or ``cache_key_fn`` is set: a hit ends COMPLETED
   named Cached without calling the function.
3. RUNNING, then call the function under ``timeout_seconds``; an exception is retried as the
   options say, a RUNNING state named Retrying between attempts.
4. Persist the result if asked, and end COMPLETED, FAILED, or TimedOut (a FAILED state).

The common task (one attempt, no timeout: ``Task.plain``) runs through ``run_plain`` (or
``run_plain_async``): the same body with nothing to hand a driver, calling the function in
place. All are made of the same ``TaskRun`` steps, so they end every run alike.

Every state change is an event appended to the process-local buffer; the engine does no I/O of
its own but reading and writing persisted results. It returns the final ``State`` and never
raises for the task's own errors: a failing task fails its run, not the framework. Ctrl-C or
SIGTERM (``signals``) ends the run Cancelled and is raised again on the main thread; a
``KeyboardInterrupt`` or ``SystemExit`` the task raises itself ends it Crashed, and no more.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import traceback
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from prefect_like.caching import KeyLock, run_key
from prefect_like.calls import LEAVES, walk
from prefect_like.concurrency import tags as tag_slots
from prefect_like.context import TaskRunContext, TaskRunView, task_run_context
from prefect_like.engine.hooks import call_hooks, task_hooks
from prefect_like.engine.outcomes import is_state_collection, state_from_return
from prefect_like.engine.signals import interrupting
from prefect_like.engine.steps import Blocking, Call, Sleep, Steps, drive, drive_async
from prefect_like.errors import CrashedRun, TaskRunTimeoutError
from prefect_like.futures import TaskFuture
from prefect_like.logging import capture_prints, install_print_capture, logger
from prefect_like.results import AS_IS, resolve_storage, summarize, summarize_call_parameters
from prefect_like.states import (
    Cached,
    Cancelled,
    Crashed,
    Failed,
    NotReady,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)
from prefect_like.tasks import TaskCall
from prefect_like.tracking.events import emit, task_event, task_running

if TYPE_CHECKING:
    from prefect_like.caching import CachePolicy
    from prefect_like.task_runners.base import TaskRunner
    from prefect_like.tasks import TaskOptions

MAX_TRACEBACK = 20_000
_COMPLETED = StateType.COMPLETED  # read once: an enum member read goes through EnumType.__getattr__
_FIRST_RUN = {"run_count": 1}  # the data of every first RUNNING event: one shared dict, never changed
INTERRUPTED = "Cancelled while running: the flow run was interrupted"


def error_details(exc: BaseException) -> dict[str, str]:
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK:
        text = text[: MAX_TRACEBACK // 2] + "\n…\n" + text[-MAX_TRACEBACK // 2 :]
    return {"type": type(exc).__name__, "message": str(exc), "traceback": text}


# -- inputs ---------------------------------------------------------------------------------

_UPSTREAM = (TaskFuture, State)


def _describe(value: TaskFuture[Any] | State, state: State) -> str:
    if isinstance(value, TaskFuture):
        return f"upstream task run {value.task_name!r} ({value.task_run_id}) ended {state.name}"
    return f"upstream task run {state.run_id or ''} ended {state.name}".replace("run  ", "run ")


def resolve_inputs(call: TaskCall) -> tuple[dict[str, Any], str | None]:
    """The call's parameters with upstream futures (or the States a runner put there) replaced
    by their results, and why the run cannot start, if an upstream did not complete."""
    blockers: list[str] = []

    def result(value: TaskFuture[Any] | State, allowed: bool) -> Any:
        state = value.state if isinstance(value, TaskFuture) else value
        if state.is_completed() or allowed:
            return state.result(raise_on_failure=False)
        blockers.append(_describe(value, state))
        return None

    parameters = {
        name: value if type(value) in LEAVES else walk(value, result, _UPSTREAM, unwrap=True)
        for name, value in call.parameters.items()
    }
    walk(call.wait_for, result, _UPSTREAM, unwrap=True)
    return parameters, ("; ".join(blockers) if blockers else None)


# -- one task run ---------------------------------------------------------------------------


class TaskRun(TaskRunContext):
    """One task run's record: its events, attempts and final state. It is also the run's
    context (what ``get_run_context()`` gives the task's code): one object per run, not two."""

    __slots__ = ("call", "seq", "cache_key", "started", "_tokens")

    def __init__(self, call: TaskCall) -> None:
        TaskRunContext.__init__(
            self, call.task_run_id, call.flow_run_id, call.name, call.task, call.parameters, 0, call.log_prints
        )
        self.call = call
        self.seq = 1  # 0 was the PENDING event, made where the call was built
        self.cache_key: str | None = None
        self.started = 0.0

    @property
    def options(self) -> TaskOptions:
        return self.call.task.options

    def enter(self) -> State | None:
        """Resolve inputs and look up the cache; a State if the run ends here. Else the run is
        RUNNING, its context in force where its function runs (and prints captured, if asked),
        and None."""
        call = self.call
        task = call.task
        if call.upstream:
            parameters, blocker = resolve_inputs(call)
            if blocker is not None:
                state = NotReady(f"Not run: {blocker}")
                return self._finish(state, {"parameters": summarize_call_parameters(self.parameters)})
            self.parameters = parameters
        if task.cache_policy is not None:
            cached = self._cached(task.cache_policy)
            if cached is not None:
                return cached
        log_prints = call.log_prints
        if log_prints:
            install_print_capture()
        self.started = started = time.time()
        self.run_count = 1
        emit(task_running(call.task_run_id, call.flow_run_id, 1, started, _FIRST_RUN))
        self.seq = 2
        prints = capture_prints.set(log_prints) if log_prints or capture_prints.get() else None
        self._tokens = (task_run_context.set(self), prints)
        return None

    def _cached(self, policy: CachePolicy) -> State | None:
        """The run's end if its cache holds a result, else None. A key that cannot be made is
        logged, and the run goes on uncached (as in Prefect: its result is not persisted)."""
        task = self.call.task
        try:
            self.cache_key = run_key(policy, task, self.parameters, self)
        except Exception:
            logger.exception(
                "Task run %r: error computing its cache key; the result will not be persisted", self.call.name
            )
            self.cache_key = NOT_PERSISTED
            return None
        if self.cache_key is not None and not task.options.refresh_cache:
            found, value = resolve_storage(task.storage).read(self.cache_key)
            if found:
                return self._finish(Cached(value), self._terminal_data(value))
        return None

    def leave(self) -> TaskRunner | None:
        """Put the caller's context back; the runner of the runs this one submitted, if any:
        they end before it does (shut it down, then end the run)."""
        token, prints = self._tokens
        task_run_context.reset(token)
        if prints is not None:
            capture_prints.reset(prints)
        return self._children

    def _terminal_data(
        self, result: Any = None, error: BaseException | None = None, now: float | None = None
    ) -> dict[str, Any]:
        started = self.started
        data: dict[str, Any] = {
            "parameters": summarize_call_parameters(self.parameters),
            "run_count": self.run_count,
            "duration": ((time.time() if now is None else now) - started) if started else 0.0,
        }
        if error is None:
            data["result"] = result if type(result) in AS_IS else summarize(result)
        else:
            data["error"] = error_details(error)
        if self.cache_key:
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
        emit(task_event(call.task_run_id, call.flow_run_id, self.seq, state, data))
        self.seq += 1
        return state

    def complete(self, result: Any) -> State:
        if type(result) not in LEAVES:
            # What the task returned holds futures (of runs it submitted) or States: the run
            # ends as Prefect's rule for returned states says.
            result = walk(result, _state_of, (TaskFuture,))
            if isinstance(result, State) or is_state_collection(result):
                return self.end_as(state_from_return(result))
        if self.call.task.persists and self.cache_key != NOT_PERSISTED:
            key = self.cache_key or self.call.task_run_id
            expiration = self.options.cache_expiration
            expires_at = time.time() + expiration.total_seconds() if expiration is not None else None
            try:
                resolve_storage(self.call.task.storage).write(key, result, expires_at)
            except Exception as exc:
                return self.fail(exc)
        now = time.time()  # the state's timestamp and the end of the duration: one clock read
        state = State(_COMPLETED, "Completed", None, result, now)
        return self._finish(state, self._terminal_data(result, now=now))

    def end_as(self, state: State) -> State:
        """End in a state the task returned (``return Failed(message=...)``, say)."""
        if state.is_completed():
            return self._finish(state, self._terminal_data(state.result()))
        error = state.result(raise_on_failure=False)
        if not isinstance(error, BaseException):
            error = RuntimeError(state.message or f"the task returned a {state.name} state")
        return self._finish(state, self._terminal_data(error=error))

    def fail(self, exc: BaseException) -> State:
        state = TimedOut(error=exc) if isinstance(exc, TaskRunTimeoutError) else Failed(exc)
        return self._finish(state, self._terminal_data(error=exc))

    def crash(self, exc: BaseException) -> State:
        """End the run on a BaseException: Cancelled when a signal or a cancellation ended it,
        Crashed when the task itself raised it (``sys.exit()`` in a task ends that run only)."""
        if isinstance(exc, asyncio.CancelledError) or (isinstance(exc, KeyboardInterrupt) and interrupting()):
            state = Cancelled(INTERRUPTED)
        elif isinstance(exc, (SystemExit, KeyboardInterrupt)):
            what = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else "raised KeyboardInterrupt"
            error = CrashedRun(f"the task {what}")  # an Exception: asking for the result fails, exits nothing
            error.__cause__ = exc
            state = Crashed(str(error), error)
        else:
            state = Crashed(f"{type(exc).__name__}: {exc}", exc)
        return self._finish(state, self._terminal_data(error=exc))

    def reraises(self, state: State, exc: BaseException) -> bool:
        """Whether ``exc``, which ended the run in ``state`` (``crash``), must go on to end the
        flow run: a signal on the main thread, or a cancellation."""
        return state.is_cancelled() and (
            isinstance(exc, asyncio.CancelledError) or threading.current_thread() is threading.main_thread()
        )

    # -- retries -----------------------------------------------------------------------------

    def retry_delay(self) -> float:
        """Seconds to wait before the next attempt (the run_count-th retry's delay)."""
        delays = self.call.task.retry_delays
        delay = delays[min(self.run_count - 1, len(delays)) - 1]  # run_count is the next attempt's
        jitter = self.options.retry_jitter_factor
        if jitter:
            delay += random.uniform(0, jitter * delay)
        return max(0.0, delay)

    def should_retry(self, exc: BaseException) -> bool:
        if self.run_count > self.options.retries:
            return False
        condition = self.options.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.call.task, self, Failed(exc)))
        except Exception:
            logger.exception("retry_condition_fn of task %r raised; not retrying", self.call.task.name)
            return False

    def before_retry(self, exc: BaseException) -> None:
        self.run_count += 1
        message = f"Retrying (attempt {self.run_count} of {self.options.retries + 1}) after {type(exc).__name__}: {exc}"
        call = self.call
        emit(task_event(call.task_run_id, call.flow_run_id, self.seq, Retrying(message), {"run_count": self.run_count}))
        self.seq += 1


NOT_PERSISTED = ""  # the cache key of a run whose key could not be made: not cached, not persisted


class HookedTaskRun(TaskRun):
    """A run of a task with state hooks, or whose cache policy is SERIALIZABLE: ``TaskRun``
    plus the hooks at each state change and the cache key's lock. Only such tasks make one
    (``steps``); a plain run never looks for either."""

    __slots__ = ("lock",)

    def __init__(self, call: TaskCall) -> None:
        super().__init__(call)
        self.lock: KeyLock | None = None

    def enter(self) -> State | None:
        state = super().enter()
        if state is None and self.options.on_running:
            self._hooks(Running())
        return state

    def take_lock(self) -> None:
        """SERIALIZABLE: wait for the lock of this run's cache key, so runs of one key take
        turns: the first computes, the others then find its result. Blocking work (``steps``
        runs it in a thread under an event loop); a key that cannot be made takes no lock."""
        call, task = self.call, self.call.task
        policy, parameters = task.cache_policy, self.parameters
        if policy is None:
            return
        if call.upstream:
            parameters, blocker = resolve_inputs(call)
            if blocker is not None:
                return
        try:
            key = run_key(policy, task, parameters, self)
        except Exception:
            return  # enter() says why, and runs uncached
        if key is not None:
            self.lock = KeyLock(resolve_storage(task.storage).path, key)

    def _finish(self, state: State, data: dict[str, Any]) -> State:
        state = super()._finish(state, data)
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release()
        if task_hooks(self.options, state):
            self._hooks(state)
        return state

    def before_retry(self, exc: BaseException) -> None:
        super().before_retry(exc)
        if self.options.on_running:
            self._hooks(Retrying(f"Retrying (attempt {self.run_count})"))

    def _hooks(self, state: State) -> None:
        call_hooks(task_hooks(self.options, state), self.call.task, TaskRunView(self, state), state, self,
                   task_run_context)


class ReturnedFailure(Exception):
    """A task returned a Failed state: retried as if it had raised."""

    def __init__(self, state: State) -> None:
        super().__init__(state.message or "the task returned a Failed state")
        self.state = state


def _state_of(future: TaskFuture[Any], allowed: bool) -> State:
    future.wait()
    return future.state


def steps(call: TaskCall) -> Steps[State]:
    """The one body of a task run; ``run_task`` and ``run_task_async`` drive it."""
    run = HookedTaskRun(call) if call.task.hooked or call.task.serializable else TaskRun(call)
    try:
        if call.task.serializable and isinstance(run, HookedTaskRun):
            yield Blocking(run.take_lock)
        state = run.enter()
        if state is not None:
            return state
        task = call.task
        invoke = Call(
            lambda: task.call_function(run.parameters), run.options.timeout_seconds,
            f"task run {call.name!r}", TaskRunTimeoutError,
        )
        try:
            while True:
                try:
                    result = yield invoke
                    if isinstance(result, State) and result.is_failed() and result.run_id is None:
                        raise ReturnedFailure(result)  # a returned Failed is retried like a raise
                    break
                except Exception as exc:
                    if not run.should_retry(exc):
                        if isinstance(exc, ReturnedFailure):
                            result = exc.state
                            break
                        raise
                    run.before_retry(exc)
                    delay = run.retry_delay()
                    if delay:
                        yield Sleep(delay)
        finally:
            children = run.leave()
            if children is not None:
                yield Blocking(children.shutdown)
    except Exception as exc:
        return run.fail(exc)
    except BaseException as exc:
        state = run.crash(exc)
        if run.reraises(state, exc):
            raise  # the signal (or cancellation) goes on to end the flow run
        return state
    return run.complete(result)


# ``steps`` for a call with one attempt and no timeout (``Task.plain``): there is nothing to
# hand a driver, so no generator, step or driver stands between the run and its function. The
# two differ from each other only where sync and async code must (the awaits).


def run_plain(call: TaskCall) -> State:
    """A plain sync call's run, in this thread."""
    run = TaskRun(call)
    try:
        state = run.enter()
        if state is not None:
            return state
        try:
            result = call.task.call_function(run.parameters)
        finally:
            children = run.leave()
            if children is not None:
                children.shutdown()
    except Exception as exc:
        return run.fail(exc)
    except BaseException as exc:
        state = run.crash(exc)
        if run.reraises(state, exc):
            raise
        return state
    return run.complete(result)


async def run_plain_async(call: TaskCall) -> State:
    """A plain async call's run, on the running event loop."""
    run = TaskRun(call)
    try:
        state = run.enter()
        if state is not None:
            return state
        try:
            result = await call.task.call_function(run.parameters)
        finally:
            children = run.leave()
            if children is not None:
                await asyncio.to_thread(children.shutdown)
    except Exception as exc:
        return run.fail(exc)
    except BaseException as exc:
        state = run.crash(exc)
        if run.reraises(state, exc):
            raise
        return state
    return run.complete(result)


def run_task(call: TaskCall) -> State:
    """Run one task call to its final state, in this thread. Never raises for the task's errors.

    An async task gets an event loop of its own (in a helper thread, if this thread already
    runs one)."""
    task = call.task
    if task._tags and tag_slots.wanted(call):  # only a tagged run asks for tag concurrency slots
        return tag_slots.run_held(call, run_task)
    if not task.is_async:
        return run_plain(call) if task.plain else drive(steps(call))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_task_async(call))
    holder: list[State] = []
    thread = threading.Thread(target=lambda: holder.append(asyncio.run(run_task_async(call))))
    thread.start()
    thread.join()
    return holder[0]


def run_task_async(call: TaskCall) -> Coroutine[Any, Any, State]:
    """Run one task call to its final state from async code (await it); a sync task runs in a
    thread. The coroutine is the run's own, with no wrapper around it."""
    task = call.task
    if task._tags and tag_slots.wanted(call):
        return tag_slots.run_held_async(call, run_task_async)
    if not task.is_async:
        return asyncio.to_thread(run_task, call)
    return run_plain_async(call) if task.plain else drive_async(steps(call))


# -- a task called directly in a flow or task body --------------------------------------------


def run_task_inline(call: TaskCall, return_state: bool) -> Any:
    """Run here, tracked like any other run; the result, or the State if asked."""
    for future in call.upstream:
        future.wait()
    state = run_task(call)
    if call.flow_run_id is None:
        _stored(state)
    return state if return_state else state.result()


async def run_task_inline_async(call: TaskCall, return_state: bool) -> Any:
    if any(not future.done() for future in call.upstream):
        await asyncio.to_thread(lambda: [future.wait() for future in call.upstream])
    state = await run_task_async(call)
    if call.flow_run_id is None:
        await asyncio.to_thread(_stored, state)
    return state if return_state else state.result()


def _stored(state: State) -> None:
    """A task run of no flow run is in the store when its call returns, as a flow run is."""
    from prefect_like.logging import setup_logging
    from prefect_like.tracking.recorder import get_recorder

    setup_logging()
    recorder = get_recorder()
    recorder.flush(timeout=recorder.final_flush_timeout)
    recorder.take_counts(None)  # type: ignore[arg-type]


__all__ = [
    "HookedTaskRun",
    "TaskRun",
    "error_details",
    "resolve_inputs",
    "run_plain",
    "run_plain_async",
    "run_task",
    "run_task_async",
    "run_task_inline",
    "run_task_inline_async",
    "steps",
]
