"""Cache policies and their algebra, as Prefect pins them down.

Sources: Prefect's tests/test_cache_policies.py (TestNonePolicy, TestInputsPolicy,
TestCompoundPolicy, TestDefaultPolicy, TestPolicyConfiguration), tests/test_tasks.py
(TestCacheFunctionBuiltins, TestTaskCaching: refresh_cache, result_storage_key) and
docs/v3/concepts/caching.mdx, with runs whose reuse Prefect reads from its API read here from
what the task function did.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass

import pytest

from prefect_like import flow, task
from prefect_like.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    Inputs,
    RunId,
    TaskSource,
    _None,
)
from prefect_like.tasks import task_input_hash
from prefect_like.testing.helpers import PYTHON, REPO_ROOT


@dataclass
class Run:
    id: str
    flow_run_id: str | None = None


# -- the algebra, policy by policy (tests/test_cache_policies.py) ----------------------------------------------


@pytest.mark.parametrize("typ", [Inputs, TaskSource, RunId, CompoundCachePolicy])
def test_addition_of_none_is_noop(typ):
    # Prefect: tests/test_cache_policies.py::TestNonePolicy::test_addition_of_none_is_noop
    other = typ()
    assert _None() + other == other
    assert other + NO_CACHE == other


def test_none_policy_doesnt_compute_a_key():
    # Prefect: tests/test_cache_policies.py::TestNonePolicy::test_doesnt_compute_a_key
    assert _None().compute_key(task_ctx=None, inputs=None, flow_parameters=None) is None


def test_base_compute_key_not_implemented():
    # Prefect: tests/test_cache_policies.py::TestBaseClass::test_compute_key_not_implemented
    with pytest.raises(NotImplementedError):
        CachePolicy().compute_key(task_ctx=None, inputs=None, flow_parameters=None)


def test_inputs_key_varies_on_inputs():
    # Prefect: tests/test_cache_policies.py::TestInputsPolicy::test_key_varies_on_inputs
    policy = Inputs()
    none_key = policy.compute_key(task_ctx=None, inputs=None, flow_parameters=None)
    x_key = policy.compute_key(task_ctx=None, inputs={"x": 42}, flow_parameters=None)
    y_key = policy.compute_key(task_ctx=None, inputs={"y": 42}, flow_parameters=None)
    z_key = policy.compute_key(task_ctx=None, inputs={"z": "foo"}, flow_parameters=None)
    assert x_key != y_key and none_key not in (x_key, y_key)
    assert z_key not in [x_key, y_key]


def test_inputs_key_excludes_excluded_inputs():
    # Prefect: tests/test_cache_policies.py::TestInputsPolicy::test_key_excludes_excluded_inputs
    # and ::test_excluded_can_be_manipulated_via_subtraction
    for policy in (Inputs(exclude=["y"]), Inputs() - "y"):
        assert policy.exclude == ["y"]
        key = policy.compute_key(task_ctx=None, inputs={"x": 42}, flow_parameters=None)
        for val in [42, "foo", None]:
            assert policy.compute_key(task_ctx=None, inputs={"x": 42, "y": val}, flow_parameters=None) == key


def test_subtraction_results_in_new_policy_for_inputs():
    # Prefect: tests/test_cache_policies.py::TestInputsPolicy::test_subtraction_results_in_new_policy_for_inputs
    new_policy = INPUTS - "foo"
    assert new_policy != INPUTS
    assert INPUTS.exclude != new_policy.exclude


@pytest.mark.parametrize("policy", [RunId(), RunId() + TaskSource()])
def test_subtraction_is_noop_for_non_inputs_policies(policy):
    # Prefect: tests/test_cache_policies.py::TestInputsPolicy::test_subtraction_is_noop_for_non_inputs_policies
    assert policy - "foo" is policy


def test_subtracting_a_non_string_raises():
    # Prefect: src/prefect/cache_policies.py (CachePolicy.__sub__)
    with pytest.raises(TypeError, match="Can only subtract strings from key policies."):
        INPUTS - 3  # noqa: B018


def test_compound_creation_via_addition_and_subtraction():
    # Prefect: tests/test_cache_policies.py::TestCompoundPolicy::test_creation_via_addition,
    # ::test_creation_via_subtraction
    assert isinstance(Inputs() + TaskSource(), CompoundCachePolicy)
    policy = DEFAULT - "y"
    assert isinstance(policy, CompoundCachePolicy)
    ctx = type("Ctx", (), {"task_run": Run("a", "a"), "task": lambda: None})()
    assert policy.compute_key(task_ctx=None, inputs={"x": 42, "y": "foo"}, flow_parameters=None) == (
        RunId() + Inputs(exclude=["y"])
    ).compute_key(task_ctx=None, inputs={"x": 42, "y": "foo"}, flow_parameters=None)
    assert policy.compute_key(task_ctx=ctx, inputs={"x": 1, "y": 1}, flow_parameters=None) == policy.compute_key(
        task_ctx=ctx, inputs={"x": 1, "y": 2}, flow_parameters=None
    )


def test_compound_of_nones_is_none():
    # Prefect: tests/test_cache_policies.py::TestCompoundPolicy::test_nones_are_ignored
    policy = CompoundCachePolicy(policies=[_None(), _None()])
    assert policy.compute_key(task_ctx=None, inputs=dict(z=[1, 2]), flow_parameters=dict(x=42, y="foo")) is None


def test_adding_and_nesting_compound_policies_flattens_them():
    # Prefect: tests/test_cache_policies.py::TestCompoundPolicy::test_adding_two_compound_policies_merges_policies,
    # ::test_nested_compound_policies_are_flattened
    one = CompoundCachePolicy(policies=[Inputs(), TaskSource()])
    two = CompoundCachePolicy(policies=[RunId()])
    for policy in (one + two, CompoundCachePolicy(policies=[one, two])):
        assert len(policy.policies) == 3
        assert Inputs() in policy.policies and RunId() in policy.policies and TaskSource() in policy.policies


def test_compound_policy_deduplicates_inputs_on_subtraction():
    # Prefect: tests/test_cache_policies.py::TestCompoundPolicy::test_compound_policy_deduplicates_inputs_on_subtraction
    policy = CompoundCachePolicy(policies=[Inputs(), TaskSource(), Inputs(exclude=["x"]), Inputs(exclude=["y"])])
    assert len(policy.policies) == 2
    new_policy = policy - "z"
    inputs_policies = [p for p in new_policy.policies if isinstance(p, Inputs)]
    assert len(inputs_policies) == 1
    assert sorted(inputs_policies[0].exclude) == ["x", "y", "z"]


def test_default_policy_keys_change_with_inputs_run_and_source():
    # Prefect: tests/test_cache_policies.py::TestDefaultPolicy (all three tests)
    def my_task():
        pass

    @dataclass
    class TaskCtx:
        task_run: Run
        task: object = my_task

    assert DEFAULT.compute_key(task_ctx=None, inputs=dict(x=42), flow_parameters=None) != DEFAULT.compute_key(
        task_ctx=None, inputs=dict(x=43), flow_parameters=None
    )
    runs = [Run("a", "a"), Run("b", "b"), Run("c"), Run("d")]
    keys = [DEFAULT.compute_key(task_ctx=TaskCtx(run), inputs=None, flow_parameters=None) for run in runs]
    assert len(set(keys)) == 4
    one = DEFAULT.compute_key(task_ctx=TaskCtx(Run("a", "b"), lambda: "foo"), inputs=None, flow_parameters=None)
    two = DEFAULT.compute_key(task_ctx=TaskCtx(Run("a", "b"), lambda: "bar"), inputs=None, flow_parameters=None)
    assert one != two


def test_configure():
    # Prefect: tests/test_cache_policies.py::TestPolicyConfiguration (all but the lock manager's own tests)
    policy = Inputs().configure(key_storage="/path/to/storage", lock_manager="/locks", isolation_level="SERIALIZABLE")
    assert (policy.key_storage, policy.lock_manager, policy.isolation_level) == ("/path/to/storage", "/locks", "SERIALIZABLE")
    assert Inputs().configure(key_storage=None, lock_manager=None, isolation_level=None) == Inputs()
    assert INPUTS.configure(key_storage="new") is not INPUTS
    added = Inputs() + TaskSource().configure(lock_manager="locks", isolation_level="SERIALIZABLE", key_storage="s")
    assert (added.lock_manager, added.isolation_level, added.key_storage) == ("locks", "SERIALIZABLE", "s")
    with pytest.raises(ValueError, match="Cannot add CachePolicies with different lock implementations."):
        added + TaskSource().configure(lock_manager="other_locks")  # noqa: B018
    with pytest.raises(ValueError, match="Cannot add CachePolicies with different storage locations."):
        added + TaskSource().configure(key_storage="other_storage")  # noqa: B018
    with pytest.raises(ValueError, match="Cannot add CachePolicies with different isolation levels."):
        added + TaskSource().configure(isolation_level="READ_COMMITTED")  # noqa: B018


def test_an_unknown_isolation_level_is_refused():
    # Prefect: src/prefect/transactions.py (IsolationLevel has READ_COMMITTED and SERIALIZABLE)
    with pytest.raises(ValueError, match="isolation_level must be one of READ_COMMITTED, SERIALIZABLE"):
        INPUTS.configure(isolation_level="SNAPSHOT")


# -- policies on runs (tests/test_tasks.py, docs/v3/concepts/caching.mdx) --------------------------------------


def test_inputs_minus_a_parameter_ignores_it():
    # Prefect: docs/v3/concepts/caching.mdx ("cache_policy=INPUTS - 'debug'")
    calls = []

    @task(cache_policy=INPUTS - "debug")
    def add(x, debug=False):
        calls.append((x, debug))
        return x + 1

    @flow
    def my_flow():
        return add(1), add(1, debug=True), add(2, debug=True)

    assert my_flow() == (2, 2, 3)
    assert calls == [(1, False), (2, True)]


def test_run_id_caches_within_one_flow_run_only():
    # Prefect: docs/v3/concepts/caching.mdx (RUN_ID: "cache within a single flow run")
    calls = []

    @task(cache_policy=INPUTS + RUN_ID)
    def add(x):
        calls.append(x)
        return x + 1

    @flow
    def my_flow():
        return add(1), add(1)

    assert my_flow() == (2, 2)
    assert my_flow() == (2, 2)
    assert calls == [1, 1]


def test_flow_parameters_key_on_the_flow_run_parameters():
    # Prefect: docs/v3/concepts/caching.mdx (FLOW_PARAMETERS)
    calls = []

    @task(cache_policy=FLOW_PARAMETERS + TASK_SOURCE)
    def load():
        calls.append(1)
        return len(calls)

    @flow
    def my_flow(dataset: str):
        return load.submit().result()  # on a pool thread, where the flow's context variable is not set

    assert [my_flow("a"), my_flow("a"), my_flow("b")] == [1, 1, 2]


def test_cache_key_fn_policy_and_task_input_hash():
    # Prefect: tests/test_tasks.py::TestCacheFunctionBuiltins::test_task_input_hash_within_flows,
    # and src/prefect/cache_policies.py (CacheKeyFnPolicy(cache_key_fn=...))
    calls = []

    @task(cache_policy=CacheKeyFnPolicy(cache_key_fn=task_input_hash))
    def add(x, y):
        calls.append((x, y))
        return x + y

    @task(cache_key_fn=task_input_hash)
    def add_too(x, y):
        calls.append(("too", x, y))
        return x + y

    @flow
    def my_flow():
        return add(1, 2), add(1, 2), add(1, 3), add_too(1, 2)

    assert my_flow() == (3, 3, 4, 3)
    assert calls == [(1, 2), (1, 3), ("too", 1, 2)]  # task_input_hash keys on the task too


def test_refresh_cache_recomputes_and_refreshes():
    # Prefect: tests/test_tasks.py::TestTaskCaching::test_cache_hits_wont_persist_when_refresh_cache_is_true
    # (refresh_cache runs the task and replaces the cached value for later runs)
    values = iter([1, 2, 3])

    @task(cache_policy=INPUTS + TASK_SOURCE)
    def draw(x):
        return next(values)

    @flow
    def my_flow():
        return draw(0), draw.with_options(refresh_cache=True)(0), draw(0)

    assert my_flow() == (1, 2, 2)


def test_result_storage_key_is_the_cache_key(tmp_path):
    tmp_path = tmp_path / "results"
    # Prefect: tests/test_tasks.py::TestTaskCaching::test_cache_via_result_storage_key (a stored key is a cache hit),
    # docs/v3/advanced/results.mdx (result_storage_key formatted with parameters)
    calls = []

    @task(result_storage_key="double-{parameters[x]}.pickle", result_storage=str(tmp_path))
    def double(x):
        calls.append(x)
        return 2 * x

    @flow
    def my_flow():
        return double(1), double(1), double(2)

    assert my_flow() == (2, 2, 4)
    assert calls == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["double-1.pickle", "double-2.pickle"]


def test_a_key_that_cannot_be_made_runs_uncached(caplog):
    # Prefect: src/prefect/task_engine.py::compute_transaction_key ("Error encountered when computing cache key -
    # result will not be persisted"): the run goes on, uncached
    calls = []

    @task(cache_policy=INPUTS)
    def use(lock):
        calls.append(1)
        return "ran"

    @flow
    def my_flow():
        lock = threading.Lock()
        return use(lock), use(lock)

    assert my_flow() == ("ran", "ran")
    assert calls == [1, 1]
    assert "error computing its cache key" in caplog.text


def test_no_inputs_and_inputs_alone_do_not_cache():
    # Prefect: src/prefect/cache_policies.py (Inputs gives no key for no inputs, a compound ignores a None part)
    calls = []

    @task(cache_policy=INPUTS)
    def constant():
        calls.append("inputs")
        return 1

    @task(cache_policy=INPUTS + TASK_SOURCE)
    def constant_with_source():
        calls.append("source")
        return 1

    @flow
    def my_flow():
        return constant(), constant(), constant_with_source(), constant_with_source()

    assert my_flow() == (1, 1, 1, 1)
    assert calls == ["inputs", "inputs", "source"]


CACHED_SCRIPT = """
from prefect_like import flow, task
from prefect_like.cache_policies import INPUTS, TASK_SOURCE

@task(cache_policy=INPUTS + TASK_SOURCE)
def square(x):
    print("computed", x, flush=True)
    return {"x": x, "square": x * x}

@flow
def sweep():
    return [square(x) for x in (2, 3)]

print(sweep(), flush=True)
"""


def test_cached_results_are_read_by_a_later_process(tmp_path):
    # Prefect: docs/v3/concepts/caching.mdx ("results of cached runs are persisted, so a later run reuses them")
    script = tmp_path / "cached.py"
    script.write_text(textwrap.dedent(CACHED_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    second = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    result = "[{'x': 2, 'square': 4}, {'x': 3, 'square': 9}]"
    assert first.stdout.splitlines() == ["computed 2", "computed 3", result], first.stderr
    assert second.stdout.splitlines() == [result], second.stderr


def test_serializable_isolation_computes_a_key_once(tmp_path):
    tmp_path = tmp_path / "keys"
    # Prefect: docs/v3/advanced/transactions.mdx ("SERIALIZABLE ... only one run computes, the others read its
    # result"); here runs of the same key on a thread pool take turns on the key's lock
    calls = []

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE", key_storage=str(tmp_path)))
    def expensive(x):
        calls.append(x)
        time.sleep(0.2)  # long enough that, without the lock, the pool's other runs of the key start too
        return x * 10

    @flow
    def my_flow():
        futures = expensive.map([1] * 6)
        return futures.result()

    assert my_flow() == [10] * 6
    assert calls == [1]
    assert any("expensive" in p.name for p in tmp_path.iterdir())  # the result is in the policy's key_storage


def test_serializable_isolation_on_the_event_loop(tmp_path):
    # Prefect: docs/v3/advanced/transactions.mdx (SERIALIZABLE), for async tasks on one event loop: a run waiting
    # for the key's lock must not stop the loop the run holding it needs
    import asyncio

    calls = []

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE", key_storage=str(tmp_path / "keys")))
    async def expensive(x):
        calls.append(x)
        await asyncio.sleep(0.2)
        return x * 10

    @flow(task_runner="asyncio")
    async def my_flow():
        return expensive.map([1] * 4).result()

    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(asyncio.run(my_flow())), daemon=True)
    worker.start()
    worker.join(60)
    assert outcome == [[10] * 4], "the flow did not end: a run waiting for the lock blocked the event loop"
    assert calls == [1]
