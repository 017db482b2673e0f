"""The runner conformance suite: the semantics every task runner must keep, as pytest mixins.

A runner passes the suite when a test class inheriting ``RunnerConformance`` passes with one
fixture, ``runner``: a zero-arg factory of fresh, unstarted runners (the model is dask's
``GetFunctionTestMixin``)::

    import pytest
    from prefect_like.testing import RunnerConformance

    class TestMyRunner(RunnerConformance):
        @pytest.fixture
        def runner(self):
            return lambda: MyTaskRunner(max_workers=2)

Each area is a mixin of its own (``BasicsTests``, ``MapTests``, ...) for a runner that wants
only some of them; every mixin brings the fixtures it needs (see ``fixtures.py``): each test
runs in its own ``PREFECT_LIKE_HOME`` under ``tmp_path``.

Rules the tests keep so that they hold on worker processes too: tasks and the classes they use
are defined at module level here (importable wherever prefect_like is) or inside the test (and
pickled by value); they capture nothing that cannot cross a process (no locks, events or open
files) and count their calls by appending lines to files under ``tmp_path``, never in globals.
"""

from __future__ import annotations

import pytest

# Plain asserts in the mixins give pytest's detailed failure messages in a third party's run.
pytest.register_assert_rewrite("prefect_like.testing.conformance", "prefect_like.testing.helpers")

from prefect_like.testing.conformance.async_flows import AsyncTests  # noqa: E402
from prefect_like.testing.conformance.basics import BasicsTests  # noqa: E402
from prefect_like.testing.conformance.caching import CachingTests  # noqa: E402
from prefect_like.testing.conformance.dependencies import DependencyTests  # noqa: E402
from prefect_like.testing.conformance.failures import FailureTests  # noqa: E402
from prefect_like.testing.conformance.interrupts import InterruptTests  # noqa: E402
from prefect_like.testing.conformance.logs import LoggingTests  # noqa: E402
from prefect_like.testing.conformance.map import MapTests  # noqa: E402
from prefect_like.testing.conformance.retries import RetryTests  # noqa: E402
from prefect_like.testing.conformance.runners import RunnerLifecycleTests  # noqa: E402
from prefect_like.testing.conformance.timeouts import TimeoutTests  # noqa: E402
from prefect_like.testing.conformance.tracking import TrackingTests  # noqa: E402
from prefect_like.testing.fixtures import ConformanceFixtures  # noqa: E402


class RunnerConformance(
    BasicsTests,
    MapTests,
    DependencyTests,
    FailureTests,
    RetryTests,
    CachingTests,
    TimeoutTests,
    LoggingTests,
    TrackingTests,
    AsyncTests,
    RunnerLifecycleTests,
    InterruptTests,
):
    """Every conformance test; a subclass provides the ``runner`` fixture."""


__all__ = [
    "AsyncTests",
    "BasicsTests",
    "CachingTests",
    "ConformanceFixtures",
    "DependencyTests",
    "FailureTests",
    "InterruptTests",
    "LoggingTests",
    "MapTests",
    "RetryTests",
    "RunnerConformance",
    "RunnerLifecycleTests",
    "TimeoutTests",
    "TrackingTests",
]
