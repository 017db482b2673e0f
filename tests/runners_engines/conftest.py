"""Engine tests: task functions defined here travel to worker processes by value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from . import _support


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dask: runs on a Dask cluster")
    config.addinivalue_line("markers", "ray: runs on Ray")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cloudpickle.register_pickle_by_value(_support)
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.startswith(__package__ or "runners_engines"):
            cloudpickle.register_pickle_by_value(module)


@pytest.fixture
def store() -> Iterator[Any]:
    """The tracking store of this test's PREFECT_LIKE_HOME."""
    from prefect_like import settings
    from prefect_like.tracking.store import Store

    opened: list[Any] = []

    class Lazy:
        def __getattr__(self, name: str) -> Any:
            if not opened:
                opened.append(Store(settings.database_path()))
            return getattr(opened[0], name)

    yield Lazy()
    for db in opened:
        db.close()


@pytest.fixture
def call_log(tmp_path: Path) -> str:
    return str(tmp_path / "calls.log")
