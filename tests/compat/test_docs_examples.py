"""Examples from Prefect 3's documentation pages (docs/v3/...), run with the imports changed.

Each test names its page and section. Where an example sleeps (the elevator examples), the
sleep is left out: the example's point is what it submits and returns. Where an example only
prints, the test asserts what the page says happens.

Also here: Prefect 3's caching behaviour that the docs and tests/test_tasks.py::TestCachePolicies
pin down for ``persist_result=True`` (it turns on the DEFAULT cache policy).
"""

import re

import pytest

from prefect_like import flow, task, unmapped, wait
from prefect_like.caching import DEFAULT, INPUTS, NO_CACHE, TASK_SOURCE
from prefect_like.states import Completed, Failed

# -- docs/v3/concepts/flows.mdx ------------------------------------------------------------------------


def test_flows_return_a_future():
    # Prefect: docs/v3/concepts/flows.mdx "Return a future": "This flow run finishes in a
    # Completed final state because the flow returns the future of the task that succeeds."
    @task
    def always_fails_task():
        raise ValueError("I fail successfully")

    @task
    def always_succeeds_task():
        print("I'm fail safe!")
        return "success"

    @flow
    def always_succeeds_flow():
        x = always_fails_task.submit().result(raise_on_failure=False)
        y = always_succeeds_task.submit(wait_for=[x])
        return y

    state = always_succeeds_flow(return_state=True)
    assert state.is_completed()
    assert state.result().result() == "success"


def test_flows_return_multiple_states_or_futures():
    # Prefect: docs/v3/concepts/flows.mdx "Return multiple states or futures": "Running
    # always_fails_flow fails because one of the three returned futures fails."
    @task
    def always_fails_task():
        raise ValueError("I am bad task")

    @task
    def always_succeeds_task():
        return "foo"

    @flow
    def always_succeeds_flow():
        return "bar"

    @flow
    def always_fails_flow():
        x = always_fails_task()
        y = always_succeeds_task()
        z = always_succeeds_flow()
        return x, y, z

    state = always_fails_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="I am bad task"):
        always_fails_flow()


def test_flows_return_multiple_submitted_futures():
    # Prefect: docs/v3/concepts/flows.mdx "Return multiple states or futures" ("If a flow returns a
    # mix of futures and states, the final state is determined by resolving all futures to states")
    @task
    def always_fails_task():
        raise ValueError("I am bad task")

    @task
    def always_succeeds_task():
        return "foo"

    @flow
    def always_fails_flow():
        return always_fails_task.submit(), always_succeeds_task(return_state=True)

    state = always_fails_flow(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."
    failed, completed = state.result(raise_on_failure=False)
    assert failed.is_failed()
    assert completed.result() == "foo"


def test_flows_return_a_manual_state():
    # Prefect: docs/v3/concepts/flows.mdx "Return a manual state"
    @task
    def always_fails_task():
        raise ValueError("I fail successfully")

    @task
    def always_succeeds_task():
        return "success"

    @flow
    def always_succeeds_flow():
        always_fails_task.submit()
        y = always_succeeds_task.submit()
        if y.result() == "success":
            return Completed(message="I am happy with this result")
        return Failed(message="How did this happen!?")

    state = always_succeeds_flow(return_state=True)
    assert state.is_completed()
    assert state.message == "I am happy with this result"


def test_flows_custom_named_states():
    # Prefect: docs/v3/concepts/flows.mdx "Custom named states"
    @flow
    def my_flow(work_to_do: bool):
        if not work_to_do:
            return Completed(message="No work to do 💤", name="Skipped")
        return Completed(message="Work was done 💪")

    state = my_flow(work_to_do=False, return_state=True)
    assert state.name == "Skipped"
    assert state.is_completed()


def test_flows_generator_is_consumed_when_returned(capsys):
    # Prefect: docs/v3/concepts/flows.mdx "Generator functions are consumed when returned from
    # flows": f() prints 'Generator consumed!'
    def gen():
        yield from [1, 2, 3]
        print("Generator consumed!")

    @flow
    def f():
        return gen()

    assert f() == [1, 2, 3]
    assert "Generator consumed!" in capsys.readouterr().out


def test_final_flow_state_snippet_returned_nothing_is_completed():
    # Prefect: docs/snippets/final-flow-state.mdx (included by docs/v3/concepts/flows.mdx and
    # states.mdx): a failed state not returned does not fail the flow
    @task
    def add_one(x):
        return x + 1

    @flow
    def my_flow():
        state = add_one("1", return_state=True)
        assert state.is_failed()
        return

    state = my_flow(return_state=True)
    assert state.is_completed()
    assert state.result() is None


def test_final_flow_state_snippet_returned_state_fails_the_flow():
    # Prefect: docs/snippets/final-flow-state.mdx: "If state were returned from the flow
    # function, the run would be marked as FAILED."
    @task
    def add_one(x):
        return x + 1

    @flow
    def my_flow():
        return add_one("1", return_state=True)

    state = my_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(TypeError):
        my_flow()


# -- docs/v3/concepts/states.mdx ------------------------------------------------------------------------


def test_states_task_return_values():
    # Prefect: docs/v3/concepts/states.mdx "Task return values" (toggle_task), with
    # return_state=True so the flow body gets both states (a plain call of a task that returns
    # Failed raises, as "Final state determination" says)
    @task
    def toggle_task(fail: bool):
        if fail:
            return Failed(message="I was instructed to fail.")
        return Completed(message="I was instructed to succeed.")

    @flow
    def example():
        state_one = toggle_task(fail=True, return_state=True)
        state_two = toggle_task(fail=False, return_state=True)
        return state_one, state_two

    flow_state = example(return_state=True)
    # "the flow run will fail because we return a Failed state"
    assert flow_state.is_failed()
    state_one, state_two = flow_state.result(raise_on_failure=False)
    assert state_one.is_failed()
    assert state_two.is_completed()


def test_states_return_state_flag():
    # Prefect: docs/v3/concepts/states.mdx (add_one with return_state=True)
    @task
    def add_one(x):
        return x + 1

    @flow
    def my_flow():
        result = add_one(1)
        assert isinstance(result, int) and result == 2
        state = add_one(1, return_state=True)
        assert state.is_completed() is True
        assert state.result() == 2
        return True

    assert my_flow() is True


# -- docs/v3/how-to-guides/workflows/run-work-concurrently.mdx ----------------------------------------------


def test_run_work_concurrently_submit_and_wait():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Using .submit" (elevator,
    # without its sleeps)
    stopped = []

    @task
    def stop_at_floor(floor: int):
        stopped.append(floor)
        return floor

    @flow
    def elevator():
        floors = []
        for floor in range(10, 0, -1):
            floors.append(stop_at_floor.submit(floor))
        done, not_done = wait(floors)
        return len(done), len(not_done)

    assert elevator() == (10, 0)
    assert sorted(stopped) == list(range(1, 11))


def test_run_work_concurrently_handling_futures():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Handling futures"
    @task
    def cool_task():
        return "sup"

    @flow
    def my_workflow():
        future = cool_task.submit()
        return future.result()

    assert my_workflow() == "sup"


def test_run_work_concurrently_passing_futures_between_tasks():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Passing futures between tasks"
    @task
    def cool_task():
        return "sup"

    @task
    def what_did_cool_task_say(what_it_said: str):
        return f"cool task said {what_it_said}"

    @flow
    def my_workflow():
        future = cool_task.submit()
        return what_did_cool_task_say(future)

    assert my_workflow() == "cool task said sup"


def test_run_work_concurrently_map_with_static_value():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Using the unmapped annotation"
    @task
    def add_together(x, y):
        return x + y

    @flow
    def sum_it(numbers: list[int], static_value: int):
        futures = add_together.map(numbers, static_value)
        return futures.result()

    assert sum_it([1, 2, 3], 5) == [6, 7, 8]


def test_run_work_concurrently_map_with_unmapped_iterable():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Using the unmapped annotation"
    @task
    def sum_plus(x, static_iterable):
        return x + sum(static_iterable)

    @flow
    def sum_it(numbers, static_iterable):
        futures = sum_plus.map(numbers, unmapped(static_iterable))
        return futures.result()

    assert sum_it([4, 5, 6], [1, 2, 3]) == [10, 11, 12]


def test_run_work_concurrently_bulk_future_operations():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Bulk PrefectFuture
    # operations": futures.result() is sugar for [future.result() for future in futures]
    @task
    def some_task(x):
        return x * 3

    @flow
    def my_flow():
        futures = some_task.map([1, 2, 3])
        return futures.result(), [future.result() for future in futures]

    bulk, one_by_one = my_flow()
    assert bulk == one_by_one == [3, 6, 9]


def test_run_work_concurrently_nested_mapped_tasks():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Nested mapped tasks"
    def count_words(text: str) -> int:
        return len(text.split())

    def extract_emails(text: str) -> list[str]:
        return re.findall(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)

    @task
    def analyze_texts(texts: list[str]) -> dict[str, list[int | list[str]]]:
        futures = {op.__name__: task(op).map(texts) for op in [count_words, extract_emails]}
        wait([f for futs in futures.values() for f in futs])
        return {name: [f.result() for f in futs] for name, futs in futures.items()}

    @flow
    def run_text_analysis():
        return analyze_texts(
            texts=[
                "Just visited #Paris! Contact me at visitor@example.com #travel #vacation",
                "Working on my new #project. Reach out at developer@example.com if interested!",
                "Happy to announce our company event #celebration #milestone email: events@company.org",
            ]
        )

    results = run_text_analysis()
    # the page's Output: "Word counts: [9, 11, 10]" and the three extracted emails
    assert results["count_words"] == [9, 11, 10]
    assert results["extract_emails"] == [
        ["visitor@example.com"],
        ["developer@example.com"],
        ["events@company.org"],
    ]


def test_run_work_concurrently_state_dependencies():
    # Prefect: docs/v3/how-to-guides/workflows/run-work-concurrently.mdx "Creating state dependencies"
    order = []

    @task
    def task_a():
        order.append("a")

    @task
    def task_b():
        order.append("b")

    @task
    def task_c():
        order.append("c")

    @task
    def task_d():
        order.append("d")

    @flow
    def my_flow():
        a = task_a.submit()
        b = task_b.submit()
        # Wait for task_a and task_b to complete
        c = task_c.submit(wait_for=[a, b])
        # task_d will wait for task_c to complete
        # Note: If waiting for one task it must still be in a list.
        d = task_d(wait_for=[c])
        return d

    assert my_flow() is None
    assert set(order[:2]) == {"a", "b"}
    assert order[2:] == ["c", "d"]


# -- docs/v3/how-to-guides/workflows/retries.mdx --------------------------------------------------------


def test_retries_set_the_number_of_retries():
    # Prefect: docs/v3/how-to-guides/workflows/retries.mdx "Set the number of retries"
    attempts = []

    @flow(retries=3)
    def troublesome_workflow():
        attempts.append(1)
        raise Exception("oopsie daisy")

    state = troublesome_workflow(return_state=True)
    assert state.is_failed()
    assert len(attempts) == 4


def test_retries_retry_parts_of_a_workflow():
    # Prefect: docs/v3/how-to-guides/workflows/retries.mdx "Retry parts of a workflow" (the HTTP
    # call replaced by a counter that fails once; delays 0)
    consistent_runs = []
    mercurial_runs = []

    @task
    def consistent_task() -> dict:
        consistent_runs.append(1)

    @task(retries=4, retry_delay_seconds=0)
    def mercurial_task() -> dict:
        mercurial_runs.append(1)
        if len(mercurial_runs) == 1:
            raise RuntimeError("500")

    @flow
    def my_workflow():
        consistent_task()
        mercurial_task()

    assert my_workflow(return_state=True).is_completed()
    assert len(consistent_runs) == 1
    assert len(mercurial_runs) == 2


# -- docs/v3/concepts/caching.mdx and persist_result ----------------------------------------------------------


def test_cache_policy_init_to_default_when_persisting_results():
    # Prefect: tests/test_tasks.py::TestCachePolicies::test_cache_policy_init_to_default_when_persisting_results
    @task(persist_result=True)
    def my_task():
        pass

    assert my_task.cache_policy is DEFAULT


def test_cache_policy_init_to_none_when_not_persisting_results():
    # Prefect: tests/test_tasks.py::TestCachePolicies::test_cache_policy_init_to_none_when_not_persisting_results
    @task(persist_result=False)
    def my_task():
        pass

    assert my_task.cache_policy in (None, NO_CACHE)


def test_persist_result_caches_within_a_flow_run():
    # Prefect: docs/v3/concepts/caching.mdx: "by default, calling the same task with the same inputs
    # more than once within a flow will result in cached behavior for all calls after the first"
    # (with result persistence on, which persist_result=True gives)
    calls = []

    @task(persist_result=True)
    def add(x):
        calls.append(x)
        return x + 1

    @flow
    def my_flow():
        return add(1, return_state=True), add(1, return_state=True), add(2, return_state=True)

    first, second, third = my_flow()
    assert first.name == "Completed"
    assert second.name == "Cached"
    assert third.name == "Completed"
    assert second.result() == first.result() == 2
    assert calls == [1, 2]


def test_persist_result_default_policy_does_not_cache_across_flow_runs():
    # Prefect: docs/v3/concepts/caching.mdx "DEFAULT: ... the prevailing flow run ID"
    calls = []

    @task(persist_result=True)
    def add(x):
        calls.append(x)
        return x + 1

    @flow
    def my_flow():
        return add(1, return_state=True)

    assert my_flow().name == "Completed"
    assert my_flow().name == "Completed"
    assert calls == [1, 1]


def test_inputs_and_task_source_policy_caches_across_flow_runs():
    # Prefect: docs/v3/concepts/caching.mdx "Cache policies" (TASK_SOURCE + INPUTS)
    calls = []

    @task(cache_policy=TASK_SOURCE + INPUTS)
    def my_cached_task(x: int):
        calls.append(x)
        return x + 42

    @flow
    def my_flow():
        return my_cached_task(1, return_state=True)

    assert my_flow().name == "Completed"
    second = my_flow()
    assert second.name == "Cached"
    assert second.result() == 43
    assert calls == [1]


def test_persist_result_false_never_caches():
    # Prefect: docs/v3/concepts/caching.mdx "Relationship with result persistence": "any
    # configuration which explicitly avoids result persistence will result in your task never
    # using a cache, for example setting persist_result=False"
    calls = []

    @task(cache_policy=INPUTS, persist_result=False)
    def add(x):
        calls.append(x)
        return x + 1

    @flow
    def my_flow():
        return add(1, return_state=True), add(1, return_state=True)

    first, second = my_flow()
    assert first.name == second.name == "Completed"
    assert calls == [1, 1]
