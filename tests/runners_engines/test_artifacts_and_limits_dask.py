"""Artifacts and concurrency limits on a real Dask LocalCluster (worker processes): artifacts made
on the workers travel home with their batch's events, and a tag limit of 1 holds task runs on
different workers to one at a time (checked from the intervals they record, not from timing)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from prefect_like import flow, settings, task
from prefect_like.artifacts import create_table_artifact
from prefect_like.concurrency import store as limits
from prefect_like.concurrency import tags as tag_slots
from prefect_like.concurrency.sync import concurrency
from prefect_like.tracking.store import Store

distributed = pytest.importorskip("distributed")
from prefect_like_dask import DaskTaskRunner  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.slow]


@task(tags=["gpu"])
def on_gpu(i: int, log: str) -> int:
    start = time.time()
    time.sleep(0.02)  # the work that holds the slot
    end = time.time()
    with open(log, "a") as f:
        f.write(json.dumps([start, end, os.getpid()]) + "\n")
    create_table_artifact([{"i": i, "pid": os.getpid()}], key="gpu-trial")
    return i


@task
def in_block(i: int, log: str) -> int:
    with concurrency("shared-db"):
        start = time.time()
        time.sleep(0.01)
        with open(log, "a") as f:
            f.write(json.dumps([start, time.time(), os.getpid()]) + "\n")
    return i


def spans(path: Path) -> list[list[float]]:
    return sorted(json.loads(line) for line in path.read_text().splitlines())


def test_tag_limits_and_artifacts_on_dask_worker_processes(tmp_path: Path) -> None:
    with Store(settings.database_path()) as store:
        limits.create_limit(store, "gpu", 1)
        limits.create_limit(store, "shared-db", 1)
    tag_slots.forget_limits()
    gpu_log, db_log = tmp_path / "gpu.jsonl", tmp_path / "db.jsonl"

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 2}))
    def sweep() -> int:
        a = on_gpu.map(range(8), log=str(gpu_log))
        b = in_block.map(range(8), log=str(db_log))
        return sum(a.result()) + sum(b.result())

    state = sweep(return_state=True)
    assert state.result() == 2 * sum(range(8))
    for log in (gpu_log, db_log):
        recorded = spans(log)
        assert len(recorded) == 8
        assert len({pid for _, _, pid in recorded} - {os.getpid()}) >= 1  # they ran on workers
        for (_, end, _), (start, _, _) in zip(recorded, recorded[1:], strict=False):
            assert start >= end, "two holders of a 1-slot limit overlapped"
    with Store(settings.database_path()) as store:
        tables = store.list_artifacts(flow_run_id=state.run_id)
        assert sorted(t["data"][0]["i"] for t in tables) == list(range(8))
        assert all(t["task_run_id"] is not None for t in tables)
        assert all(limit["holders"] == [] for limit in limits.list_limits(store))
