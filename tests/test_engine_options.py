"""A task's engine_options: checked when the task is made, and one resource spelling that both
distributed runners translate (the engines' own runs are in tests/runners_engines)."""

from __future__ import annotations

import pytest

from prefect_like import engine_options, task


def fit(x: int) -> int:
    return x


def test_a_typo_in_an_option_is_refused_at_decoration_with_the_closest_name() -> None:
    with pytest.raises(ValueError, match="neither Ray nor Dask takes an option 'num_gpu'; did you mean 'num_gpus'"):
        task(engine_options={"num_gpu": 1})(fit)
    with pytest.raises(ValueError, match="did you mean 'resources'"):
        task(fit).with_options(engine_options={"resource": {"GPU": 1}})


@pytest.mark.parametrize("options, message", [
    ({"num_gpus": -1}, "num_gpus must be a number, 0 or more; got -1"),
    ({"num_cpus": True}, "num_cpus must be a number, 0 or more; got True"),
    ({"memory": "4GB"}, "memory must be a number, 0 or more; got '4GB'"),
    ({"resources": ["GPU"]}, "resources must be a dict such as {'GPU': 1}"),
    ({"resources": {"GPU": "one"}}, "resources\\['GPU'\\] must be a number"),
    ({"num_gpus": 1, "resources": {"GPU": 2}}, "give GPU once, as num_gpus or in resources, not both"),
])
def test_a_bad_resource_amount_is_refused_at_decoration(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task(engine_options=options)(fit)


def test_engine_options_must_be_a_dict() -> None:
    with pytest.raises(TypeError, match="engine_options must be a dict, got list"):
        task(engine_options=["num_gpus"])(fit)


def test_one_spelling_becomes_each_engines_own() -> None:
    options = {"num_gpus": 1, "memory": 4e9, "resources": {"TPU": 2}, "scheduling_strategy": "SPREAD",
               "priority": 5}
    assert task(engine_options=options)(fit).options.engine_options == options
    assert engine_options.for_dask(options) == {"priority": 5, "resources": {"TPU": 2.0, "GPU": 1.0, "MEMORY": 4e9}}
    assert engine_options.for_ray(options) == {"scheduling_strategy": "SPREAD", "num_gpus": 1.0,
                                               "memory": 4_000_000_000, "resources": {"TPU": 2.0}}
    assert engine_options.for_ray({"resources": {"CPU": 2, "GPU": 1}}) == {"num_cpus": 2.0, "num_gpus": 1.0}


def test_a_request_is_met_by_one_worker_that_has_all_of_it() -> None:
    wanted = {"GPU": 1.0, "MEMORY": 8e9}
    assert engine_options.unmet(wanted, [{"GPU": 1, "MEMORY": 16e9}], "Dask", "") is None
    # two workers with half each cannot run it
    problem = engine_options.unmet(wanted, [{"GPU": 1}, {"MEMORY": 16e9}], "Dask", "start one.")
    assert problem == ("no Dask worker has the resources the task asks for (GPU=1, MEMORY=8e+09); "
                       "they offer: GPU=1; MEMORY=1.6e+10. start one.")
    assert "they offer: no workers" in engine_options.unmet(wanted, [], "Ray", "")


def test_the_engines_own_options_are_all_known() -> None:
    # When an engine grows an option, the check at decoration must not refuse it.
    distributed = pytest.importorskip("distributed")
    import inspect

    submit = set(inspect.signature(distributed.Client.submit).parameters)
    assert submit - {"self", "func", "args", "kwargs", "key", "pure", "actor", "actors"} <= engine_options.KNOWN
    ray_options = pytest.importorskip("ray._common.ray_option_utils")
    taken = {"name", "num_returns"}
    assert {k for k in ray_options.task_options if not k.startswith("_")} - taken <= engine_options.KNOWN
