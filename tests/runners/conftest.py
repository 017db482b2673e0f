"""The runner conformance suite: the same semantics, asserted on every task runner.

Every test that asks for the ``runner`` fixture runs once per entry of ``RUNNERS`` (the model is
anyio's backend-parametrized fixture and dask's ``GetFunctionTestMixin``). ``runner`` is a zero-arg
factory: a flow takes a fresh runner instance, ``@flow(task_runner=runner())``.

Adding a runner is one entry in ``RUNNERS`` (and, if it needs one, a mark in ``RUNNER_MARKS``).
A runner on a distributed engine starts its cluster lazily, on the first flow that asks for it, and
registers the cluster's shutdown with ``at_session_end``, so the cluster is shared by the whole
session and a run that deselects the runner never starts it::

    _dask_cluster = None

    def _dask() -> TaskRunner:
        global _dask_cluster
        from distributed import LocalCluster
        from prefect_like_dask import DaskTaskRunner

        if _dask_cluster is None:
            _dask_cluster = LocalCluster(n_workers=2, threads_per_worker=2)
            at_session_end(_dask_cluster.close)
        return DaskTaskRunner(address=_dask_cluster.scheduler_address)

    RUNNERS["dask"] = _dask

Rules the tests keep so that they hold on worker processes too: task functions are defined in the
test modules (which are pickled by value, see ``pytest_collection_modifyitems``), capture nothing
that cannot cross a process (no locks, events or open files), and count their calls by appending
lines to files under ``tmp_path``, never in globals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from prefect_like.task_runners import (
    AsyncioTaskRunner,
    SequentialTaskRunner,
    ThreadPoolTaskRunner,
)

from . import _helpers

# name -> zero-arg factory of a fresh runner. The extension point: add an entry per runner.
RUNNERS: dict[str, Callable[[], Any]] = {
    "sequential": lambda: SequentialTaskRunner(),
    "thread": lambda: ThreadPoolTaskRunner(max_workers=4),
    "asyncio": lambda: AsyncioTaskRunner(),
}

# name -> marks applied to every test run on that runner (e.g. ``[pytest.mark.slow]``).
RUNNER_MARKS: dict[str, list[pytest.MarkDecorator]] = {}

_session_cleanups: list[Callable[[], Any]] = []


def at_session_end(cleanup: Callable[[], Any]) -> None:
    """Run ``cleanup`` once the whole session is over (e.g. to close a shared cluster)."""
    _session_cleanups.append(cleanup)


from . import engines  # noqa: E402

engines.register(RUNNERS, RUNNER_MARKS, at_session_end)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dask: runs on a Dask cluster (deselect with -m 'not dask')")
    config.addinivalue_line("markers", "ray: runs on Ray (deselect with -m 'not ray')")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Built at collection time, so entries added to RUNNERS after this module loads still count.
    if "runner_name" in metafunc.fixturenames:
        metafunc.parametrize(
            "runner_name",
            [pytest.param(name, marks=RUNNER_MARKS.get(name, []), id=name) for name in RUNNERS],
        )


@pytest.fixture
def runner(runner_name: str) -> Callable[[], Any]:
    """A factory of fresh instances of the runner under test: ``@flow(task_runner=runner())``."""
    return RUNNERS[runner_name]


@pytest.fixture(scope="session", autouse=True)
def _session_resources() -> Iterator[None]:
    yield
    while _session_cleanups:
        _session_cleanups.pop()()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tasks defined at module level in a test module would be pickled by reference, and a Dask or
    # Ray worker process cannot import a test module; pickling these modules by value ships the
    # functions themselves.
    seen: set[str] = {_helpers.__name__}
    cloudpickle.register_pickle_by_value(_helpers)
    for item in items:
        module = getattr(item, "module", None)
        if module is None or not module.__name__.startswith(__package__ or "runners"):
            continue
        if module.__name__ not in seen:
            seen.add(module.__name__)
            cloudpickle.register_pickle_by_value(module)


class _LazyStore:
    """The embedded tracking store, opened on first use (after the flow under test has run)."""

    def __init__(self) -> None:
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            from prefect_like import settings
            from prefect_like.tracking.store import Store

            self._store = Store(settings.database_path())
        return getattr(self._store, name)

    def close(self) -> None:
        if self._store is not None and hasattr(self._store, "close"):
            self._store.close()


@pytest.fixture
def store() -> Iterator[Any]:
    """The tracking store of this test's PREFECT_LIKE_HOME; read it after a flow call returns."""
    lazy = _LazyStore()
    yield lazy
    lazy.close()


@pytest.fixture
def call_log(tmp_path: Path) -> str:
    """A file a task appends one line to per call (as a str, so it pickles anywhere)."""
    return str(tmp_path / "calls.log")
