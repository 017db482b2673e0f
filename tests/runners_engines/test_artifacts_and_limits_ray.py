"""Artifacts and a tag concurrency limit on real Ray (a local Ray of 2 CPUs, tasks in its worker
processes): the artifacts come home with their runs' events, and a 1-slot tag limit holds runs
in different workers to one at a time (checked from the intervals they record)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from prefect_like import flow, settings, task
from prefect_like.artifacts import create_markdown_artifact
from prefect_like.concurrency import create_limit, list_limits

from ._support import PYTHONPATH

ray = pytest.importorskip("ray")
from prefect_like_ray import RayTaskRunner  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": PYTHONPATH}}


@task(tags=["gpu"])
def on_gpu(i: int, log: str) -> int:
    start = time.time()
    time.sleep(0.02)  # the work that holds the slot
    with open(log, "a") as f:
        f.write(json.dumps([start, time.time(), os.getpid()]) + "\n")
    create_markdown_artifact(f"trial **{i}**", key="ray-trial")
    return i


def test_tag_limits_and_artifacts_on_ray_workers(tmp_path: Path) -> None:
    create_limit("gpu", 1)
    log = tmp_path / "spans.jsonl"
    ray.shutdown()
    runner = RayTaskRunner(init_kwargs={"num_cpus": 2, "log_to_driver": False, "include_dashboard": False,
                                        "runtime_env": RUNTIME_ENV})

    @flow(task_runner=runner)
    def sweep() -> int:
        return sum(on_gpu.map(range(6), log=str(log)).result())

    try:
        state = sweep(return_state=True)
    finally:
        ray.shutdown()
    assert state.result() == sum(range(6))
    spans = sorted(json.loads(line) for line in log.read_text().splitlines())
    assert len(spans) == 6 and {pid for _, _, pid in spans} != {os.getpid()}
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two holders of a 1-slot limit overlapped"
    from prefect_like.tracking.store import Store

    with Store(settings.database_path()) as store:
        notes = store.list_artifacts(flow_run_id=state.run_id)
    assert sorted(n["data"] for n in notes) == [f"trial **{i}**" for i in range(6)]
    assert [limit["holders"] for limit in list_limits()] == [[]]
