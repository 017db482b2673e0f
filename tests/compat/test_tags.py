"""``with tags(...)``: tags for every task run created in the block, as in Prefect.

Sources: Prefect's tests/test_context.py::test_tags_context_manager_nests_with_itself (and
::test_tags_context_manager_yields_current_tags), tests/test_tasks.py::TestTaskTags
(test_task_tags_applied_to_run, test_tags_context_manager_applies_to_run and the nesting
cases), docs/v3/concepts/tags.mdx; the tags Prefect reads from its API are read from the store.
"""

from __future__ import annotations

import pytest

from prefect_like import flow, tags, task
from prefect_like.context import current_tags


@task
def plain():
    return 1


@task(tags=["own"])
def tagged():
    return 2


def stored_tags(store, flow_run_id):
    """Each task run's tags by name, as the store holds them."""
    return {run["name"]: sorted(run.get("tags") or []) for run in store().list_task_runs(flow_run_id)}


def test_tags_context_manager_nests_with_itself():
    # Prefect: tests/test_context.py::test_tags_context_manager_nests_with_itself
    assert current_tags.get() == frozenset()
    with tags("a", "b") as outer:
        assert outer == {"a", "b"}
        with tags("c", "d") as inner:
            assert inner == {"a", "b", "c", "d"}
        assert current_tags.get() == {"a", "b"}
    assert current_tags.get() == frozenset()


def test_tags_context_manager_applies_to_runs_and_merges_with_the_tasks_own(store):
    # Prefect: tests/test_tasks.py::TestTaskTags::test_tags_context_manager_applies_to_run,
    # ::test_tags_context_manager_and_task_tags_are_combined, ::test_nested_tags_context_managers_combine
    @flow
    def my_flow():
        plain.with_options(task_run_name="before")()
        with tags("a", "b"):
            plain.with_options(task_run_name="in-a-b")()
            tagged.with_options(task_run_name="tagged-in-a-b")()
            with tags("c"):
                plain.with_options(task_run_name="in-a-b-c").submit().wait()
        plain.with_options(task_run_name="after")()
        return True

    state = my_flow(return_state=True)
    assert stored_tags(store, state.run_id) == {
        "before": [],
        "in-a-b": ["a", "b"],
        "tagged-in-a-b": ["a", "b", "own"],
        "in-a-b-c": ["a", "b", "c"],
        "after": [],
    }


def test_tags_reach_mapped_runs_the_runtime_and_hooks(store):
    # Prefect: docs/v3/concepts/tags.mdx ("tags ... apply to every task run created within the context"),
    # tests/runtime/test_task_run.py::TestTags::test_tags_pulls_from_api_when_needed
    from prefect_like.runtime import task_run

    seen = []

    @task(on_completion=[lambda task, run, state: seen.append(run.tags)])
    def square(x):
        return x * x, task_run.tags

    @flow
    def my_flow():
        with tags("sweep-1"):
            return square.map([1, 2]).result()

    assert my_flow() == [(1, ["sweep-1"]), (4, ["sweep-1"])]
    assert seen == [["sweep-1"], ["sweep-1"]]
    assert square.tags == frozenset()  # the task itself is unchanged


def test_task_tags_attribute_and_with_options_replace():
    # Prefect: tests/test_tasks.py::TestTaskTags::test_task_tags_is_set, TestTaskWithOptions::test_with_options_
    # replaces_tags (given tags replace, not merge)
    assert tagged.tags == {"own"}
    assert tagged.with_options(tags=["x"]).tags == {"x"}


def test_tags_must_be_strings():
    # Prefect: src/prefect/context.py::tags (tags are strings); a clear error instead of a stored non-string
    with pytest.raises(TypeError, match="tags are strings, got 3"), tags("a", 3):
        pass
    assert current_tags.get() == frozenset()


def test_the_flow_run_sees_the_tags_it_was_called_in():
    # Prefect: tests/test_flows.py::TestFlowRunTags::test_flow_run_tags_added_to_context (runtime.flow_run.tags)
    from prefect_like.runtime import flow_run

    @flow
    def my_flow():
        return flow_run.tags

    with tags("nightly"):
        assert my_flow() == ["nightly"]
    assert my_flow() == []
