"""Random search with median stopping: learning curves reported step by step, poor ones cut short.

Each trial runs noisy gradient descent with momentum for up to ``--steps`` steps and reports
its loss every step (``sweep.report``). Once five trials have completed, a trial whose best
loss so far is worse than the median of the completed trials' losses at the same step is
stopped (``sweep.MedianStopping``, Optuna's MedianPruner): it ends Pruned, its last loss its
result. No dependency beyond prefect-like.

    python examples/search_random_median.py                    # 60 trials, 4 at a time
    python examples/search_random_median.py --trials 12 --steps 20
    prefect-like sweeps show random-median --where 'param.momentum > 0.5' --order-by result.loss
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import sweep, task  # noqa: E402

SPACE = sweep.Space(lr=sweep.loguniform(1e-3, 1.0), momentum=sweep.uniform(0.0, 0.95))


@task
def descend(lr: float, momentum: float, steps: int = 60, seed: int = 0) -> dict[str, float]:
    """Noisy gradient descent on (w - 3)^2; the loss after each step is reported."""
    rng = random.Random(seed)
    w, velocity, loss = 0.0, 0.0, 9.0
    for step in range(1, steps + 1):
        for _ in range(10):
            gradient = 2 * (w - 3.0) + rng.gauss(0, 1.0)
            velocity = momentum * velocity - lr * gradient
            w += velocity
        loss = (w - 3.0) ** 2 if math.isfinite(w) and abs(w) < 1e6 else 1e12
        sweep.report(step=step, loss=loss)
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    search = sweep.optimize(
        descend, SPACE, metric="loss", mode="min", n_trials=args.trials, sampler="random", seed=args.seed,
        scheduler=sweep.MedianStopping(n_startup_trials=5, n_warmup_steps=3), max_concurrent=args.parallel,
        name="random-median", steps=args.steps,
    )
    states = [t.state for t in search.trials]
    best = search.best
    print()
    print(f"sweep {search.name!r}: flow run {search.flow_run_id} ended {search.state.name}; "
          f"{states.count('Completed')} trials completed, {states.count('Pruned')} stopped early")
    print(f"  best: trial-{best.number} lr={best.params['lr']:.4f} momentum={best.params['momentum']:.3f} "
          f"loss={best.value:.5f}")
    print(f"  the learning curves: prefect-like runs metrics {search.flow_run_id}")


if __name__ == "__main__":
    main()
