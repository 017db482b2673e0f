"""sweep.optimize, report(), pruning and resume, on the local runners, against the real store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefect_like import flow, sweep, task
from prefect_like.cli import cli
from prefect_like.client import connect
from prefect_like.states import StateType


class Points:
    """A sampler that proposes these points in order: any object with ask() and tell() is one."""

    def __init__(self, *lrs: float) -> None:
        self.points = [{"lr": lr} for lr in lrs]
        self.told: list[tuple[float, Any, str]] = []

    def ask(self) -> dict[str, Any] | None:
        return self.points.pop(0) if self.points else None

    def tell(self, params: dict[str, Any], value: Any, state: str) -> None:
        self.told.append((params["lr"], value, state))


@task
def curve(lr: float, epochs: int = 8) -> dict[str, float]:
    """A learning curve whose loss falls as 1/epoch, scaled by lr: a lower lr is better."""
    loss = lr
    for epoch in range(1, epochs + 1):
        loss = lr / epoch
        sweep.report(step=epoch, loss=loss, accuracy=1 - loss / 10)
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"loss": loss}


@task
async def async_curve(lr: float, epochs: int = 8) -> dict[str, float]:
    loss = lr
    for epoch in range(1, epochs + 1):
        loss = lr / epoch
        sweep.report(step=epoch, loss=loss)
        if sweep.should_prune():
            raise sweep.TrialPruned("not promising")
    return {"loss": loss}


# -- report() ------------------------------------------------------------------------------------


def test_report_stores_each_step_readable_from_store_cli_and_frame() -> None:
    @flow
    def two_runs() -> None:
        curve.submit(1.0, epochs=3)
        curve.submit(2.0, epochs=3)

    state = two_runs(return_state=True)
    with connect() as reader:
        points = reader.metrics(flow_run_id=state.run_id)
        runs = reader.list_task_runs(state.run_id, order_by="param.lr")
        one = reader.metrics(task_run_id=runs[0]["id"])
    assert len(points) == 6
    assert [(p["step"], p["metrics"]["loss"]) for p in one] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert set(one[0]) == {"task_run_id", "seq", "step", "timestamp", "metrics"}

    frame = sweep.results_frame(state.run_id, history=True)
    assert len(frame) == 6
    assert list(frame.loc[frame["param.lr"] == 2.0, "metric.loss"]) == [2.0, 1.0, pytest.approx(2 / 3)]
    assert "result.loss" in frame.columns  # the run's own columns stay

    shown = CliRunner().invoke(cli, ["runs", "metrics", runs[1]["id"], "--json"])
    assert shown.exit_code == 0, shown.output
    assert [p["metrics"]["loss"] for p in json.loads(shown.output)] == [2.0, 1.0, pytest.approx(2 / 3)]
    table = CliRunner().invoke(cli, ["runs", "metrics", runs[1]["id"]])
    assert "STEP" in table.output and "LOSS" in table.output and "ACCURACY" in table.output


def test_report_needs_a_task_run_a_step_and_numbers() -> None:
    with pytest.raises(RuntimeError, match="from inside a task run"):
        sweep.report(step=1, loss=0.1)

    @task
    def bad(kind: str) -> None:
        if kind == "text":
            sweep.report(step=1, loss="low")
        elif kind == "step":
            sweep.report(step="one", loss=0.1)  # type: ignore[arg-type]
        elif kind == "many":
            sweep.report(step=1, **{f"m{i}": 1.0 for i in range(201)})
        else:
            sweep.report(step=1)

    @flow
    def reports() -> list[Any]:
        return [bad.submit(k, return_state=True) for k in ("text", "step", "none", "many")]

    states = reports(return_state=True).result(raise_on_failure=False)
    messages = [s.message for s in states]
    assert "report(): metric 'loss' must be a number, got str 'low'" in messages[0]
    assert "step must be a finite number" in messages[1]
    assert "needs at least one metric" in messages[2]
    assert "at most 200 metrics at a step, got 201" in messages[3]
    assert not sweep.should_prune()  # outside a search: never


# -- pruning on every local runner -----------------------------------------------------------


@pytest.mark.parametrize("runner", ["sequential", "thread", "asyncio"])
def test_asha_prunes_poor_trials_which_end_pruned_completed(runner: str) -> None:
    # Step 1's rung keeps the better half: lr 2 and 3 are below its median and stop there.
    sampler = Points(1.0, 2.0, 3.0, 0.5)
    objective = async_curve if runner == "asyncio" else curve
    search = sweep.optimize(
        objective, sweep.Space(lr=sweep.uniform(0.1, 5.0)), metric="loss", mode="min",
        sampler=sampler, scheduler=sweep.ASHA(max_t=8, grace_period=1, reduction_factor=2),
        max_concurrent=1, task_runner=runner, name=f"asha-{runner}",
    )
    assert [(t.number, t.params["lr"], t.state) for t in search.trials] == [
        (0, 1.0, "Completed"), (1, 2.0, "Pruned"), (2, 3.0, "Pruned"), (3, 0.5, "Completed")]
    assert search.best.number == 3 and search.best.value == pytest.approx(0.5 / 8)
    assert [state for _, _, state in sampler.told] == ["Completed", "Pruned", "Pruned", "Completed"]
    assert search.state.is_completed()

    with connect() as reader:
        pruned = reader.list_task_runs(search.flow_run_id, state="Pruned")
        flow_run = reader.get_flow_run(search.flow_run_id)
    assert [r["name"] for r in pruned] == ["trial-1", "trial-2"]
    assert {r["state"] for r in pruned} == {StateType.COMPLETED.value}
    assert pruned[0]["result"]["loss"] == 2.0  # its last report is its result
    assert pruned[0]["message"].startswith("Pruned at step 1")
    assert flow_run["task_runs"] == {"Completed": 2, "Pruned": 2}
    assert flow_run["state_name"] == "Completed"


def test_median_stopping_prunes_below_the_median_of_completed_trials() -> None:
    search = sweep.optimize(
        curve, sweep.Space(lr=sweep.uniform(0.1, 5.0)), sampler=Points(1.0, 1.2, 4.0, 0.8),
        scheduler=sweep.MedianStopping(n_startup_trials=2), max_concurrent=1, task_runner="sequential",
        name="median",
    )
    assert [t.state for t in search.trials] == ["Completed", "Completed", "Pruned", "Completed"]


# -- samplers ---------------------------------------------------------------------------------


def test_random_search_draws_the_spaces_own_points_and_a_grid_each_point_once() -> None:
    space = sweep.Space(lr=sweep.loguniform(1e-3, 1.0))
    search = sweep.optimize(curve, space, n_trials=5, seed=11, max_concurrent=3, name="random", epochs=2)
    assert [t.params for t in search.trials] == space.sample(5, seed=11)
    grid = sweep.optimize(curve, sweep.grid(lr=[0.5, 1.0, 2.0]), sampler="grid", max_concurrent=2, name="grid",
                          epochs=2)
    assert sorted(t.params["lr"] for t in grid.trials) == [0.5, 1.0, 2.0]
    assert grid.best.params == {"lr": 0.5}
    frame = grid.results_frame()
    assert list(frame.columns[:3]) == ["trial", "state", "value"] and "param.lr" in frame.columns


def test_optuna_tpe_runs_parallel_trials_by_ask_and_tell() -> None:
    pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install 'prefect-like[optuna]')")

    @task
    def quadratic(x: float, kind: str) -> float:
        return (x - 2) ** 2 + (0 if kind == "a" else 1)

    space = sweep.Space(x=sweep.uniform(-10, 10), kind=sweep.choice(["a", "b"]))
    search = sweep.optimize(quadratic, space, n_trials=16, sampler="tpe", seed=0, max_concurrent=3, name="tpe")
    assert len(search.study.trials) == 16
    assert {t.state.name for t in search.study.trials} == {"COMPLETE"}
    assert search.best.value == pytest.approx(search.study.best_value)
    assert search.best.value < 5


def test_several_metrics_have_a_pareto_front_not_a_best() -> None:
    @task
    def two(x: float) -> dict[str, float]:
        return {"a": x, "b": 1 - x}

    search = sweep.optimize(two, sweep.grid(x=[0.0, 0.5, 1.0]), sampler="grid", metric=["a", "b"],
                            mode=["min", "min"], max_concurrent=1, name="pareto")
    assert sorted(t.params["x"] for t in search.best_trials) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="has no single best; use best_trials"):
        _ = search.best


# -- errors a user makes ---------------------------------------------------------------------


def test_an_unknown_metric_is_an_error_naming_what_the_objective_returned() -> None:
    with pytest.raises(ValueError, match=r"the objective returned no 'acuracy' \(the search's metric\); its result has loss"):
        sweep.optimize(curve, sweep.Space(lr=sweep.uniform(0.1, 1)), metric="acuracy", n_trials=2, name="typo",
                       epochs=1)

    @flow
    def plain() -> None:
        curve.map(lr=[0.1, 0.2], epochs=[1, 1])

    state = plain(return_state=True)
    with pytest.raises(ValueError, match=r"no result key 'acuracy'; the completed task runs have result.loss"):
        sweep.best(state.run_id, "acuracy")


@pytest.mark.parametrize(("kwargs", "says"), [
    ({}, "give n_trials, a timeout"),
    ({"n_trials": 0}, "n_trials must be a whole number of 1 or more"),
    ({"n_trials": 2, "mode": "lowest"}, "mode must be 'min' or 'max'"),
    ({"n_trials": 2, "max_concurrent": 0}, "max_concurrent must be"),
    ({"n_trials": 2, "sampler": "bayes"}, "unknown sampler 'bayes'; use one of random, grid, tpe"),
    ({"n_trials": 2, "gamma": 1}, "task 'curve' has no parameter 'gamma'"),
])
def test_bad_arguments_fail_before_any_trial(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises((ValueError, TypeError), match=says):
        sweep.optimize(curve, sweep.Space(lr=sweep.uniform(0.1, 1)), **kwargs)
    with connect() as reader:
        assert reader.list_flow_runs() == []


# -- a sweep's identity and resume -----------------------------------------------------------


@task
def flaky(x: float, calls: str, fixed: str) -> dict[str, float]:
    with open(calls, "a") as log:
        log.write(f"{x!r}\n")
    if x > 0.5 and not os.path.exists(fixed):
        raise RuntimeError("the GPU fell over")
    return {"loss": (x - 0.3) ** 2}


def test_resume_reruns_only_what_did_not_complete_then_continues_the_sampler(tmp_path: Path) -> None:
    calls, fixed = str(tmp_path / "calls"), str(tmp_path / "fixed")
    space = sweep.Space(x=sweep.uniform(0, 1))
    first = sweep.optimize(flaky, space, n_trials=8, seed=5, name="flaky", calls=calls, fixed=fixed)
    failed = {t.number: t.params["x"] for t in first.trials if t.state == "Failed"}
    assert failed and len(failed) < 8
    Path(fixed).touch()
    open(calls, "w").close()

    second = sweep.optimize(flaky, space, n_trials=10, seed=5, name="flaky", resume=True, max_concurrent=1,
                            calls=calls, fixed=fixed)
    assert second.sweep_id == first.sweep_id and second.flow_run_id != first.flow_run_id
    ran = [float(line) for line in Path(calls).read_text().split()]
    points = [p["x"] for p in space.sample(10, seed=5)]
    # The failed trials again (same numbers, same points), then the seed's next two points.
    assert ran[: len(failed)] == list(failed.values())
    assert ran[len(failed):] == points[8:]
    assert [t.number for t in second.trials] == list(range(10))
    assert {t.state for t in second.trials} == {"Completed"}
    assert [t.params["x"] for t in second.trials] == points

    shown = CliRunner().invoke(cli, ["sweeps", "show", "flaky", "--json"])
    assert shown.exit_code == 0, shown.output
    stored = json.loads(shown.output)
    assert [r["attempt"] for r in stored["runs"]] == [0, 1]
    assert len(stored["trials"]) == 10 and {t["state_name"] for t in stored["trials"]} == {"Completed"}
    listed = CliRunner().invoke(cli, ["sweeps", "ls"])
    assert "flaky" in listed.output and first.sweep_id in listed.output


def test_a_resumed_optuna_search_tells_the_study_the_stored_trials() -> None:
    pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install 'prefect-like[optuna]')")
    space = sweep.Space(lr=sweep.loguniform(0.01, 5))
    sweep.optimize(curve, space, n_trials=4, sampler="tpe", seed=1, name="tpe-resume", epochs=2)
    again = sweep.optimize(curve, space, n_trials=7, sampler="tpe", seed=1, name="tpe-resume", resume=True, epochs=2)
    assert len(again.study.trials) == 7
    assert [t.number for t in again.trials] == list(range(7))
    assert again.best.value == pytest.approx(again.study.best_value)


def test_sweeps_show_filters_and_sorts_by_parameter_and_metric(tmp_path: Path) -> None:
    sweep.optimize(curve, sweep.grid(lr=[0.5, 1.0, 2.0, 4.0]), sampler="grid", name="svm", epochs=2)
    shown = CliRunner().invoke(cli, ["sweeps", "show", "svm", "--where", "param.lr >= 1 and result.loss < 1.5",
                                     "--order-by", "-param.lr", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [t["parameters"]["lr"] for t in json.loads(shown.output)["trials"]] == [2.0, 1.0]
    typo = CliRunner().invoke(cli, ["sweeps", "show", "svm", "--where", "result.los < 1"])
    assert typo.exit_code == 1
    assert "unknown result key 'result.los'; the known ones are result.loss" in typo.output
    hostile = CliRunner().invoke(cli, ["sweeps", "show", "svm", "--where", "1; DROP TABLE sweeps"])
    assert hostile.exit_code == 1 and "unexpected character ';'" in hostile.output
    missing = CliRunner().invoke(cli, ["sweeps", "show", "nope"])
    assert missing.exit_code == 1 and "no sweep with id or name 'nope'" in missing.output

    out = tmp_path / "svm.csv"
    exported = CliRunner().invoke(cli, ["sweeps", "export", "svm", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    import pandas as pd

    frame = pd.read_csv(out)
    assert len(frame) == 4 and {"attempt", "flow_run_id", "param.lr", "result.loss"} <= set(frame.columns)


def test_a_time_budget_stops_asking_and_lets_running_trials_finish() -> None:
    # Optuna's timeout semantics: no trial starts after the budget; the running ones complete.
    search = sweep.optimize(curve, sweep.Space(lr=sweep.uniform(0.1, 1)), timeout=0.3, max_concurrent=2,
                            name="budget", epochs=2)
    assert search.trials and {t.state for t in search.trials} == {"Completed"}
    assert search.state.is_completed()


def test_nsga2_searches_two_objectives_for_a_pareto_front() -> None:
    pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install 'prefect-like[optuna]')")

    @task
    def tradeoff(x: float) -> dict[str, float]:
        return {"error": (x - 1) ** 2, "cost": x**2}

    search = sweep.optimize(tradeoff, sweep.Space(x=sweep.uniform(-1, 2)), metric=["error", "cost"],
                            mode=["min", "min"], sampler="nsga2", n_trials=12, seed=0, max_concurrent=2,
                            name="nsga2")
    assert search.study.directions[0].name == "MINIMIZE" and len(search.study.directions) == 2
    front = search.best_trials
    assert front and all(0 <= t.params["x"] <= 1 for t in front)  # outside [0, 1] both objectives get worse
    assert {t.number for t in front} == {t.number for t in search.study.best_trials}


def test_callbacks_see_each_trial_as_it_ends_and_can_stop_the_search() -> None:
    # Optuna's study.optimize(callbacks=[...]): called after each trial, an exception stops it.
    seen: list[tuple[int, str | None]] = []

    def log(trial: sweep.Trial) -> None:
        seen.append((trial.number, trial.state))
        if len(seen) == 3:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        sweep.optimize(curve, sweep.Space(lr=sweep.uniform(0.1, 1)), n_trials=10, max_concurrent=1,
                       name="callbacks", callbacks=[log], epochs=1)
    assert seen == [(0, "Completed"), (1, "Completed"), (2, "Completed")]


def test_resuming_with_a_narrower_space_tells_the_study_only_the_points_inside_it() -> None:
    pytest.importorskip("optuna", reason="the optuna extra is not installed (pip install 'prefect-like[optuna]')")
    sweep.optimize(curve, sweep.grid(lr=[0.2, 0.4, 3.0]), sampler="grid", name="narrowed", epochs=1)
    again = sweep.optimize(curve, sweep.Space(lr=sweep.uniform(0.1, 1.0)), sampler="tpe", n_trials=5, seed=0,
                           name="narrowed", resume=True, epochs=1)
    told = sorted(t.params["lr"] for t in again.study.trials[:2])
    assert told == [0.2, 0.4]  # 3.0 lies outside the new space
    assert len(again.trials) == 5 and len(again.study.trials) == 4
