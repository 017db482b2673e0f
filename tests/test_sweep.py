"""prefect_like.sweep: grids and spaces expand into task runs; their results come back as a table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prefect_like import flow, sweep, task
from prefect_like.errors import RunNotFoundError


@task
def train(lr: float, depth: int, scale: float = 1.0) -> dict[str, float]:
    if depth == 8 and lr == 0.1:
        raise FloatingPointError("diverged")
    return {"loss": lr * depth * scale, "accuracy": 1 - lr}


# -- grids -----------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_last_axis_fastest() -> None:
    g = sweep.grid(lr=[0.1, 0.01], depth=[2, 4, 8])
    assert len(g) == 6
    assert list(g) == [
        {"lr": 0.1, "depth": 2}, {"lr": 0.1, "depth": 4}, {"lr": 0.1, "depth": 8},
        {"lr": 0.01, "depth": 2}, {"lr": 0.01, "depth": 4}, {"lr": 0.01, "depth": 8},
    ]
    assert [g[i] for i in range(-6, 6)] == list(g) * 2
    with pytest.raises(IndexError):
        g[6]


def test_a_huge_grid_is_not_materialised() -> None:
    g = sweep.grid(a=range(1000), b=range(1000), c=range(1000))
    assert len(g) == 10**9
    assert g[10**9 - 1] == {"a": 999, "b": 999, "c": 999}
    assert next(iter(g)) == {"a": 0, "b": 0, "c": 0}


@pytest.mark.parametrize(
    ("axes", "error", "match"),
    [
        ({}, ValueError, "at least one axis"),
        ({"lr": []}, ValueError, "'lr' has no values"),
        ({"lr": 0.1}, TypeError, r"lr=\[0.1\]"),
        ({"model": "rf"}, TypeError, "list of values"),
    ],
)
def test_bad_grids_say_what_is_wrong(axes: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sweep.grid(**axes)


def test_grid_map_runs_one_task_run_per_point_with_each_axis_a_column() -> None:
    @flow
    def search() -> list:
        return sweep.grid(lr=[0.1, 0.01], depth=[2, 4]).map(train, scale=2.0)

    # As in Prefect 3, a flow returning futures returns their States.
    assert [state.result() for state in search()] == [
        {"loss": 0.4, "accuracy": 0.9}, {"loss": 0.8, "accuracy": 0.9},
        {"loss": 0.04, "accuracy": 0.99}, {"loss": 0.08, "accuracy": 0.99},
    ]
    table = sweep.results(search)
    assert table.num_rows == 4
    assert table.column("param.lr").to_pylist() == [0.1, 0.1, 0.01, 0.01]
    assert table.column("param.depth").to_pylist() == [2, 4, 2, 4]
    assert table.column("param.scale").to_pylist() == [2.0] * 4
    assert table.column("map_index").to_pylist() == [0, 1, 2, 3]


def test_map_refuses_names_the_task_does_not_take_before_any_run() -> None:
    @flow
    def search() -> None:
        sweep.grid(lr=[0.1], max_depth=[2]).map(train)

    with pytest.raises(TypeError, match="no parameter 'max_depth'; its parameters are lr, depth, scale"):
        search()
    with pytest.raises(TypeError, match="both swept and given as a constant"):
        sweep.grid(lr=[0.1]).map(train, lr=0.2)
    with pytest.raises(TypeError, match="expected a @task"):
        sweep.grid(lr=[0.1]).map(lambda lr: lr)


# -- random spaces -------------------------------------------------------------------------------

SPACE = sweep.Space(
    lr=sweep.loguniform(1e-4, 1e-1),
    depth=sweep.integer(2, 4),
    dropout=sweep.uniform(0.0, 0.5),
    kernel=sweep.choice(["rbf", "linear"]),
)


def test_a_seed_gives_the_same_points_and_a_longer_sample_extends_a_shorter_one() -> None:
    first = SPACE.sample(50, seed=7)
    assert first == SPACE.sample(50, seed=7)
    assert first != SPACE.sample(50, seed=8)
    assert SPACE.sample(200, seed=7)[:50] == first


def test_samples_stay_in_their_dimensions() -> None:
    points = SPACE.sample(2000, seed=1)
    assert all(1e-4 <= p["lr"] <= 1e-1 for p in points)
    assert {p["depth"] for p in points} == {2, 3, 4}  # both ends included
    assert all(0.0 <= p["dropout"] <= 0.5 for p in points)
    assert {p["kernel"] for p in points} == {"rbf", "linear"}
    below = sum(p["lr"] < 1e-2 for p in points) / len(points)
    assert 0.6 < below < 0.73  # log-uniform: two of the three decades lie below 1e-2


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: sweep.uniform(1, 1), ValueError, "lo < hi"),
        (lambda: sweep.uniform(2, 1), ValueError, "lo < hi"),
        (lambda: sweep.uniform(0, float("inf")), ValueError, "finite"),
        (lambda: sweep.uniform("a", 1), TypeError, "numbers"),
        (lambda: sweep.loguniform(0, 1), ValueError, "0 < lo"),
        (lambda: sweep.loguniform(-1, 1), ValueError, "0 < lo"),
        (lambda: sweep.integer(3, 3), ValueError, "lo < hi"),
        (lambda: sweep.integer(1.5, 3), TypeError, "whole numbers"),
        (lambda: sweep.choice([]), ValueError, "at least one option"),
        (lambda: sweep.choice("abc"), TypeError, "list of options"),
        (lambda: sweep.Space(), ValueError, "at least one dimension"),
        (lambda: sweep.Space(lr=[0.1, 0.2]), TypeError, "must be uniform"),
        (lambda: SPACE.sample(0), ValueError, "n must be 1 or more"),
        (lambda: SPACE.sample(2.5), TypeError, "whole number"),
    ],
)
def test_bad_spaces_say_what_is_wrong(make, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_space_map_runs_n_seeded_task_runs() -> None:
    space = sweep.Space(lr=sweep.uniform(0.01, 0.05), depth=sweep.integer(1, 3))

    @flow
    def search(n: int) -> list:
        return space.map(train, n, seed=3)

    results = [state.result() for state in search(5)]
    expected = space.sample(5, seed=3)
    assert results == [{"loss": p["lr"] * p["depth"], "accuracy": 1 - p["lr"]} for p in expected]
    frame = sweep.results_frame(search)
    assert frame[["param.lr", "param.depth"]].to_dict("records") == [
        {"param.lr": p["lr"], "param.depth": p["depth"]} for p in expected
    ]


def test_space_map_without_a_seed_logs_the_seed_it_chose() -> None:
    space = sweep.Space(lr=sweep.uniform(0.01, 0.05), depth=sweep.integer(1, 3))

    @flow
    def search() -> None:
        space.map(train, 2)

    state = search(return_state=True)
    from prefect_like import settings
    from prefect_like.tracking.store import Store

    with Store(settings.database_path()) as store:
        messages = [line["message"] for line in store.logs(flow_run_id=state.run_id)]
    assert any("Sampling 2 points" in m and "seed=" in m for m in messages)


# -- results ------------------------------------------------------------------------------------


@pytest.fixture
def finished_sweep():
    @flow(name="sweep-results")
    def search() -> None:
        sweep.grid(lr=[0.1, 0.01, 0.001], depth=[2, 8]).map(train)

    return search(return_state=True)


def test_results_table_has_parameters_results_state_and_errors(finished_sweep) -> None:
    table = sweep.results(finished_sweep)
    assert table.num_rows == 6
    for column in ("param.lr", "param.depth", "result.loss", "result.accuracy", "state",
                   "duration", "error_type", "error_message"):
        assert column in table.column_names
    rows = table.to_pylist()
    failed = [r for r in rows if r["state"] == "FAILED"]
    assert len(failed) == 1
    assert (failed[0]["param.lr"], failed[0]["param.depth"]) == (0.1, 8)
    assert failed[0]["error_type"] == "FloatingPointError"
    assert failed[0]["result.loss"] is None


def test_results_by_id_prefix_state_or_flow_agree(finished_sweep) -> None:
    by_state = sweep.results_frame(finished_sweep)
    by_prefix = sweep.results_frame(finished_sweep.run_id[:10])
    assert by_state.equals(by_prefix)
    assert len(by_state) == 6


def test_best_sorts_by_a_result_field_and_leaves_out_failures(finished_sweep) -> None:
    lowest = sweep.best(finished_sweep, "loss", k=2)
    assert lowest["result.loss"].tolist() == pytest.approx([0.002, 0.008])
    assert sweep.best(finished_sweep, "result.loss", k=2).equals(lowest)
    highest = sweep.best(finished_sweep, "loss", k=10, minimize=False)
    assert len(highest) == 5  # the failed run has no loss and is not completed
    assert highest["result.loss"].iloc[0] == pytest.approx(0.2)  # 0.1 x 8 failed
    assert set(highest["state"]) == {"COMPLETED"}


def test_best_and_results_errors(finished_sweep) -> None:
    with pytest.raises(ValueError, match="k must be"):
        sweep.best(finished_sweep, "loss", k=0)
    with pytest.raises(ValueError, match="minimize=False"):
        sweep.best(finished_sweep, "-loss")
    with pytest.raises(ValueError, match="invalid result key"):
        sweep.best(finished_sweep, "loss; DROP TABLE task_runs")
    with pytest.raises(RunNotFoundError):
        sweep.results("ffffffffffff")

    @flow(name="never-ran")
    def never() -> None: ...

    with pytest.raises(RunNotFoundError, match="no runs"):
        sweep.results(never)


def test_importing_prefect_like_sweep_does_not_import_pyarrow_or_pandas() -> None:
    code = (
        "import sys, prefect_like, prefect_like.sweep as s; s.grid(a=[1]); "
        "s.Space(a=s.uniform(0, 1)).sample(3, seed=0); "
        "bad = [m for m in ('pyarrow', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
