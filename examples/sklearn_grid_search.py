"""Grid search of a scikit-learn model on the thread runner: one tracked task run per grid point.

A support-vector classifier on the handwritten digits, cross-validated at every combination of
``C`` and ``gamma``. ``sweep.grid(...).map(evaluate)`` crosses the axes (where ``task.map``
would zip them), so each point is one task run whose parameters ``C`` and ``gamma`` are columns
of the run table; scikit-learn releases the GIL in its solvers, so threads run in parallel.

    python examples/sklearn_grid_search.py                       # 5 x 5 grid, 3 folds
    python examples/sklearn_grid_search.py --values 2 --samples 200 --folds 2   # seconds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import flow, sweep, task  # noqa: E402


@task(task_run_name="svc-C={C:g}-gamma={gamma:g}")
def evaluate(C: float, gamma: float, samples: int, folds: int) -> dict[str, float]:
    """Mean cross-validated accuracy of an RBF SVC; the result fields become table columns."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    scores = cross_val_score(SVC(C=C, gamma=gamma), X[:samples], y[:samples], cv=folds)
    return {"accuracy": round(float(scores.mean()), 4), "std": round(float(scores.std()), 4)}


@flow(name="sklearn-grid-search", task_runner="thread")
def grid_search(values: int = 5, samples: int = 1797, folds: int = 3) -> list[dict[str, float]]:
    grid = sweep.grid(
        C=[10.0**e for e in range(-1, -1 + values)],       # 0.1, 1, 10, ...
        gamma=[10.0**-e for e in range(2, 2 + values)],    # 0.01, 0.001, ...
    )
    return grid.map(evaluate, samples=samples, folds=folds)


def missing() -> list[str]:
    """The packages this example needs that are not installed."""
    import importlib.util

    return [name for name in ("sklearn", "pyarrow", "pandas") if importlib.util.find_spec(name) is None]


def main() -> None:
    if missing():
        sys.exit(f"this example needs {', '.join(missing())}: pip install \"prefect-like[examples]\" "
                 "(or pip install -e \".[examples]\" in a clone)")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=5, help="values per axis (the grid has values^2 points)")
    parser.add_argument("--samples", type=int, default=1797, help="digits to use (at most 1797)")
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()

    state = grid_search(args.values, args.samples, args.folds, return_state=True)
    top = sweep.best(state, "accuracy", k=3, minimize=False)
    table = sweep.results(state)
    print()
    print(f"{table.num_rows} grid points, flow run {state.run_id} ended {state.name}")
    print("best by mean accuracy:")
    for row in top.to_dict("records"):
        print(f"  C={row['param.C']:<8g} gamma={row['param.gamma']:<8g} "
              f"accuracy={row['result.accuracy']:.4f} (+/- {row['result.std']:.4f})")
    print(f"all points: prefect-like runs tasks {state.run_id} --order-by=-result.accuracy")


if __name__ == "__main__":
    main()
