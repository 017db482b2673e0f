"""Cache policies: how a task run's cache key is computed, with Prefect 3's algebra.

A policy's ``compute_key(task_ctx, inputs, flow_parameters)`` gives a key, or None for "this
policy has nothing to say". Policies add up: ``INPUTS + TASK_SOURCE`` changes key when either
the inputs or the function's source change; a compound ignores the parts that gave None and
gives None (do not cache) only when all did. ``INPUTS - "debug"`` leaves an input out of the
key; subtracting from a policy that does not read inputs changes nothing. ``NO_CACHE`` (alias
``NONE``) never caches, and adding it to a policy is a no-op. These are Prefect's rules
(``src/prefect/cache_policies.py``), case for case.

Where we differ: the engine prefixes the key of every built-in policy with the task's
qualified name (``run_key``), so two tasks with equal inputs never share a cached result; a
``cache_key_fn`` (and a ``result_storage_key``) gives its key as it wants it, and sharing
across tasks is then its choice.

``configure(key_storage=, isolation_level=, lock_manager=)`` is Prefect's too. ``key_storage``
(a folder) is where the policy's results are kept, in place of the task's ``result_storage``.
``isolation_level="SERIALIZABLE"`` makes runs with the same key take turns: one computes, the
others wait for it and read its result (a lock file next to the result, so across processes
and Dask or Ray workers on one machine); ``READ_COMMITTED``, the default, lets them all compute.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from prefect_like.context import TaskRunContext
    from prefect_like.tasks import Task

ISOLATION_LEVELS = ("READ_COMMITTED", "SERIALIZABLE")


def hash_objects(*objects: Any) -> str:
    """A stable digest of picklable objects; ValueError when one cannot be pickled."""
    try:
        payload = cloudpickle.dumps(objects, protocol=5)
    except Exception as exc:
        raise ValueError(
            f"cannot hash {type(exc).__name__}: {exc}. This often occurs when task inputs contain objects "
            "that cannot be cached like locks, file handles, or other system resources. Exclude these "
            "arguments (`INPUTS - 'name'`) or a custom `cache_key_fn`, or disable caching with "
            "`cache_policy=NO_CACHE`."
        ) from None
    return hashlib.sha256(payload).hexdigest()


class CachePolicy:
    """Computes a cache key from a task run's context, its inputs and its flow's parameters."""

    _fields: tuple[str, ...] = ()

    def __init__(self, key_storage: Any = None, isolation_level: Any = None, lock_manager: Any = None) -> None:
        if isolation_level is not None and str(getattr(isolation_level, "value", isolation_level)) not in ISOLATION_LEVELS:
            raise ValueError(f"isolation_level must be one of {', '.join(ISOLATION_LEVELS)}, got {isolation_level!r}")
        self.key_storage = key_storage
        self.isolation_level = getattr(isolation_level, "value", isolation_level)
        self.lock_manager = lock_manager

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None]) -> CacheKeyFnPolicy:
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def configure(self, key_storage: Any = None, lock_manager: Any = None, isolation_level: Any = None) -> Any:
        """A copy with the given key storage, lock manager or isolation level (None: unchanged)."""
        new = copy.deepcopy(self)
        if key_storage is not None:
            new.key_storage = key_storage
        if lock_manager is not None:
            new.lock_manager = lock_manager
        if isolation_level is not None:
            CachePolicy.__init__(new, new.key_storage, isolation_level, new.lock_manager)
        return new

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        raise NotImplementedError

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        return self  # only a policy that reads inputs has any to leave out

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, NoCache):
            return self
        for name, what in (("key_storage", "storage locations"), ("isolation_level", "isolation levels"),
                           ("lock_manager", "lock implementations")):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(f"Cannot add CachePolicies with different {what}.")
        return CompoundCachePolicy(
            policies=[self, other],
            key_storage=self.key_storage or other.key_storage,
            isolation_level=self.isolation_level or other.isolation_level,
            lock_manager=self.lock_manager or other.lock_manager,
        )

    def _state(self) -> tuple[Any, ...]:
        return (self.key_storage, self.isolation_level, self.lock_manager,
                *(getattr(self, name) for name in self._fields))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, CachePolicy) and other._state() == self._state()

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"


class CompoundCachePolicy(CachePolicy):
    """Two or more policies: the key hashes the keys of those that gave one (None if none did).
    Nested compounds are flattened and Inputs policies merged into one, as in Prefect."""

    _fields = ("policies",)

    def __init__(self, policies: list[CachePolicy] | tuple[CachePolicy, ...] = (), **configuration: Any) -> None:
        super().__init__(**configuration)
        flat = [p for policy in policies for p in (policy.policies if isinstance(policy, CompoundCachePolicy) else [policy])]
        inputs = [p for p in flat if isinstance(p, Inputs)]
        self.policies: list[CachePolicy] = [p for p in flat if not isinstance(p, Inputs)]
        if inputs:
            self.policies.append(Inputs(exclude=sorted({name for p in inputs for name in p.exclude})))

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        keys = [
            key
            for policy in self.policies
            if (key := policy.compute_key(task_ctx=task_ctx, inputs=inputs, flow_parameters=flow_parameters, **kwargs))
            is not None
        ]
        return hash_objects(*keys) if keys else None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, NoCache):
            return self
        merged = super().__add__(other)  # checks the configurations agree
        return CompoundCachePolicy(
            policies=[*self.policies, *(other.policies if isinstance(other, CompoundCachePolicy) else [other])],
            key_storage=merged.key_storage, isolation_level=merged.isolation_level, lock_manager=merged.lock_manager,
        )

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        if not any(isinstance(p, Inputs) for p in self.policies):
            return self  # no dependency on inputs already
        return CompoundCachePolicy(
            policies=[*self.policies, Inputs(exclude=[other])],
            key_storage=self.key_storage, isolation_level=self.isolation_level, lock_manager=self.lock_manager,
        )

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.policies) or "CompoundCachePolicy()"


CompoundPolicy = CompoundCachePolicy  # the name it had before Prefect's


class Inputs(CachePolicy):
    """The task's inputs, hashed by value (cloudpickle), less the names in ``exclude``; None
    for a task called with no inputs."""

    _fields = ("exclude",)

    def __init__(self, exclude: list[str] | None = None, **configuration: Any) -> None:
        super().__init__(**configuration)
        self.exclude: list[str] = list(exclude or [])

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if not inputs:
            return None
        kept = sorted((name, value) for name, value in inputs.items() if name not in self.exclude)
        return hash_objects(kept)

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("Can only subtract strings from key policies.")
        return Inputs(exclude=[*self.exclude, other], key_storage=self.key_storage,
                      isolation_level=self.isolation_level, lock_manager=self.lock_manager)

    def __repr__(self) -> str:
        return f"INPUTS - {self.exclude!r}" if self.exclude else "INPUTS"


class TaskSource(CachePolicy):
    """The task function's source code (its bytecode where the source is unavailable)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if not task_ctx:
            return None
        task = task_ctx.task
        known = getattr(task, "source_hash", None)
        return known if isinstance(known, str) else source_hash(getattr(task, "fn", task))

    def __repr__(self) -> str:
        return "TASK_SOURCE"


class RunId(CachePolicy):
    """The flow run (or, for a task run of no flow run, the task run): a result is reused only
    within the run that made it."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if not task_ctx:
            return None
        task_run = task_ctx.task_run
        return str(task_run.flow_run_id if task_run.flow_run_id is not None else task_run.id)

    def __repr__(self) -> str:
        return "RUN_ID"


class FlowParameters(CachePolicy):
    """The parameters of the flow run the task run belongs to (None when it has none)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if not flow_parameters:
            return None
        return hash_objects(sorted(flow_parameters.items()))

    def __repr__(self) -> str:
        return "FLOW_PARAMETERS"


class NoCache(CachePolicy):
    """Never a key: the task is not cached (and, unless asked, its result not persisted)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other

    def __repr__(self) -> str:
        return "NO_CACHE"


_None = NoCache  # Prefect's class name


class CacheKeyFnPolicy(CachePolicy):
    """A user's ``cache_key_fn(context, parameters)``, called as in Prefect."""

    _fields = ("cache_key_fn",)

    def __init__(
        self, cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None, **configuration: Any
    ) -> None:
        super().__init__(**configuration)
        self.cache_key_fn = cache_key_fn

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if self.cache_key_fn is None:
            return None
        key = self.cache_key_fn(task_ctx, inputs or {})
        return None if key is None else str(key)


class StorageKey(CachePolicy):
    """A ``result_storage_key`` (``"{parameters[x]}.pkl"``, formatted with the run's
    parameters, ``flow_run`` and ``task_run``): the result is stored under it, and a later run
    whose key names a stored result reads it, as in Prefect 3."""

    _fields = ("template",)

    def __init__(self, template: str, **configuration: Any) -> None:
        super().__init__(**configuration)
        self.template = template

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any] | None, flow_parameters: dict[str, Any] | None, **kwargs: Any
    ) -> str | None:
        from prefect_like.runtime import flow_run, task_run

        return self.template.format(parameters=inputs or {}, flow_run=flow_run, task_run=task_run)


def run_key(policy: CachePolicy, task: Task[..., Any], parameters: dict[str, Any], context: TaskRunContext) -> str | None:
    """The key a task run's result is cached under: the policy's, prefixed with the task's
    qualified name for the built-in policies, made safe as a file name for a user's own key."""
    from prefect_like.context import current_flow_run

    flow = current_flow_run(context)
    key = policy.compute_key(task_ctx=context, inputs=parameters, flow_parameters=flow.parameters if flow else {})
    if key is None:
        return None
    if isinstance(policy, (CacheKeyFnPolicy, StorageKey)):
        safe = key.replace("/", "_").replace("\\", "_")
        return safe if len(safe) <= 120 and safe not in ("", ".", "..") else hashlib.sha256(key.encode()).hexdigest()
    return f"{task.key}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class KeyLock:
    """An exclusive lock on one cache key, held from the cache lookup to the run's end: a lock
    file beside the results (``flock``), so it holds across processes on one machine, and is
    let go by the system if the holder dies."""

    def __init__(self, folder: Path, key: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._file: Any = open(folder / f".lock-{key}", "a+b")  # noqa: SIM115 - held until release()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
RUN_ID = RunId()
FLOW_PARAMETERS = FlowParameters()
NO_CACHE = NoCache()
NONE = NO_CACHE
# Prefect 3's default, and what persist_result=True turns on: the same inputs and source within
# one flow run.
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def source_hash(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr(code.co_code if code is not None else fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "KeyLock",
    "NoCache",
    "RunId",
    "StorageKey",
    "TaskSource",
    "run_key",
]
