"""Artifacts and concurrency limits, from Prefect 3's docs and tests, with the imports changed.

Sources: docs/v3/how-to-guides/workflows/global-concurrency-limits.mdx ("Use the concurrency
context manager": ``process_data`` holding the ``database`` limit; "Use rate_limit": a flow
making rate-limited calls; "strict=True" raising when no limit exists; "occupy"),
docs/v3/how-to-guides/workflows/tag-based-concurrency-limits.mdx (a limit on a tag holds the
task runs that carry it), docs/v3/concepts/artifacts.mdx and tests/test_artifacts.py
(TestCreateArtifacts: markdown in a task, a table of list-of-dicts, a progress artifact updated,
``key`` rules). Prefect reads artifacts and limits from its API; here from the store.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from prefect_like import flow, task
from prefect_like.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect_like.concurrency import create_limit, read_limit
from prefect_like.concurrency.sync import concurrency, rate_limit


def test_concurrency_context_manager_holds_the_database_limit(store) -> None:
    # docs: global-concurrency-limits, "Use the concurrency context manager"
    create_limit("database", 1)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    @task
    def process_data(x, y):
        with concurrency("database", occupy=1):
            start = time.time()
            time.sleep(0.005)
            with lock:
                spans.append((start, time.time()))
            return x + y

    @flow(task_runner="thread")
    def my_flow():
        futures = [process_data.submit(x, y) for x, y in [(1, 2), (2, 3), (3, 4), (4, 5)]]
        return [f.result() for f in futures]

    assert my_flow() == [3, 5, 7, 9]
    ordered = sorted(spans)
    assert all(later[0] >= earlier[1] for earlier, later in zip(ordered, ordered[1:], strict=False))


def test_rate_limit_paces_calls(store) -> None:
    # docs: global-concurrency-limits, "Use rate_limit": slot_decay_per_second paces the calls
    create_limit("rate-limited-api", 1, slot_decay_per_second=20.0)
    calls: list[float] = []

    @task
    def make_http_request():
        rate_limit("rate-limited-api")
        calls.append(time.time())

    @flow(task_runner="sequential")
    def my_flow():
        for _ in range(5):
            make_http_request()

    my_flow()
    assert calls[-1] - calls[0] >= 4 / 20.0 - 0.01  # five starts need four decayed slots


def test_strict_raises_when_the_limit_does_not_exist() -> None:
    # docs: "use strict=True to instead raise an error if no matching limits exist"
    with pytest.raises(LookupError), concurrency("does-not-exist", strict=True):
        pass


def test_a_tag_limit_holds_the_task_runs_that_carry_the_tag(store) -> None:
    # docs: tag-based-concurrency-limits: `prefect concurrency-limit create small_instance 1`
    create_limit("small_instance", 1)
    seen: list[float] = []

    @task(tags=["small_instance"])
    def my_task(i):
        seen.append(read_limit("small_instance")["active_slots"])

    @flow(task_runner="thread")
    def my_flow():
        my_task.map(range(4)).wait()

    my_flow()
    assert seen == [1, 1, 1, 1]  # each run held the one slot, alone


def test_markdown_and_table_artifacts_in_a_task(store) -> None:
    # Prefect: tests/test_artifacts.py::test_create_markdown_artifact_in_task_succeeds and
    # ::test_create_and_read_list_of_dict_table_artifact_succeeds
    @task
    def my_special_task():
        md = create_markdown_artifact(key="task-link-artifact-3", markdown="my markdown",
                                      description="my-artifact-description")
        table = create_table_artifact(key="voltaic", table=[{"a": 1, "b": 2}, {"a": 3, "b": 4}])
        return md, table

    @flow
    def my_flow():
        return my_special_task()

    md, table = my_flow()
    assert isinstance(md, uuid.UUID) and isinstance(table, uuid.UUID)
    assert store().get_artifact(md.hex)["data"] == "my markdown"
    assert store().get_artifact("voltaic")["data"] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_progress_artifact_updated(store) -> None:
    # Prefect: tests/test_artifacts.py::TestUpdateArtifacts (create at 0.0, update to 50.0)
    @flow
    def my_flow():
        artifact_id = create_progress_artifact(progress=0.0)
        update_progress_artifact(artifact_id=artifact_id, progress=50.0)
        return artifact_id

    artifact_id = my_flow()
    assert store().get_artifact(artifact_id.hex)["data"] == 50.0


def test_artifact_keys_are_lowercase_letters_numbers_and_dashes() -> None:
    # Prefect: ArtifactCreate's key validator ("Artifact key must only contain lowercase
    # letters, numbers, and dashes.")
    with pytest.raises(ValueError, match="lowercase letters, numbers, and dashes"):
        create_markdown_artifact("x", key="Not_Valid")
