"""``Task.map`` as Prefect 3 pins it down.

Sources: Prefect's tests/test_tasks.py::TestTaskMap and TestTaskSubmit (the allow_failure and
map cases), src/prefect/tasks.py ``Task.map`` (a dict is iterated over, i.e. over its keys), and
docs/v3/how-to-guides/workflows/run-work-concurrently.mdx.
"""

import pytest

from prefect_like import State, TaskFuture, allow_failure, flow, quote, task, unmapped
from prefect_like.errors import MappingLengthMismatch, MappingMissingIterable, UpstreamFailedError


@task
def add_one(x):
    return x + 1


@task
def add_together(x, y):
    return x + y


def _results(states):
    return [s.result() for s in states]


def test_simple_map():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_simple_map
    seen = []

    @flow
    def my_flow():
        futures = add_one.map([1, 2, 3])
        seen.append(all(isinstance(f, TaskFuture) for f in futures))
        return futures

    task_states = my_flow()
    assert seen == [True]
    assert _results(task_states) == [2, 3, 4]


def test_simple_map_return_state_true():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_simple_map_return_state_true
    seen = []

    @flow
    def my_flow():
        states = add_one.map([1, 2, 3], return_state=True)
        seen.append(all(isinstance(s, State) for s in states))
        return states

    states = my_flow()
    assert seen == [True]
    assert _results(states) == [2, 3, 4]


def test_map_return_state_true_gives_final_states():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_simple_map_return_state_true (the states
    # are the runs' final states, failures included)
    @task
    def maybe_fail(x):
        if x == 2:
            raise ValueError("two")
        return x

    @flow
    def my_flow():
        states = maybe_fail.map([1, 2, 3], return_state=True)
        return [(s.is_final(), s.type.value) for s in states]

    assert my_flow() == [(True, "COMPLETED"), (True, "FAILED"), (True, "COMPLETED")]


def test_map_can_take_tuple_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_can_take_tuple_as_input
    @flow
    def my_flow():
        return add_one.map((1, 2, 3))

    assert _results(my_flow()) == [2, 3, 4]


def test_map_can_take_generator_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_can_take_generator_as_input
    def generate_numbers():
        i = 1
        while i <= 3:
            yield i
            i += 1

    @flow
    def my_flow():
        return add_one.map(generate_numbers())

    assert _results(my_flow()) == [2, 3, 4]


def test_map_can_take_state_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_can_take_state_as_input
    @task
    def some_numbers():
        return [1, 2, 3]

    @flow
    def my_flow():
        numbers_state = some_numbers(return_state=True)
        return add_one.map(numbers_state)

    assert _results(my_flow()) == [2, 3, 4]


def test_map_can_take_future_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_can_take_future_as_input
    @task
    def some_numbers():
        return [1, 2, 3]

    @flow
    def my_flow():
        numbers_future = some_numbers.submit()
        return add_one.map(numbers_future)

    assert _results(my_flow()) == [2, 3, 4]


def test_map_over_a_future_with_an_unmapped_static_argument():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_preserves_dependencies_between_futures_static_arg
    # (the mapped values; the dependency graph itself is read from Prefect's API there)
    @task
    def numbers():
        return [1, 2, 3]

    @flow
    def my_flow():
        return add_together.map(numbers.submit(), unmapped(10))

    assert _results(my_flow()) == [11, 12, 13]


def test_map_over_two_futures():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_preserves_dependencies_between_futures_differing_parents
    @task
    def numbers():
        return [1, 2, 3]

    @task
    def others():
        return [10, 20, 30]

    @flow
    def my_flow():
        return add_together.map(numbers.submit(), others.submit())

    assert _results(my_flow()) == [11, 22, 33]


def test_map_over_mapped_futures():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_preserves_dependencies_between_futures_all_mapped_children
    @flow
    def my_flow():
        first = add_one.map([1, 2, 3])
        return add_together.map(first, [10, 20, 30])

    assert _results(my_flow()) == [12, 23, 34]


def test_map_can_take_flow_state_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_map_can_take_flow_state_as_input
    @flow
    def child_flow():
        return [1, 2, 3]

    @flow
    def my_flow():
        numbers_state = child_flow(return_state=True)
        return add_one.map(numbers_state)

    assert _results(my_flow()) == [2, 3, 4]


def test_can_take_quoted_iterable_as_input():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_can_take_quoted_iterable_as_input
    @flow
    def my_flow():
        return add_together.map(quote(1), [1, 2, 3])

    assert _results(my_flow()) == [2, 3, 4]


def test_does_not_treat_quote_as_iterable():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_does_not_treat_quote_as_iterable
    @flow
    def my_flow():
        return add_one.map(quote([1, 2, 3]))

    assert _results(my_flow()) == [2, 3, 4]


def test_multiple_inputs():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_multiple_inputs
    @flow
    def my_flow():
        return add_together.map([1, 2, 3], [4, 5, 6])

    assert _results(my_flow()) == [5, 7, 9]


def test_missing_iterable_argument():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_missing_iterable_argument
    @flow
    def my_flow():
        return add_together.map(5, 6)

    with pytest.raises(MappingMissingIterable):
        my_flow()


def test_mismatching_input_lengths():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_mismatching_input_lengths
    @flow
    def my_flow():
        return add_together.map([1, 2, 3], [4, 5, 6, 7])

    with pytest.raises(MappingLengthMismatch):
        my_flow()


def test_mapping_errors_with_return_state_give_a_failed_flow_state():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_mismatching_input_lengths, called with
    # return_state=True as tests/test_flows.py::TestFlowCall::test_final_state_reflects_exceptions_during_run does
    @flow
    def my_flow():
        return add_together.map([1, 2, 3], [4, 5, 6, 7])

    state = my_flow(return_state=True)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), MappingLengthMismatch)


def test_mapping_errors_are_type_errors():
    # Prefect: src/prefect/exceptions.py (MappingLengthMismatch and MappingMissingIterable derive
    # from PrefectException); ours also derive from TypeError as the names say
    assert issubclass(MappingLengthMismatch, Exception)
    assert issubclass(MappingMissingIterable, Exception)


async def _async_flow_with_async_map():
    @task
    async def some_async_task(x):
        return x * 2

    @flow
    async def my_flow():
        return some_async_task.map([1, 2, 3])

    return _results(await my_flow())


def test_async_flow_with_async_map():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_async_flow_with_async_map
    import asyncio

    assert asyncio.run(_async_flow_with_async_map()) == [2, 4, 6]


@pytest.mark.parametrize("explicit", [True, False])
def test_unmapped_int(explicit):
    # Prefect: tests/test_tasks.py::TestTaskMap::test_unmapped_int
    @flow
    def my_flow():
        other = unmapped(5) if explicit else 5
        return add_together.map([1, 2, 3], other)

    assert _results(my_flow()) == [6, 7, 8]


@pytest.mark.parametrize("explicit", [True, False])
def test_unmapped_str(explicit):
    # Prefect: tests/test_tasks.py::TestTaskMap::test_unmapped_str
    @flow
    def my_flow():
        other = unmapped("test") if explicit else "test"
        return add_together.map(["a", "b", "c"], other)

    assert _results(my_flow()) == ["atest", "btest", "ctest"]


def test_unmapped_iterable():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_unmapped_iterable
    @flow
    def my_flow():
        return add_together.map([[], [], []], unmapped([4, 5, 6, 7]))

    assert _results(my_flow()) == [[4, 5, 6, 7]] * 3


def test_with_keyword_with_default():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_with_keyword_with_default
    @task
    def add_some(x, y=5):
        return x + y

    @flow
    def my_flow():
        return add_some.map([1, 2, 3])

    assert _results(my_flow()) == [6, 7, 8]


def test_with_keyword_with_iterable_default():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_with_keyword_with_iterable_default
    @task
    def add_some(x, y=[1, 4]):  # noqa: B006 (Prefect's case: an iterable default is not mapped)
        return x + sum(y)

    @flow
    def my_flow():
        return add_some.map([1, 2, 3])

    assert _results(my_flow()) == [6, 7, 8]


def test_with_variadic_keywords_and_iterable():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_with_variadic_keywords_and_iterable
    @task
    def add_some(x, **kwargs):
        return x + kwargs["y"]

    @flow
    def my_flow():
        return add_some.map([1, 2, 3], y=[4, 5, 6])

    assert _results(my_flow()) == [5, 7, 9]


def test_with_variadic_keywords_and_noniterable():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_with_variadic_keywords_and_noniterable
    @task
    def add_some(x, **kwargs):
        return x + kwargs["y"]

    @flow
    def my_flow():
        return add_some.map([1, 2, 3], y=1)

    assert _results(my_flow()) == [2, 3, 4]


def test_map_over_a_dict_maps_over_its_keys():
    # Prefect: src/prefect/tasks.py Task.map (iterable parameters are iterated: a dict gives its keys)
    @task
    def echo(x):
        return x

    @flow
    def my_flow():
        return echo.map({"a": 1, "b": 2, "c": 3})

    assert _results(my_flow()) == ["a", "b", "c"]


def test_map_over_a_dict_and_a_list_zips_keys_with_items():
    # Prefect: src/prefect/tasks.py Task.map (a dict is one iterable among the others)
    @flow
    def my_flow():
        return add_together.map({"a": 1, "b": 2}, ["x", "y"])

    assert _results(my_flow()) == ["ax", "by"]


def test_unmapped_dict_is_passed_whole():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_unmapped_iterable (unmapped keeps it whole)
    @task
    def size(x, d):
        return x + len(d)

    @flow
    def my_flow():
        return size.map([1, 2], unmapped({"a": 1, "b": 2}))

    assert _results(my_flow()) == [3, 4]


def test_allow_failure_chained_mapped_tasks():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_allow_failure_chained_mapped_tasks
    @task
    def fails_on_two(x):
        if x == 2:
            raise ValueError("Fail task")
        return x

    @task
    def identity(y):
        return y

    @flow
    def test_flow():
        f = fails_on_two.map([1, 2, 3])
        return identity.map(allow_failure(f))

    states = test_flow()
    assert isinstance(states, list)
    assert states[0].result() == 1
    assert states[2].result() == 3
    assert states[1].is_completed()
    error = states[1].result()
    assert type(error) is ValueError and str(error) == "Fail task"


def test_allow_failure_mapped_with_noniterable_upstream():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_allow_failure_mapped_with_noniterable_upstream
    @task
    def fails():
        raise ValueError("Fail task")

    @task
    def identity(y, z):
        return y, z

    @flow
    def test_flow():
        f = fails.submit()
        return identity.map([1, 2, 3], allow_failure(f))

    states = test_flow()
    assert isinstance(states, list)
    assert len(states) == 3
    for i, state in enumerate(states):
        y, z = state.result()
        assert y == i + 1
        assert type(z) is ValueError and str(z) == "Fail task"


def test_mapped_downstream_of_a_failed_mapped_run_is_not_ready():
    # Prefect: tests/test_tasks.py::TestTaskSubmit::test_downstream_does_not_run_if_upstream_fails,
    # per mapped child (only the child whose upstream failed does not run)
    @task
    def fails_on_two(x):
        if x == 2:
            raise ValueError("Fail task")
        return x

    @flow
    def test_flow():
        states = add_one.map(fails_on_two.map([1, 2, 3]), return_state=True)
        return [s.name for s in states], states[0].result(), states[2].result()

    names, first, last = test_flow()
    assert names == ["Completed", "NotReady", "Completed"]
    assert first == 2
    assert last == 4


def test_allow_failure_with_mapped_tasks_in_wait_for():
    # Prefect: tests/test_tasks.py::TestTaskWaitFor::test_allow_failure_with_mapped_tasks_in_wait_for
    @task
    def fails_on_two(x):
        if x == 2:
            raise ValueError("Fail task")
        return x

    @task
    def last():
        return "ran"

    @flow
    def test_flow():
        f = fails_on_two.map([1, 2, 3])
        return last.submit(wait_for=[allow_failure(f)]).result()

    assert test_flow() == "ran"


def test_wait_mapped_tasks():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_wait_mapped_tasks
    seen = []

    @flow
    def my_flow():
        futures = add_one.map([1, 2, 3])
        futures.wait()
        seen.extend(f.state.is_completed() for f in futures)

    my_flow()
    assert seen == [True, True, True]


def test_get_results_all_mapped_tasks():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_get_results_all_mapped_tasks
    @flow
    def my_flow():
        return add_one.map([1, 2, 3]).result()

    assert my_flow() == [2, 3, 4]


def test_map_in_a_task_inside_a_flow_run(store):
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_map, with the runs read back
    @task
    def inner(x):
        return x * 2

    @task
    def outer(xs):
        return inner.map(xs).result()

    @flow
    def my_flow():
        return outer([1, 2, 3])

    state = my_flow(return_state=True)
    assert state.result() == [2, 4, 6]
    assert store().count_task_runs(state.run_id, task_name="inner") == 3


def test_map_records_a_map_index_per_run(store):
    # Prefect: tests/test_tasks.py::TestTaskMap::test_simple_map (Prefect's mapped task runs carry
    # their index as the run name suffix; read here from the store)
    @flow
    def my_flow():
        return add_one.map([10, 20, 30])

    state = my_flow(return_state=True)
    runs = store().list_task_runs(state.run_id)
    assert sorted(r["map_index"] for r in runs) == [0, 1, 2]
    by_index = {r["map_index"]: r["result"] for r in runs}
    assert by_index == {0: 11, 1: 21, 2: 31}


def test_async_flow_with_sync_map():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_async_flow_with_sync_map
    import asyncio

    @task
    def subtract_them(x, y):
        return x - y

    @flow
    async def my_flow():
        return subtract_them.map([4, 5, 6], [1, 2, 3])

    assert _results(asyncio.run(my_flow())) == [3, 3, 3]


def test_async_flow_with_async_map_over_awaited_numbers():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_async_flow_with_async_map
    import asyncio

    @task
    async def some_numbers():
        return [1, 2, 3]

    @task
    async def add_one_async(x):
        return x + 1

    @flow
    async def my_flow():
        return add_one_async.map(await some_numbers())

    assert _results(asyncio.run(my_flow())) == [2, 3, 4]


def test_map_return_state_in_an_async_flow():
    # Prefect: tests/test_tasks.py::TestTaskMap::test_simple_map_return_state_true, in an async flow
    import asyncio

    @task
    async def add_one_async(x):
        return x + 1

    @flow
    async def my_flow():
        states = add_one_async.map([1, 2, 3], return_state=True)
        assert all(isinstance(s, State) for s in states)
        return states

    assert _results(asyncio.run(my_flow())) == [2, 3, 4]


def test_map_over_a_future_inside_a_task():
    # Prefect: tests/test_tasks.py::TestNestedTasks::test_nested_map with
    # TestTaskMap::test_map_can_take_future_as_input (the nested map takes a future)
    @task
    def numbers():
        return [1, 2, 3]

    @task
    def outer():
        return add_one.map(numbers.submit()).result()

    @flow
    def my_flow():
        return outer()

    assert my_flow() == [2, 3, 4]


def test_map_over_a_state_of_a_failed_task_raises():
    # Prefect: src/prefect/task_runners.py TaskRunner.map (parameters go through
    # resolve_inputs_sync, which raises UpstreamTaskError for a failed upstream; ours is
    # UpstreamFailedError)
    @task
    def fails():
        raise ValueError("no numbers")

    @flow
    def my_flow():
        return add_one.map(fails(return_state=True))

    with pytest.raises(UpstreamFailedError):
        my_flow()
