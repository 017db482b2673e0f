"""Prefect 3's own tests and docs, run against prefect_like (see tests/compat/README.md).

Prefect's tests read its API (``get_most_recent_flow_run``, ``read_task_run_states``); here the
same facts are read from the embedded store once the flow call has returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from prefect_like import settings
from prefect_like.tracking.store import Store


@pytest.fixture
def store() -> Iterator[Callable[[], Store]]:
    """Opens this test's store (call it after the flow call returns, so the runs are written)."""
    opened: list[Store] = []

    def open_store() -> Store:
        opened.append(Store(settings.database_path()))
        return opened[-1]

    yield open_store
    for s in opened:
        s.close()
