"""The shipped conformance suite (``prefect_like.testing``) on every runner of this repository.

Each class is what a third party writes for its own runner: one ``runner`` fixture, a zero-arg
factory of fresh runners. Dask and Ray share one cluster each per session, started by the first
test that asks (see ``engines.py``).
"""

from __future__ import annotations

import pytest

from prefect_like.task_runners import (
    AsyncioTaskRunner,
    ProcessPoolTaskRunner,
    SequentialTaskRunner,
    ThreadPoolTaskRunner,
)
from prefect_like.testing import RunnerConformance

from . import engines

needs_engines = pytest.mark.skipif(
    not engines.ENABLED, reason="PREFECT_LIKE_TEST_ENGINES=0: no Dask or Ray cluster"
)


class TestSequential(RunnerConformance):
    @pytest.fixture
    def runner(self):
        return lambda: SequentialTaskRunner()


class TestThread(RunnerConformance):
    @pytest.fixture
    def runner(self):
        return lambda: ThreadPoolTaskRunner(max_workers=4)


class TestAsyncio(RunnerConformance):
    @pytest.fixture
    def runner(self):
        return lambda: AsyncioTaskRunner()


@pytest.mark.dask
@needs_engines
class TestDask(RunnerConformance):
    @pytest.fixture
    def runner(self):
        return engines.dask_runner


@pytest.mark.ray
@needs_engines
class TestRay(RunnerConformance):
    @pytest.fixture
    def runner(self):
        return engines.ray_runner


@pytest.mark.slow
class TestProcessPool(RunnerConformance):
    """The runner the "Writing a runner" guide shows, written only against the public contract."""

    @pytest.fixture
    def runner(self):
        return lambda: ProcessPoolTaskRunner(max_workers=2)
