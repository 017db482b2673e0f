"""TPE + ASHA on scikit-learn's digits: a model-based search whose poor trials stop early, resumable.

Optuna's TPE sampler proposes each trial's hyperparameters from the trials so far (asked and
told, several in flight at once); ASHA stops a trial at a rung (3, 9 epochs) unless its
validation accuracy is in the top third there. Every trial is a tracked task run that reports
its learning curve; a stopped one ends Pruned with its last accuracy as its result.

    pip install "prefect-like[optuna]" scikit-learn
    python examples/search_digits_tpe_asha.py                 # 40 trials, 2 at a time
    python examples/search_digits_tpe_asha.py --trials 8 --epochs 9

Interrupt it (Ctrl-C) and it says how to resume: ``prefect-like sweeps resume ID``, or run the
script again (it resumes the sweep of the same name). The trials that completed are not run
again, the interrupted ones are, and TPE goes on from every stored trial.

    prefect-like sweeps show digits-tpe-asha --where 'result.accuracy > 0.95' --order-by -result.accuracy
    prefect-like runs metrics <trial id>                        # one trial's learning curve
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import sweep, task  # noqa: E402

SPACE = sweep.Space(
    alpha=sweep.loguniform(1e-6, 1e-1),
    learning_rate_init=sweep.loguniform(1e-4, 3e-1),
    hidden=sweep.integer(8, 128),
)


@task
def train(alpha: float, learning_rate_init: float, hidden: int, epochs: int = 27) -> dict[str, float]:
    """A one-layer network on the digits, one epoch at a time; validation accuracy after each."""
    import warnings

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(features / 16.0, labels, test_size=0.25, random_state=0)
    model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, learning_rate_init=learning_rate_init,
                          random_state=0)
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=np.arange(10))
        accuracy = float(model.score(x_valid, y_valid))
        sweep.report(step=epoch, accuracy=accuracy)
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trials in all (the resumed runs' included)")
    parser.add_argument("--epochs", type=int, default=27, help="epochs of a trial that is never stopped")
    parser.add_argument("--parallel", type=int, default=2, help="trials in flight at once")
    parser.add_argument("--runner", default="thread", help="sequential, thread, dask, ray, ...")
    args = parser.parse_args()

    search = sweep.optimize(
        train, SPACE, metric="accuracy", mode="max", n_trials=args.trials, sampler="tpe", seed=0,
        scheduler=sweep.ASHA(max_t=args.epochs, grace_period=3, reduction_factor=3),
        max_concurrent=args.parallel, task_runner=args.runner, name="digits-tpe-asha", resume=True,
        epochs=args.epochs,
    )
    states = [t.state for t in search.trials]
    best = search.best
    print()
    print(f"sweep {search.name!r} ({search.sweep_id}), flow run {search.flow_run_id} ended {search.state.name}")
    print(f"  {len(states)} trials: {states.count('Completed')} completed, {states.count('Pruned')} pruned early, "
          f"{len(states) - states.count('Completed') - states.count('Pruned')} other")
    print(f"  best: trial-{best.number} accuracy={best.value:.4f} alpha={best.params['alpha']:.2e} "
          f"learning_rate_init={best.params['learning_rate_init']:.2e} hidden={best.params['hidden']}")
    print(f"  the best trials: prefect-like sweeps show {search.sweep_id} --order-by -result.accuracy")
    print(f"  its learning curve: prefect-like runs metrics {best.task_run_id}")


if __name__ == "__main__":
    main()
