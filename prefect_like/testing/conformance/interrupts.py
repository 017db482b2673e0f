"""Ctrl-C and SIGTERM: the flow call raises KeyboardInterrupt, the run ends CANCELLED, queued
runs never start, and the store leaves no task run looking alive (DESIGN.md, non-negotiable 7).

The signal comes from a task, sent to the flow's process by pid, so the same test holds when the
task runs on a Dask or Ray worker process. Long-running work waits for a file the test writes
only once the flow call is over, bounded so that nothing hangs forever.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from prefect_like import flow, task
from prefect_like.testing.fixtures import ConformanceFixtures
from prefect_like.testing.helpers import count_lines, mark_call, wait_for_file, wait_until

LONG_RUN_SECONDS = 30
ALIVE = ("PENDING", "RUNNING")


@task
def long_running(release: str, started: str) -> str:
    mark_call(started, "start")
    wait_for_file(release, LONG_RUN_SECONDS)
    return "released"


@task
def send_signal(pid: int, signum: int, release: str, started: str) -> str:
    mark_call(started, "start")
    os.kill(pid, signum)
    wait_for_file(release, LONG_RUN_SECONDS)
    return "released"


@task
def queued(upstream: object, log: str) -> object:
    mark_call(log)
    return upstream


@task
def where() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def runs_tasks_inside_submit(runner) -> bool:
    """Whether the runner runs a task to its end inside ``submit``, on the flow's own thread."""

    @flow(task_runner=runner())
    def probe() -> bool:
        future = where.submit()
        done_at_once = future.done()
        return done_at_once and future.result() == (os.getpid(), threading.get_ident())

    return probe()


def interrupted_flow_run(store, flow_name: str) -> tuple[dict, list[dict]]:
    (flow_run,) = [r for r in store.list_flow_runs(limit=100) if r["flow_name"] == flow_name]
    return flow_run, store.list_task_runs(flow_run["id"], limit=1000)


def alive(task_runs: list[dict]) -> list[tuple[str, str]]:
    return [(r["task_name"], r["state_name"]) for r in task_runs if r["state"] in ALIVE]


class _FallbackSigterm:
    """Stands in for the default SIGTERM action (which would kill the test process) while a
    test runs: if the flow engine handles SIGTERM, its handler replaces this one for the flow's
    duration; if not, this one notes it and lets the long-running task go, so the test fails
    saying why instead of hanging or dying."""

    def __init__(self, release: Path) -> None:
        self.release = release
        self.fired = False

    def __call__(self, signum, frame) -> None:
        self.fired = True
        self.release.touch()

    def __enter__(self) -> _FallbackSigterm:
        self.previous = signal.signal(signal.SIGTERM, self)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self.previous)


SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)


class InterruptTests(ConformanceFixtures):
    """Ctrl-C and SIGTERM end a flow run CANCELLED, with a true record of every task run."""

    def test_keyboard_interrupt_in_the_body_cancels_queued_runs(
        self, runner, store, tmp_path, call_log
    ):
        if runs_tasks_inside_submit(runner):
            pytest.skip("the runner runs each task inside submit(): no run is ever queued")
        release, started = tmp_path / "release", str(tmp_path / "started.log")

        @flow(task_runner=runner())
        def interrupted() -> None:
            running = long_running.submit(str(release), started)
            for _ in range(3):
                queued.submit(running, call_log)
            queued.submit("after", call_log, wait_for=[running])
            wait_until(lambda: count_lines(started) == 1, what="the long-running task to start")
            raise KeyboardInterrupt

        try:
            with pytest.raises(KeyboardInterrupt):
                interrupted()
            assert count_lines(call_log) == 0  # the queued runs never started
        finally:
            release.touch()
        flow_run, task_runs = interrupted_flow_run(store, "interrupted")
        assert flow_run["state"] == "CANCELLED"
        assert len(task_runs) == 5
        assert alive(task_runs) == []
        assert {r["state"] for r in task_runs if r["task_name"] == "queued"} == {"CANCELLED"}

    @SIGNALS
    def test_a_signal_cancels_a_sync_flow(self, runner, store, tmp_path, call_log, signum):
        release, started = tmp_path / "release", str(tmp_path / "started.log")

        @flow(task_runner=runner())
        def signalled(pid: int) -> object:
            sender = send_signal.submit(pid, signum, str(release), started)
            queued.submit(sender, call_log)
            return sender.result()

        try:
            with _FallbackSigterm(release) as fallback, pytest.raises(KeyboardInterrupt):
                signalled(os.getpid())
            assert not fallback.fired, "SIGTERM reached the process while no flow handler was set"
            assert count_lines(started) == 1
            assert count_lines(call_log) == 0  # the queued run never started
        finally:
            release.touch()
        flow_run, task_runs = interrupted_flow_run(store, "signalled")
        assert flow_run["state"] == "CANCELLED"
        assert alive(task_runs) == []

    @SIGNALS
    def test_a_signal_cancels_an_async_flow(self, runner, store, tmp_path, call_log, signum):
        release, started = tmp_path / "release", str(tmp_path / "started.log")

        @flow(task_runner=runner())
        async def signalled_async(pid: int) -> object:
            sender = send_signal.submit(pid, signum, str(release), started)
            queued.submit(sender, call_log)
            while not sender.done():  # the loop stays free, as in an async flow that awaits
                await asyncio.sleep(0.02)
            return sender.result()

        try:
            with _FallbackSigterm(release) as fallback, pytest.raises(KeyboardInterrupt):
                asyncio.run(signalled_async(os.getpid()))
            assert not fallback.fired, "SIGTERM reached the process while no flow handler was set"
            assert count_lines(started) == 1
            assert count_lines(call_log) == 0  # the queued run never started
        finally:
            release.touch()
        flow_run, task_runs = interrupted_flow_run(store, "signalled-async")
        assert flow_run["state"] == "CANCELLED"
        assert alive(task_runs) == []
