"""Artifacts and concurrency limits through a real tracking server process, on SQLite and on
PostgreSQL: artifacts travel to it with the events and are served by its routes; limits made
through it hold task runs of two real processes to one slot (checked from the intervals they
record, never from timing), and its concurrency routes refuse bad requests in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from prefect_like import flow, task
from prefect_like.artifacts import create_progress_artifact, create_table_artifact
from prefect_like.cli import cli
from prefect_like.concurrency.sync import concurrency
from tests.test_concurrency import WORKER, assert_no_overlap, env, intervals

from ._live import running_server

pytestmark = pytest.mark.slow


def test_artifacts_travel_to_the_server_with_the_events_and_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as url:
        monkeypatch.setenv("PREFECT_LIKE_API_URL", url + "api")

        @task
        def trial(x: int) -> int:
            create_table_artifact([{"x": x, "score": x * x}], key="trial-score")
            return x

        @flow(task_runner="thread")
        def sweep() -> uuid.UUID:
            trial.map(range(20)).wait()
            return create_progress_artifact(100, key="done")

        state = sweep(return_state=True)
        progress_id = state.result()
        api = url + "api"
        page = httpx.get(f"{api}/flow-runs/{state.run_id}/artifacts", params={"limit": 5}).json()
        assert page["total"] == 21 and len(page["items"]) == 5
        keyed = httpx.get(f"{api}/artifacts", params={"key": "trial-score", "limit": 100}).json()
        assert sorted(a["data"][0]["score"] for a in keyed["items"]) == [x * x for x in range(20)]
        one = keyed["items"][0]
        of_task = httpx.get(f"{api}/task-runs/{one['task_run_id']}/artifacts").json()
        assert [a["id"] for a in of_task["items"]] == [one["id"]]
        assert httpx.get(f"{api}/artifacts/done").json()["id"] == progress_id.hex
        missing = httpx.get(f"{api}/artifacts/nope")
        assert missing.status_code == 404 and "no artifact" in missing.json()["detail"]
        # The CLI reads them through the server as it reads the embedded store.
        listing = CliRunner().invoke(cli, ["artifacts", "ls", "--key", "done", "--json"])
        assert [a["data"] for a in json.loads(listing.output)] == [100.0]
        bad = httpx.post(f"{api}/events", json=[["artifact", "x" * 32, 0, None, math.pi, None, "table", None,
                                                  {"task_run_id": 7}]])
        assert bad.status_code == 422  # a task run id that is not an id is refused, nothing stored


def test_limits_are_shared_through_the_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as url:
        api = url + "api"
        monkeypatch.setenv("PREFECT_LIKE_API_URL", api)
        runner = CliRunner()
        assert runner.invoke(cli, ["concurrency-limit", "create", "gpu", "1"]).exit_code == 0
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        log = tmp_path / "spans.jsonl"
        procs = [subprocess.Popen([sys.executable, str(script), str(log), "8"], env=env(PREFECT_LIKE_API_URL=api))
                 for _ in range(2)]
        for proc in procs:
            assert proc.wait(timeout=120) == 0
        spans = intervals(log)
        assert len(spans) == 16
        assert_no_overlap(spans)
        shown = json.loads(runner.invoke(cli, ["concurrency-limit", "inspect", "gpu", "--json"]).output)
        assert shown["holders"] == []
        with pytest.raises(LookupError, match="no active concurrency limit named 'absent'"), \
                concurrency("absent", strict=True):
            pass
        missing = runner.invoke(cli, ["concurrency-limit", "delete", "absent"])
        assert missing.exit_code == 1 and "no concurrency limit named 'absent'" in missing.output
        for bad in ({"names": ["gpu"], "occupy": 0}, {"names": []}, {"names": ["gpu"], "mode": "sometimes"},
                    {"names": ["gpu"], "extra": 1}):
            answer = httpx.post(f"{api}/concurrency/acquire", json=bad)
            assert answer.status_code == 422, (bad, answer.text)
        too_many = httpx.post(f"{api}/concurrency/acquire", json={"names": ["gpu"], "occupy": 2})
        assert too_many.status_code == 422 and "it has 1" in too_many.json()["detail"]
        assert httpx.post(f"{api}/concurrency/limits", json={"name": "x", "limit": -1}).status_code == 422
