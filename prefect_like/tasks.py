"""Tasks: what a task is, and how calling, submitting or mapping one becomes a ``TaskCall``.

Definition only; ``engine.py`` says how a run happens and ``task_runners.py`` where. A task's
options live in one frozen ``TaskOptions``; ``with_options`` makes a new task from changed ones.

Building a call is on the hot path of every task run: parameters are bound by position against
a precomputed list of names, futures are found by a walk that skips scalars at once, and the
PENDING event is a tuple appended to the event buffer.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import inspect
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import cloudpickle

from prefect_like import caching
from prefect_like import context as _context
from prefect_like import engine_options as _engine_options
from prefect_like.calls import LEAVES as _LEAVES
from prefect_like.calls import (
    Definition,
    allow_failure,
    decorate_method,
    quote,
    reject_reserved,
    takes_varargs,
    unmapped,
    walk,
)
from prefect_like.context import FlowRunContext, flow_run_context, task_run_context
from prefect_like.errors import MappingLengthMismatch, MappingMissingIterable, UpstreamFailedError
from prefect_like.futures import DeferredFutureList, TaskFuture, when_done
from prefect_like.hooks import Hooks, StateHooks, check_hooks
from prefect_like.results import ResultStorage
from prefect_like.states import State
from prefect_like.tracking.events import PendingCall, emit

if TYPE_CHECKING:
    from prefect_like.context import TaskRunContext

P = ParamSpec("P")
R = TypeVar("R")
_logger = logging.getLogger("prefect_like")

RetryDelay = float | list[float] | Callable[[int], Any] | None


HOOK_OPTIONS = ("on_completion", "on_failure", "on_running")  # called as hook(task, task_run, state)
TRANSACTION_HOOK_OPTIONS = ("on_commit", "on_rollback")  # accepted; no transactions here


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Every option of a task, Prefect 3's names and defaults. What each does, and which are
    accepted with no effect here, is in docs/guide/tasks-and-flows.md."""

    name: str
    description: str | None = None
    tags: frozenset[str] = frozenset()
    version: str | None = None
    retries: int = 0
    retry_delay_seconds: RetryDelay = None
    retry_jitter_factor: float | None = None
    retry_condition_fn: Callable[[Task[..., Any], TaskRunContext, State], bool] | None = None
    cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None
    cache_policy: caching.CachePolicy | None = None
    cache_expiration: datetime.timedelta | None = None
    refresh_cache: bool | None = None
    persist_result: bool | None = None
    result_storage: ResultStorage | str | None = None
    result_serializer: Any = None  # accepted: results are always cloudpickle files
    result_storage_key: str | None = None
    cache_result_in_memory: bool = True  # accepted: a run's result is always kept in its future
    timeout_seconds: float | None = None
    log_prints: bool | None = None
    task_run_name: str | Callable[..., str] | None = None
    on_completion: Hooks = ()
    on_failure: Hooks = ()
    on_running: Hooks = ()
    on_commit: Hooks = ()  # accepted, never called: no transactions here
    on_rollback: Hooks = ()
    viz_return_value: Any = None  # accepted: there is no flow.visualize()
    # Hints for the distributed runners' engines: resources in one spelling ({"num_gpus": 1}),
    # and each engine's own options (prefect_like.engine_options).
    engine_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retries is None:  # Prefect's default, from its settings: no retries
            object.__setattr__(self, "retries", 0)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise TypeError(f"retries must be an integer, got {self.retries!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.timeout_seconds == 0:  # Prefect's way to unset a timeout (``with_options(timeout_seconds=0)``)
            object.__setattr__(self, "timeout_seconds", None)
        if self.timeout_seconds is not None and self.timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be positive (or 0 for none), got {self.timeout_seconds}")
        if self.retry_condition_fn is not None and not callable(self.retry_condition_fn):
            raise TypeError(
                f"Expected `retry_condition_fn` to be callable, got {type(self.retry_condition_fn).__name__} instead."
            )
        if self.retry_jitter_factor is not None and self.retry_jitter_factor < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        delays = self.retry_delay_seconds
        if delays is not None and not callable(delays) and not isinstance(delays, (int, float, list, tuple)):
            raise TypeError(
                "Invalid `retry_delay_seconds` provided; must be an int, float, list or callable. "
                f"Received type {type(delays)}"
            )
        if isinstance(delays, (list, tuple)) and len(delays) > 50:
            raise ValueError("Can not configure more than 50 retry delays per task.")
        run_name = self.task_run_name
        if run_name is not None and not isinstance(run_name, str) and not callable(run_name):
            raise TypeError(f"Expected string or callable for 'task_run_name'; got {type(run_name).__name__} instead.")
        if self.cache_policy is not None and not isinstance(self.cache_policy, caching.CachePolicy):
            raise TypeError(f"cache_policy must be a cache policy (INPUTS, TASK_SOURCE...), got {self.cache_policy!r}")
        for name in (*HOOK_OPTIONS, *TRANSACTION_HOOK_OPTIONS):
            object.__setattr__(self, name, check_hooks("task", name, getattr(self, name)))
        object.__setattr__(self, "engine_options", _engine_options.check(self.engine_options or {}))

    @property
    def effective_cache_policy(self) -> caching.CachePolicy | None:
        """The policy in force, as Prefect 3 decides it: a ``cache_key_fn`` wins; a
        ``result_storage_key`` with no policy is the key; persisting a result with no policy
        makes it ``DEFAULT``; ``persist_result=False`` or ``NO_CACHE`` means no caching."""
        if self.persist_result is False:
            return None
        if self.cache_key_fn is not None:
            return caching.CacheKeyFnPolicy(cache_key_fn=self.cache_key_fn)
        if self.cache_policy is None and self.result_storage_key is not None:
            return caching.StorageKey(self.result_storage_key)
        if self.cache_policy is None and (self.persist_result or self.result_serializer is not None):
            return caching.DEFAULT  # as in Prefect 3: persisting a result makes it a cache
        if self.cache_policy is None or isinstance(self.cache_policy, caching.NoCache):
            return None
        return self.cache_policy

    @property
    def persists(self) -> bool:
        if self.persist_result is not None:
            return self.persist_result
        return self.effective_cache_policy is not None

    @property
    def hooked(self) -> bool:
        """Whether a state hook is set: only then does a run look for hooks."""
        return bool(self.on_completion or self.on_failure or self.on_running)


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """A ``retry_delay_seconds`` that waits ``backoff_factor * 2 ** (retry - 1)`` seconds before
    each retry (Prefect's: called once with the number of retries, it gives the delays)."""

    def delays(retries: int) -> list[float]:
        return [float(backoff_factor * 2**retry) for retry in range(retries)]

    return delays


def retry_delays(option: RetryDelay, retries: int) -> tuple[float, ...]:
    """The delays before each retry, from a number, a list, or Prefect's callable (called once
    with the number of retries, returning a list of delays or one delay)."""
    value: Any = option(retries) if callable(option) else option
    if value is None:
        return (0.0,)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        delays: tuple[Any, ...] = (value,)
    elif isinstance(value, (list, tuple)):
        delays = tuple(value) or (0.0,)
    else:
        raise TypeError(f"retry_delay_seconds must give a number or a list of numbers, got {value!r}")
    if not all(isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0 for d in delays):
        raise TypeError(f"retry_delay_seconds must give non-negative numbers, got {value!r}")
    return tuple(float(d) for d in delays)


@dataclass(slots=True, eq=False)
class TaskCall:
    """One task run to be executed: what a runner submits and the engine runs."""

    task: Task[..., Any]
    parameters: dict[str, Any]
    task_run_id: str
    flow_run_id: str | None  # None: a task run of no flow run (a task called outside a flow)
    name: str
    map_index: int | None = None
    upstream: tuple[Any, ...] = ()  # futures this run waits for (parameters and wait_for)
    wait_for: tuple[Any, ...] = ()
    created: float = 0.0  # when the call was made: the run's PENDING timestamp (0: not known)
    log_prints: bool = False  # the task's log_prints, or else its flow's

    def run(self) -> State:
        """Run this task run to its final state in this thread (an async task gets a loop)."""
        return _engine().run_task(self)

    def run_async(self) -> Coroutine[Any, Any, State]:
        """Run this task run to its final state from async code (await it; a sync task runs
        in a thread)."""
        return _engine().run_task_async(self)

    def with_upstream_states(self) -> TaskCall:
        """A copy whose upstream futures (all done) are plain done futures holding just their
        final states (no runner, no callbacks): what a call carries to another process."""

        def state_of(future: TaskFuture[Any], allowed: bool) -> TaskFuture[Any]:
            done: TaskFuture[Any] = TaskFuture(future.task_run_id, future.task_name)
            done.set_state(future.state)
            return done

        return dataclasses.replace(
            self,
            parameters={name: walk(value, state_of, _FUTURES) for name, value in self.parameters.items()},
            wait_for=walk(self.wait_for, state_of, _FUTURES),
            upstream=(True,),
        )

    def describe(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add what the run's Pending event says (task name, map index, name, tags) to ``data``."""
        task = self.task
        data["task_name"] = task.name
        data["map_index"] = self.map_index
        if task.options.task_run_name is not None:
            data["name"] = self.name
        if task._tags:
            data["tags"] = task._tags
        return data


@functools.cache
def _engine() -> Any:
    """The task engine, which imports this module: found once, not by an import per run."""
    from prefect_like.engine import task_engine

    return task_engine


_new_event = tuple.__new__  # builds an Event without NamedTuple's argument binding
_NONE_FOUND: list[Any] = []  # the upstream of a call whose parameters hold no future; never changed
_FUTURES = (TaskFuture,)


def prepare(value: Any, found: list[Any]) -> Any:
    """An argument as a call carries it: its futures collected into ``found``, a State in it
    made a done future (the engine resolves both alike), a ``quote`` taken off, and an
    ``allow_failure`` with no future inside taken off."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is quote:
        return value.value
    before = len(found)

    def visit(target: Any, allowed: bool) -> Any:
        if isinstance(target, State):
            future: TaskFuture[Any] = TaskFuture(target.run_id or "", "state")
            future.set_state(target)
            target = future
        found.append(target)
        return target

    value = walk(value, visit, _UPSTREAM_KINDS)
    if kind is allow_failure and len(found) == before:
        return value.value
    return value


_UPSTREAM_KINDS = (TaskFuture, State)


class Task(StateHooks, Definition, Generic[P, R], options=TaskOptions):
    """A function whose calls inside a flow are tracked, retried and cached task runs."""

    cache_policy: caching.CachePolicy | None  # the policy in force (``effective_cache_policy``)

    def __init__(self, fn: Callable[P, R], options: TaskOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._positional = [
            p.name
            for p in self.signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self._plain_signature = all(
            p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in self.signature.parameters.values()
        )
        # *args or **kwargs in the signature: the function is called with the bound arguments
        # rebuilt, not with the parameters as keywords.
        self.takes_varargs = takes_varargs(self.signature)
        self._tags = sorted(options.tags)
        self._pending_tags = self._tags or None  # what a PendingCall holds
        # Read on every run: worked out once here rather than per task run.
        if options.cache_key_fn is not None and options.cache_policy is not None:
            _logger.warning("Both `cache_policy` and `cache_key_fn` are set on task %r. `cache_key_fn` will be used.",
                            options.name)
        if options.persist_result is False and options.cache_policy not in (None, caching.NO_CACHE):
            _logger.warning("Task %r: ignoring `cache_policy` because `persist_result` is False", options.name)
        self.cache_policy = policy = options.effective_cache_policy
        self.persists = options.persists
        # Where results are read and written: the policy's key_storage, else result_storage.
        self.storage = policy.key_storage if policy is not None and policy.key_storage else options.result_storage
        self.serializable = policy is not None and policy.isolation_level == "SERIALIZABLE"
        self.retry_delays = retry_delays(options.retry_delay_seconds, options.retries)
        self.hooked = options.hooked
        # One attempt, no timeout, no hooks: a run calls the function in place (``engine.run_plain``).
        self.plain = (
            not options.retries and options.timeout_seconds is None and not self.hooked and not self.serializable
        )
        self._tagged: dict[frozenset[str], Task[P, R]] = {}  # this task under ``with tags(...)``
        functools.update_wrapper(self, fn)
        self.description = options.description or inspect.getdoc(fn)

    @functools.cached_property
    def key(self) -> str:
        """A stable identity for cache keys: module and qualified name."""
        return f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', self.name)}"

    @functools.cached_property
    def source_hash(self) -> str:
        return caching.source_hash(self.fn)

    def with_options(self, **changes: Any) -> Task[P, R]:
        """A new task with these options changed (the same names as ``@task``); the rest kept.
        Given tags replace the task's tags, as in Prefect."""
        unknown = set(changes) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"with_options() got unknown options: {', '.join(sorted(unknown))}")
        if "tags" in changes:
            changes["tags"] = frozenset(changes["tags"] or ())
        task: Task[P, R] = Task(self.fn, dataclasses.replace(self.options, **changes))
        task.method_kind = self.method_kind
        return task

    # -- state hooks (Prefect's decorators: ``@my_task.on_failure``) ---------------------------

    def _add_hook(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        hooks = check_hooks("task", name, (*getattr(self.options, name), fn))
        self.options = dataclasses.replace(self.options, **{name: hooks})
        self.hooked = self.options.hooked
        self.plain = self.plain and not self.hooked
        self._tagged.clear()
        return fn

    def on_commit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Accepted as in Prefect; never called: there are no transactions here."""
        return self._add_hook("on_commit", fn)

    def on_rollback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Accepted as in Prefect; never called: there are no transactions here."""
        return self._add_hook("on_rollback", fn)

    @property
    def on_commit_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_commit)

    @property
    def on_rollback_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_rollback)

    @property
    def task_key(self) -> str:
        """Prefect's name for the task's stable identity."""
        return self.key

    def tagged(self, tags: frozenset[str]) -> Task[P, R]:
        """This task with ``tags`` added to its own: what a call inside ``with tags(...)`` runs."""
        found = self._tagged.get(tags)
        if found is None:
            found = Task(self.fn, dataclasses.replace(self.options, tags=self.options.tags | tags))
            found.bound_to, found.method_kind = self.bound_to, self.method_kind
            found.__dict__.update({k: v for k, v in self.__dict__.items() if k in ("key", "source_hash")})
            self._tagged[tags] = found
        return found

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    # -- building calls ----------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any], as_method: bool = True) -> dict[str, Any]:
        if as_method and self.bound_to is not None:
            args = (self.bound_to, *args)
        if not kwargs and self._plain_signature and len(args) == len(self._positional):
            return dict(zip(self._positional, args, strict=True))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _call(
        self,
        context: FlowRunContext | TaskRunContext | _NoFlow,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None,
        map_index: int | None = None,
        upstream: list[Any] | None = None,
    ) -> TaskCall:
        """The call, its PENDING emitted; ``upstream`` holds the futures already found in
        ``parameters`` (None: look for them)."""
        if _context.tag_scopes:  # a ``with tags(...)`` block is open in this process
            extra = _context.current_tags.get()
            if extra and not extra <= self.options.tags:
                return self.tagged(extra)._call(context, parameters, wait_for, map_index, upstream)
        if upstream is None:
            upstream = []
            for value in parameters.values():
                if type(value) not in _LEAVES:
                    parameters = {name: prepare(value, upstream) for name, value in parameters.items()}
                    break
        if wait_for:
            upstream = list(upstream)
            wait_for = tuple(prepare(value, upstream) for value in wait_for)
        else:
            wait_for = ()
        flow_run_id = context.flow_run_id
        task_run_id = f"{(flow_run_id or _NO_FLOW_TAG)[:12]}-{_PROCESS_TAG}{next(_COUNTER):x}"
        options = self.options
        if options.task_run_name is None:
            name = self.name if map_index is None else f"{self.name}-{map_index}"
            run_name = None
        else:
            name = run_name = self._run_name(parameters)
        created = time.time()
        emit(_new_event(PendingCall, (task_run_id, flow_run_id, created, self.name, map_index, run_name,
                                      self._pending_tags)))
        log_prints = options.log_prints
        if log_prints is None:
            log_prints = context.log_prints
        return TaskCall(self, parameters, task_run_id, flow_run_id, name, map_index,
                        tuple(upstream) if upstream else (), wait_for, created, log_prints)

    def _run_name(self, parameters: dict[str, Any]) -> str:
        template = self.options.task_run_name
        assert template is not None
        try:
            if callable(template):
                return str(template(**parameters)) if _accepts_parameters(template) else str(template())
            return template.format(**parameters)
        except Exception as exc:
            raise ValueError(f"task_run_name {template!r} of task {self.name!r} failed: {exc}") from exc

    # -- the three ways to run a task --------------------------------------------------------

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task now, in this thread, tracked; returns its result (or its final State,
        with ``return_state=True``). Outside a flow it is a task run of no flow run, with the
        same retries, caching and timeouts, as in Prefect 3."""
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        from prefect_like import engine

        context = _current_run()
        if context is _NO_FLOW:  # the recorder of this process's current store takes its events
            from prefect_like.tracking.recorder import get_recorder

            get_recorder()
        call = self._call(context, self.bind(args, kwargs), wait_for)
        if self.is_async:
            return engine.run_task_inline_async(call, return_state)
        return engine.run_task_inline(call, return_state)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the task to the task runner; returns a future of its run (or, with
        ``return_state=True``, waits and returns its final State).

        In a flow the flow's runner runs it; inside a task run, a runner of that task run's
        own (the task run waits for what it submitted before it ends)."""
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        context, runner = _submission(self, "submit")
        future = runner.submit(self._call(context, self.bind(args, kwargs), wait_for))
        if return_state:
            future.wait()
            return future.state
        return future

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """Submit one task run per item of the iterable arguments (zipped); returns their futures
        (or, with ``return_state=True``, waits and returns their final States).

        ``unmapped(x)`` passes ``x`` whole to every run; strings and bytes are passed whole too,
        a dict is mapped over its keys (as in Prefect). An upstream future or State as an
        argument is mapped over its result. Submission is bounded, so a generator of a million
        items is never materialised at once.
        """
        return_state = kwargs.pop("return_state", False)
        wait_for = kwargs.pop("wait_for", None)
        context, runner = _submission(self, "map")
        waiting = _unfinished_upstreams((*args, *kwargs.values()))
        if waiting:
            # Mapped over an upstream that has not ended: the body goes on; the runs are made
            # once it has, and the list fills then (reading it waits for that).
            deferred: DeferredFutureList[Any] = DeferredFutureList()

            def fill() -> None:
                try:
                    deferred.fill(runner.map(self._map_calls(context, args, kwargs, wait_for)))
                except BaseException as exc:
                    deferred.fail(exc)

            when_done(waiting, lambda: runner.defer(fill))
            futures: Any = deferred
        else:
            futures = runner.map(self._map_calls(context, args, kwargs, wait_for))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def _map_calls(
        self, context: FlowRunContext, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
    ) -> Iterator[TaskCall]:
        if self.bound_to is not None:  # a method: its instance (or class) is the first argument
            args = (unmapped(self.bound_to), *args)
        names = list(self._positional[: len(args)]) + list(kwargs)
        if len(args) > len(self._positional):
            raise TypeError(f"task {self.name!r} takes {len(self._positional)} positional arguments, got {len(args)}")
        values = list(args) + list(kwargs.values())
        constant: dict[str, Any] = {}
        iterables: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            annotation = value if isinstance(value, (allow_failure, quote)) else None
            if annotation is not None:
                value = annotation.value
            if isinstance(value, (TaskFuture, State)):
                if type(annotation) is allow_failure and not _completed(value):
                    constant[name] = annotation  # each run gets the failure, as in Prefect
                    continue
                value = _mappable(value, self.name, name)
            if isinstance(value, unmapped):
                constant[name] = value.value
            elif isinstance(value, (str, bytes)) or not _is_iterable(value):
                constant[name] = value if type(annotation) is not allow_failure else annotation
            elif type(annotation) is allow_failure:
                iterables[name] = (annotation.rewrap(item) for item in value)
            else:
                iterables[name] = value
        if not iterables:
            raise MappingMissingIterable(
                f"task {self.name!r}.map() got no iterable argument to map over; pass a list (or any "
                f"iterable), or call the task with submit() for a single run"
            )
        lengths = {name: len(v) for name, v in iterables.items() if hasattr(v, "__len__")}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
            raise MappingLengthMismatch(f"task {self.name!r}.map() got iterables of different lengths: {detail}")
        constant_upstream: list[Any] = []
        constant = {name: prepare(value, constant_upstream) for name, value in constant.items()}
        mapped_names = list(iterables)
        fast = not kwargs and self._plain_signature and not constant and len(names) == len(self._positional)

        def calls() -> Iterator[TaskCall]:
            iterators = [iter(v) for v in iterables.values()]
            make = self._call
            if fast and len(iterators) == 1:  # one argument, mapped: the usual sweep
                (name,) = mapped_names
                for index, item in enumerate(iterators[0]):
                    if type(item) in _LEAVES:
                        yield make(context, {name: item}, wait_for, index, _NONE_FOUND)
                    else:
                        upstream: list[Any] = []
                        yield make(context, {name: prepare(item, upstream)}, wait_for, index, upstream)
                return
            for index, items in enumerate(_zip_exact(iterators, mapped_names, self.name)):
                upstream = list(constant_upstream)
                for item in items:
                    if type(item) not in _LEAVES:
                        items = tuple(prepare(item, upstream) for item in items)
                        break
                if fast:
                    parameters = dict(zip(mapped_names, items, strict=True))
                else:
                    parameters = self.bind((), {**constant, **dict(zip(mapped_names, items, strict=True))}, as_method=False)
                yield make(context, parameters, wait_for, index, upstream)

        return calls()


# A task run id is the flow run id's first 12 hex digits, a tag of the process that made the
# call and that process's counter: unique (nested task calls are made on workers too), short,
# and far cheaper than a uuid per task run. next() on itertools.count is atomic.
_COUNTER = itertools.count()
_PROCESS_TAG = secrets.token_hex(3)
_NO_FLOW_TAG = secrets.token_hex(6)  # in place of a flow run id, for task runs of no flow run


def _new_process_tag() -> None:
    global _PROCESS_TAG, _COUNTER
    _PROCESS_TAG = secrets.token_hex(3)
    _COUNTER = itertools.count()


os.register_at_fork(after_in_child=_new_process_tag)


def _zip_exact(iterators: list[Iterator[Any]], names: list[str], task_name: str) -> Iterator[tuple[Any, ...]]:
    sentinel = object()
    if len(iterators) == 1:
        for item in iterators[0]:
            yield (item,)
        return
    while True:
        items = tuple(next(it, sentinel) for it in iterators)
        ended = [name for name, item in zip(names, items, strict=True) if item is sentinel]
        if len(ended) == len(items):
            return
        if ended:
            raise MappingLengthMismatch(
                f"task {task_name!r}.map() got iterables of different lengths: {', '.join(ended)} ended first"
            )
        yield items


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _accepts_parameters(fn: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False


def _unfinished_upstreams(values: tuple[Any, ...]) -> list[TaskFuture[Any]]:
    """The futures given to ``map`` whole (or in ``allow_failure``) whose runs have not ended."""
    found = []
    for value in values:
        inner = value.value if isinstance(value, allow_failure) else value
        if isinstance(inner, TaskFuture) and not inner.done():
            found.append(inner)
    return found


def _completed(value: TaskFuture[Any] | State) -> bool:
    if isinstance(value, TaskFuture):
        value.wait()
        value = value.state
    return value.is_completed()


def _mappable(value: TaskFuture[Any] | State, task_name: str, name: str) -> Any:
    """An upstream future (or State) given to ``map`` whole: its result, once it has one."""
    state = value.state if not isinstance(value, State) else value
    if isinstance(value, TaskFuture):
        value.wait()
        state = value.state
    if not state.is_completed():
        raise UpstreamFailedError(
            f"task {task_name!r}.map() cannot map over {name!r}: its upstream run ended {state.name}"
            + (f" ({state.message})" if state.message else "")
        )
    return state.result()


def _current_run() -> FlowRunContext | TaskRunContext | _NoFlow:
    return task_run_context.get() or flow_run_context.get() or _NO_FLOW


class _NoFlow:
    """The run context of a task called outside any flow: a task run of no flow run."""

    flow_run_id = None
    log_prints = False


_NO_FLOW = _NoFlow()


def _submission(task: Task[..., Any], method: str) -> tuple[Any, Any]:
    """The context a submitted call belongs to and the runner that runs it."""
    inner = task_run_context.get()
    if inner is not None:
        return inner, inner.child_runner()
    context = flow_run_context.get()
    if context is None:
        raise RuntimeError(
            f"{task.name}.{method}() was called outside a flow; submit and map need a flow's task "
            f"runner (call the task directly to run it on its own)"
        )
    return context, context.task_runner


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(TaskOptions))


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """Prefect's ``cache_key_fn`` that hashes the task (its identity and code) and all its
    inputs; None (no caching) when an input cannot be pickled."""
    task = context.task
    code = getattr(task.fn, "__code__", None)
    try:
        payload = cloudpickle.dumps((task.key, code.co_code if code else b"", sorted(arguments.items())), protocol=5)
    except Exception:
        return None
    return hashlib.sha256(payload).hexdigest()


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    cache_policy: caching.CachePolicy | None = None,
    cache_key_fn: Callable[..., str | None] | None = None,
    cache_expiration: datetime.timedelta | None = None,
    task_run_name: str | Callable[..., str] | None = None,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay = None,
    retry_jitter_factor: float | None = None,
    persist_result: bool | None = None,
    result_storage: ResultStorage | str | None = None,
    result_serializer: Any = None,
    result_storage_key: str | None = None,
    cache_result_in_memory: bool = True,
    timeout_seconds: float | None = None,
    log_prints: bool | None = None,
    refresh_cache: bool | None = None,
    on_completion: Iterable[Callable[..., Any]] | None = None,
    on_failure: Iterable[Callable[..., Any]] | None = None,
    on_running: Iterable[Callable[..., Any]] | None = None,
    on_rollback: Iterable[Callable[..., Any]] | None = None,
    on_commit: Iterable[Callable[..., Any]] | None = None,
    retry_condition_fn: Callable[..., bool] | None = None,
    viz_return_value: Any = None,
    engine_options: dict[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(retries=3, cache_policy=INPUTS)``; every
    option of Prefect 3's ``@task`` is taken (see ``TaskOptions``)."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"task() got unknown options: {', '.join(sorted(unknown))}")

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        method = decorate_method(fn, decorate)
        if method is not None:
            return method
        if not callable(fn):
            raise TypeError(f"@task decorates a function, got {type(fn).__name__}")
        reject_reserved(fn, ("return_state", "wait_for"))
        values = dict(options)
        values["name"] = values.get("name") or getattr(fn, "__name__", "task")
        values["tags"] = frozenset(values.get("tags") or ())
        return Task(fn, TaskOptions(**values))

    return decorate(__fn) if __fn is not None else decorate
