"""Artifacts: made in task and flow runs (and outside them), stored with their run, read back by the
store, the CLI and the tracking API.

Cases marked "Prefect" are taken from Prefect's tests/test_artifacts.py (TestCreateArtifacts:
the three table shapes, an artifact made in a task, a flow, a subflow and a mapped task, a link
with and without text, a progress artifact created then updated) and from the key rule of its
``ArtifactCreate`` schema (lowercase letters, numbers and dashes).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefect_like import flow, settings, task
from prefect_like.artifacts import (
    Artifact,
    acreate_table_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect_like.cli import cli
from prefect_like.context import get_run_context
from prefect_like.tracking.events import artifact_event
from prefect_like.tracking.recorder import get_recorder
from prefect_like.tracking.store import Store


def stored(artifact_id: uuid.UUID | str) -> dict[str, Any]:
    with Store(settings.database_path()) as store:
        return store.get_artifact(artifact_id.hex if isinstance(artifact_id, uuid.UUID) else artifact_id)


def run_ids() -> tuple[str, str | None]:
    context = get_run_context()
    return context.run_id, context.flow_run_id


# -- where an artifact belongs ----------------------------------------------------------------------


def test_an_artifact_made_in_a_task_belongs_to_the_task_run_and_its_flow_run() -> None:
    # Prefect: test_create_table_artifact_in_task_succeeds
    @task
    def special() -> tuple[uuid.UUID, str]:
        table = {"a": [1, 3], "b": [2, 4]}
        artifact_id = create_table_artifact(key="task-table", table=table, description="my-artifact-description")
        return artifact_id, run_ids()[0]

    @flow
    def my_flow() -> tuple[uuid.UUID, str, str]:
        artifact_id, task_run_id = special()
        return artifact_id, get_run_context().run_id, task_run_id

    artifact_id, flow_run_id, task_run_id = my_flow()
    assert isinstance(artifact_id, uuid.UUID)
    artifact = stored(artifact_id)
    assert artifact["flow_run_id"] == flow_run_id
    assert artifact["task_run_id"] == task_run_id
    assert artifact["data"] == {"a": [1, 3], "b": [2, 4]}
    assert artifact["type"] == "table"
    assert artifact["description"] == "my-artifact-description"


def test_an_artifact_made_in_a_flow_or_subflow_belongs_to_that_flow_run_only() -> None:
    # Prefect: test_create_markdown_artifact_in_flow_succeeds / ..._in_subflow_succeeds
    @flow
    def sub() -> tuple[uuid.UUID, str]:
        return create_markdown_artifact(key="sub-md", markdown="my markdown"), get_run_context().run_id

    @flow
    def parent() -> tuple[uuid.UUID, str, uuid.UUID, str]:
        own = create_markdown_artifact(markdown="parent's")
        sub_id, sub_run = sub()
        return own, get_run_context().run_id, sub_id, sub_run

    own, parent_run, sub_id, sub_run = parent()
    assert stored(own)["flow_run_id"] == parent_run
    assert stored(own)["task_run_id"] is None
    assert stored(sub_id)["flow_run_id"] == sub_run
    assert stored(sub_id)["data"] == "my markdown"


def test_a_mapped_task_makes_one_artifact_per_run_all_under_one_key() -> None:
    # Prefect: test_create_markdown_artifact_using_map_succeeds (#5309)
    @task
    def add_ten(x: int) -> int:
        create_table_artifact([{"x": x, "loss": float("nan") if x == 2 else x / 10}], key="trial")
        return x + 10

    @flow(task_runner="thread")
    def simple_map(nums: list[int]) -> list[int]:
        return add_ten.map(nums).result()

    assert simple_map([1, 2, 3]) == [11, 12, 13]
    with Store(settings.database_path()) as store:
        tables = store.list_artifacts(key="trial")
        assert store.count_artifacts(key="trial") == 3
        assert store.get_artifact("trial")["versions"] == 3
    rows = sorted((t["data"][0]["x"], t["data"][0]["loss"]) for t in tables)
    assert rows == [(1, 0.1), (2, None), (3, 0.3)]  # NaN is stored as null, as Prefect does
    assert len({t["task_run_id"] for t in tables}) == 3


def test_the_three_table_shapes_are_stored_as_given() -> None:
    # Prefect: dict of lists, list of dicts, list of lists
    shapes = [{"a": [1, 3], "b": [2, 4]}, [{"a": 1, "b": 2}, {"a": 3, "b": 4}], [[1, 2], [None, 4]]]

    @flow
    def tables() -> list[uuid.UUID]:
        return [create_table_artifact(shape) for shape in shapes]

    assert [stored(i)["data"] for i in tables()] == shapes


def test_an_artifact_made_outside_any_run_is_stored_with_no_run() -> None:
    artifact_id = create_markdown_artifact("made at the top level", key="loose")
    recorder = get_recorder()
    recorder.flush(timeout=30)
    artifact = stored(artifact_id)
    assert artifact["flow_run_id"] is None and artifact["task_run_id"] is None
    assert artifact["data"] == "made at the top level"


def test_links_keep_their_text_and_their_target() -> None:
    # Prefect: test_create_and_read_link_artifact_with_linktext_succeeds (and without text)
    @flow
    def links() -> tuple[uuid.UUID, uuid.UUID]:
        return (create_link_artifact("https://prefect.io", link_text="Prefect"),
                create_link_artifact("s3://my-bucket/my-file", description="my-artifact-description"))

    with_text, bare = links()
    assert stored(with_text)["data"] == {"link": "https://prefect.io", "link_text": "Prefect"}
    assert stored(bare)["data"] == {"link": "s3://my-bucket/my-file", "link_text": None}
    assert stored(bare)["type"] == "link"


def test_a_progress_artifact_is_updated_in_place_and_clamped_to_0_100() -> None:
    # Prefect: test_create_progress_artifact / test_update_progress_artifact
    @flow
    def progressing() -> uuid.UUID:
        artifact_id = create_progress_artifact(0.0, key="sweep-progress", description="starting")
        for done in (25, 50, 140):
            update_progress_artifact(artifact_id, done)
        update_progress_artifact(str(artifact_id), 99.5, description="almost")
        return artifact_id

    artifact_id = progressing()
    artifact = stored(artifact_id)
    assert artifact["data"] == 99.5
    assert artifact["description"] == "almost"
    with Store(settings.database_path()) as store:
        assert store.count_artifacts(key="sweep-progress") == 1  # one artifact, updated
    assert create_progress_artifact(-5) and stored(_latest_progress())["data"] == 0.0


def _latest_progress() -> str:
    get_recorder().flush(timeout=30)
    with Store(settings.database_path()) as store:
        return next(a["id"] for a in store.list_artifacts() if a["type"] == "progress")


def test_async_code_awaits_the_artifact_functions() -> None:
    # Prefect's artifact functions return a coroutine when called from async code.
    @flow
    async def async_flow() -> tuple[uuid.UUID, uuid.UUID]:
        first = await create_markdown_artifact("from async", key="async-md")
        second = await acreate_table_artifact([[1]])
        return first, second

    first, second = asyncio.run(async_flow())
    assert stored(first)["data"] == "from async"
    assert stored(second)["data"] == [[1]]

def test_a_sync_flow_called_where_an_event_loop_runs_gets_ids_not_coroutines() -> None:
    # As in a Jupyter cell, where a loop always runs: Prefect's ``is_in_async_context`` asks the
    # run's own function first (prefect/_internal/compatibility/async_dispatch.py).
    @task
    def in_task() -> uuid.UUID:
        return create_markdown_artifact("from a sync task", key="sync-task-md")

    @flow
    def sync_flow() -> tuple[uuid.UUID, uuid.UUID]:
        return create_progress_artifact(50, key="sync-progress"), in_task()

    async def cell() -> tuple[uuid.UUID, uuid.UUID]:
        return sync_flow()

    progress, markdown = asyncio.run(cell())
    assert isinstance(progress, uuid.UUID) and isinstance(markdown, uuid.UUID)
    assert stored(progress)["data"] == 50.0
    assert stored(markdown)["data"] == "from a sync task"



def test_artifact_class_creates_and_gets_by_key() -> None:
    @flow
    def make() -> uuid.UUID | None:
        return Artifact(type="markdown", key="by-class", data="**hi**").create().id

    artifact_id = make()
    found = Artifact.get("by-class")
    assert found is not None and found["id"] == artifact_id.hex  # type: ignore[union-attr]
    assert Artifact.get("no-such-key") is None


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Upper", "under_score", "with space", "", "dots.no", "émoji"])
def test_a_bad_key_is_refused_in_one_line_and_nothing_is_made(key: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, numbers, and dashes"):
        create_markdown_artifact("text", key=key)
    get_recorder().flush(timeout=30)
    with Store(settings.database_path()) as store:
        assert store.count_artifacts() == 0


def test_a_bad_table_or_progress_fails_the_task_run_saying_why() -> None:
    @task
    def bad_table() -> None:
        create_table_artifact("not a table")  # type: ignore[arg-type]

    @task
    def bad_progress() -> None:
        create_progress_artifact(float("nan"))

    @flow
    def both() -> None:
        bad_table.submit().wait()
        bad_progress.submit().wait()

    state = both(return_state=True)
    with Store(settings.database_path()) as store:
        messages = sorted(r["error"]["message"] for r in store.list_task_runs(state.run_id))
    assert messages[0].startswith("a table is a dict of column lists")
    assert messages[1] == "progress is a number from 0 to 100, got nan"
    with pytest.raises(ValueError, match="is not an artifact id"):
        update_progress_artifact("not-an-id", 5)


# -- the store --------------------------------------------------------------------------------


def test_an_update_that_arrives_before_its_artifact_still_wins(tmp_path: Path) -> None:
    created = artifact_event("a" * 32, 0, "f" * 32, 100.0, "progress",
                             {"data": 0.0, "key": "p", "description": "first"})
    updated = artifact_event("a" * 32, 5_000, "f" * 32, 101.0, "progress", {"data": 60.0})
    for order in ([created, updated], [updated, created], [updated], [created, updated, created]):
        with Store(tmp_path / f"{len(order)}-{order[0].seq}.db") as store:
            for event in order:  # each its own batch, in this order
                store.write([event])
            store.write(order)  # and the whole again: idempotent
            artifact = store.get_artifact("a" * 32)
        if created in order:
            assert (artifact["key"], artifact["description"]) == ("p", "first")
        assert artifact["data"] == (60.0 if updated in order else 0.0)


def test_artifacts_of_a_flow_run_include_its_task_runs_and_page_newest_first() -> None:
    @task
    def note(i: int) -> None:
        create_markdown_artifact(f"note {i}", key="note")

    @flow
    def noted() -> None:
        for i in range(5):
            note(i)

    state = noted(return_state=True)
    with Store(settings.database_path()) as store:
        assert store.count_artifacts(flow_run_id=state.run_id) == 5
        page = store.list_artifacts(flow_run_id=state.run_id[:8], limit=2, offset=1)
        assert [a["data"] for a in page] == ["note 3", "note 2"]
        one = store.list_task_runs(state.run_id)[0]
        assert [a["data"] for a in store.list_artifacts(task_run_id=one["id"])] == ["note 0"]


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_lists_and_shows_artifacts() -> None:
    @flow
    def report() -> uuid.UUID:
        create_table_artifact({"lr": [0.1, 0.01], "loss": [0.5, 0.25]}, key="losses")
        create_link_artifact("https://example.com/run", link_text="the run", key="run-link")
        return create_progress_artifact(40, key="progress")

    report()
    runner = CliRunner()
    listing = runner.invoke(cli, ["artifacts", "ls"])
    assert listing.exit_code == 0, listing.output
    for text in ("losses", "table", "2 rows", "run-link", "the run", "progress", "40%"):
        assert text in listing.output
    shown = runner.invoke(cli, ["artifacts", "show", "losses"])
    assert shown.exit_code == 0, shown.output
    assert "0.25" in shown.output and "loss" in shown.output
    as_json = runner.invoke(cli, ["artifacts", "ls", "--key", "progress", "--json"])
    assert [a["data"] for a in json.loads(as_json.output)] == [40.0]
    by_id = runner.invoke(cli, ["artifacts", "show", json.loads(as_json.output)[0]["id"][:8], "--json"])
    assert json.loads(by_id.output)["key"] == "progress"


def test_cli_says_in_one_line_what_is_not_there() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["artifacts", "ls"]).output.strip() == "no artifacts yet"
    missing = runner.invoke(cli, ["artifacts", "show", "nope"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: no artifact with key or id 'nope'"
    no_flow = runner.invoke(cli, ["artifacts", "ls", "--flow-run", "0000aaaa"])
    assert no_flow.exit_code == 1 and "no flow run with id '0000aaaa'" in no_flow.output
