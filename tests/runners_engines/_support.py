"""Helpers for the engine tests: waiting on conditions (never on the clock) and a flow in a thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(
    dict.fromkeys([str(REPO_ROOT), str(REPO_ROOT / "runners"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
)
ENV = {**os.environ, "PYTHONPATH": PYTHONPATH}


# The engines' tests wait the same way as every other test.
poll = wait_until


def wait_for_file(path: str, timeout: float) -> None:
    """Used inside tasks: return once ``path`` exists (the test creates it)."""
    poll(lambda: os.path.exists(path), timeout, path)


def wait_for_task_state(store: Any, task_name: str, state: str, timeout: float) -> dict[str, Any]:
    """The first stored run of ``task_name`` in ``state``, polling the store until it appears."""

    def find() -> dict[str, Any] | None:
        try:
            flows = store.list_flow_runs(limit=5)
        except Exception:  # the database is not created until the first batch is written
            return None
        for flow_run in flows:
            for run in store.list_task_runs(flow_run["id"], task_name=task_name):
                if run["state"] == state:
                    return run
        return None

    return poll(find, timeout, f"a {task_name} task run in state {state}")


class Outcome:
    value: Any = None
    error: BaseException | None = None


@contextmanager
def flow_in_thread(fn: Callable[[], Any], timeout: float = 120) -> Iterator[Outcome]:
    """Run ``fn`` in a thread while the block runs; afterwards its value (or error) is in the outcome."""
    outcome = Outcome()

    def target() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:
            outcome.error = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(timeout)
    assert not thread.is_alive(), "the flow did not finish"
    if outcome.error is not None:
        raise outcome.error
