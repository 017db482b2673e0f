"""Helpers shared by the compatibility tests."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from prefect_like.tracking.store import Store


def state_names(store: Store, task_run_id: str) -> list[str]:
    """A task run's state history by name, oldest first (Prefect's ``read_task_run_states``)."""
    return [s["state_name"] for s in store.get_task_run(task_run_id)["states"]]


def async_test(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """Runs an ``async def`` test (written as Prefect writes it) on a fresh event loop."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return run
