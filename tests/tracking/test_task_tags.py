"""Task runs and flow runs filtered by tag: in the store, in ``prefect-like runs tasks --tag`` and
``runs ls --tag``, and in the tracking API's ``tags=`` (a real server process), with tags from
``@task(tags=...)`` and ``with tags(...)``. Prefect: ``with tags(...)`` around a flow call tags
the flow run and every task run in it (docs: "Tags", tests/test_context.py::test_tags)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from prefect_like import flow, settings, tags, task
from prefect_like.cli import cli
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store

FLOW = "f" * 32
# Tags whose quoted text occurs inside another tag's JSON, as a substring search would find it.
TRICKY = [["gpu"], ['x"gpu'], ['gpu"x'], ["gpu2"], ["a", "gpu"], ["gpu", "b"], ['"gpu"'], [], ["ünï", "gpu"]]


def write_runs(path: Path) -> dict[int, list[str]]:
    events = [Event("flow", FLOW, 0, None, 1.0, "RUNNING", "Running", None, {"name": "n", "flow_name": "f"})]
    for i, have in enumerate(TRICKY):
        data = {"task_name": "t", "map_index": i, **({"tags": have} if have else {})}
        events.append(Event("task", f"t{i:04d}", 2, FLOW, 2.0 + i, "COMPLETED", "Completed", None, data))
    with Store(path) as store:
        store.write(events)
    return dict(enumerate(TRICKY))


def test_a_tag_matches_exactly_the_runs_that_have_it(tmp_path: Path) -> None:
    stored = write_runs(tmp_path / "s.db")
    with Store(tmp_path / "s.db") as store:
        for wanted in (["gpu"], ['x"gpu'], ['"gpu"'], ["gpu", "b"], ["ünï"], ["nothing"]):
            expected = sorted(i for i, have in stored.items() if set(wanted) <= set(have))
            found = sorted(r["map_index"] for r in store.list_task_runs(FLOW, tags=wanted))
            assert found == expected, wanted
            assert store.count_task_runs(FLOW, tags=wanted) == len(expected)
        assert store.task_tags(FLOW) == sorted({t for have in TRICKY for t in have})
        with pytest.raises(ValueError, match="a tag is a non-empty string"):
            store.list_task_runs(FLOW, tags=[""])


@task(tags=["gpu"])
def on_gpu(i: int) -> int:
    return i


@task
def plain(i: int) -> int:
    return i


@flow
def tagged_sweep() -> None:
    on_gpu.map(range(3)).wait()
    plain.map(range(2)).wait()


def test_runs_tasks_tag_filters_and_says_when_nothing_matches() -> None:
    state = tagged_sweep(return_state=True)
    runner = CliRunner()
    shown = runner.invoke(cli, ["runs", "tasks", state.run_id, "--tag", "gpu", "--json"])
    assert shown.exit_code == 0, shown.output
    runs = json.loads(shown.output)
    assert sorted(r["map_index"] for r in runs) == [0, 1, 2]
    assert all(r["tags"] == ["gpu"] and r["task_name"] == "on_gpu" for r in runs)
    none = runner.invoke(cli, ["runs", "tasks", state.run_id, "--tag", "gpu", "--tag", "cpu"])
    assert none.output.strip() == "no task runs match"
    table = runner.invoke(cli, ["runs", "tasks", state.run_id, "--tag", "gpu"])
    assert table.output.count("on_gpu") == 3 and "plain" not in table.output


def test_a_flow_run_called_inside_with_tags_has_them_and_runs_ls_filters_by_them() -> None:
    with tags("experiment-7", "lr-sweep"):
        tagged = tagged_sweep(return_state=True)
    with tags("experiment-8"):
        other = tagged_sweep(return_state=True)
    untagged = tagged_sweep(return_state=True)
    runner = CliRunner()

    def listed(*args: str) -> list[str]:
        shown = runner.invoke(cli, ["runs", "ls", *args, "--json"])
        assert shown.exit_code == 0, shown.output
        return [r["id"] for r in json.loads(shown.output)]

    assert listed("--tag", "experiment-7") == [tagged.run_id]
    assert listed("--tag", "experiment-7", "--tag", "lr-sweep") == [tagged.run_id]
    assert listed("--tag", "experiment-7", "--tag", "experiment-8") == []
    assert set(listed()) == {tagged.run_id, other.run_id, untagged.run_id}
    with Store(settings.database_path()) as store:
        assert store.get_flow_run(tagged.run_id)["tags"] == ["experiment-7", "lr-sweep"]
        assert store.get_flow_run(untagged.run_id)["tags"] == []
        assert store.count_flow_runs(tags=["experiment-8"]) == 1
    table = runner.invoke(cli, ["runs", "ls"]).output
    assert "TAGS" in table and "experiment-7, lr-sweep" in table
    assert "tags" in runner.invoke(cli, ["runs", "show", tagged.run_id]).output
    assert runner.invoke(cli, ["runs", "ls", "--tag", "nothing"]).output.strip() == "no runs match"


def test_tags_from_a_with_tags_block_are_filterable_too() -> None:
    with tags("experiment-7"):
        state = tagged_sweep(return_state=True)
    runner = CliRunner()
    runs = json.loads(runner.invoke(cli, ["runs", "tasks", state.run_id, "--tag", "experiment-7", "--json"]).output)
    assert len(runs) == 5
    gpu = json.loads(runner.invoke(cli, ["runs", "tasks", state.run_id, "--tag", "experiment-7", "--tag", "gpu",
                                         "--json"]).output)
    assert sorted(r["map_index"] for r in gpu) == [0, 1, 2]


@pytest.mark.slow
def test_the_api_filters_task_runs_by_tags(tmp_path: Path) -> None:
    from tests.server._live import running_server

    tagged_sweep()
    with Store(settings.database_path()) as store:
        (run,) = store.list_flow_runs()
    with running_server(settings.home()) as url:
        api = f"{url}api/flow-runs/{run['id']}"
        page = httpx.get(f"{api}/task-runs", params={"tags": "gpu"}).json()
        assert page["total"] == 3 and {r["task_name"] for r in page["items"]} == {"on_gpu"}
        both = httpx.get(f"{api}/task-runs", params=[("tags", "gpu"), ("tags", "cpu")]).json()
        assert both["total"] == 0
        assert httpx.get(f"{api}/task-tags").json() == ["gpu"]
        bad = httpx.get(f"{api}/task-runs", params={"tags": ""})
        assert bad.status_code == 422 and "a tag is a non-empty string" in bad.text


@pytest.mark.slow
def test_the_api_filters_flow_runs_by_tags_and_events_carry_them_over_http(tmp_path: Path) -> None:
    from prefect_like.client import Client
    from prefect_like.tracking.recorder import shutdown_recorder
    from tests.server._live import running_server

    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_API_URL", f"{url}api")
        with tags("exp-1"):
            tagged = tagged_sweep(return_state=True)
        tagged_sweep()
        shutdown_recorder(timeout=10)
        page = httpx.get(f"{url}api/flow-runs", params={"tags": "exp-1"}).json()
        assert page["total"] == 1 and page["items"][0]["id"] == tagged.run_id
        assert page["items"][0]["tags"] == ["exp-1"]
        assert httpx.get(f"{url}api/flow-runs").json()["total"] == 2
        assert httpx.get(f"{url}api/dashboard/flow-tags").json() == ["exp-1"]
        with Client(f"{url}api") as client:
            assert [r["id"] for r in client.list_flow_runs(tags=["exp-1"])] == [tagged.run_id]
            assert client.count_flow_runs(tags=["exp-1", "other"]) == 0
        bad = httpx.get(f"{url}api/flow-runs", params={"tags": ""})
        assert bad.status_code == 422 and "a tag is a non-empty string" in bad.text
