"""Tag-based task concurrency limits: the task engine's one call.

A task run whose tags include the name of an active limit takes one slot of each such limit
before its run begins and gives them back when it ends, retries included (one hold for all of
its attempts). It waits for the slots as a PENDING run: the run's RUNNING state is made once it
holds them, so the tracker shows which runs the limit keeps waiting.

The engine calls ``wanted`` only for tagged runs (it checks ``task._tags`` first), so a run
with no tags pays nothing; a wanted run goes through ``run_held`` (or ``run_held_async``, which
waits on the event loop without blocking it). The set of limited names is read at most every ``CACHE_SECONDS`` per process
(one query then, not one per run), so a tag without a limit costs a set lookup; a limit made
while a flow runs applies within those seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from prefect_like.concurrency.leases import Lease, acquire, acquire_async, slots

if TYPE_CHECKING:
    from prefect_like.states import State
    from prefect_like.tasks import TaskCall

CACHE_SECONDS = 5.0

_cache: tuple[float, str, frozenset[str]] = (0.0, "", frozenset())
_lock = threading.Lock()
_holding: set[str] = set()  # task run ids whose slots this process holds: run them, do not ask again


def limited_names() -> frozenset[str]:
    """The names with an active limit, as read at most ``CACHE_SECONDS`` ago."""
    global _cache
    expires, target, names = _cache
    now = time.monotonic()
    # The raw settings name the tracker: cheaper than resolving its path for every tagged run.
    current = f"{os.environ.get('PREFECT_LIKE_API_URL', '')}|{os.environ.get('PREFECT_LIKE_HOME', '')}"
    if now < expires and target == current:
        return names
    with _lock:
        expires, target, names = _cache
        if now < expires and target == current:
            return names
        names = slots().limited_names()
        _cache = (time.monotonic() + CACHE_SECONDS, current, names)
        return names


def forget_limits() -> None:
    """Read the limits again at the next run (after this process changed them)."""
    global _cache
    _cache = (0.0, "", frozenset())


def hold(tags: Iterable[str]) -> Lease | None:
    """Take a slot of every limit named by one of ``tags``, waiting while any is full; None if
    no tag has a limit."""
    limited = limited_names()
    names = [tag for tag in tags if tag in limited]
    if not names:
        return None
    return acquire(names, 1, "concurrency")


def wanted(call: TaskCall) -> bool:
    """Whether this tagged run must take slots before it runs (and does not hold them yet)."""
    if call.task_run_id in _holding:
        return False
    limited = limited_names()
    return any(tag in limited for tag in call.task._tags)


def _refused(call: TaskCall, exc: Exception) -> State:
    """The run's end when its slots cannot be had (a limit of 0 slots refuses the tag's runs, as
    in Prefect; the tracker holding the limits cannot be reached): Failed, saying why."""
    from prefect_like.engine.task_engine import TaskRun

    return TaskRun(call).fail(exc)


def run_held(call: TaskCall, run: Callable[[TaskCall], State]) -> State:
    """Run ``call`` with ``run`` holding a slot of each limit its tags name."""
    try:
        lease = hold(call.task._tags)
    except Exception as exc:
        return _refused(call, exc)
    _holding.add(call.task_run_id)
    try:
        return run(call)
    finally:
        _holding.discard(call.task_run_id)
        if lease is not None:
            lease.release()


async def run_held_async(call: TaskCall, run: Callable[[TaskCall], Awaitable[State]]) -> State:
    import asyncio

    try:
        limited = await asyncio.to_thread(limited_names)
        names = [tag for tag in call.task._tags if tag in limited]
        lease: Any = await acquire_async(names, 1, "concurrency") if names else None
    except Exception as exc:
        return _refused(call, exc)
    _holding.add(call.task_run_id)
    try:
        return await run(call)
    finally:
        _holding.discard(call.task_run_id)
        if lease is not None:
            await asyncio.to_thread(lease.release)
