"""A grid searched under Hyperband: every point is tried, most stopped early at one of several grace periods.

``sweep.Hyperband`` runs asynchronous successive halving in several brackets at once: some
trials may be stopped after 1 epoch, others only after 3 or 9, hedging on how early a learning
curve tells. The grid (``sampler="grid"``) supplies the points, each once. No dependency beyond
prefect-like.

    python examples/search_grid_hyperband.py                   # 48 points, up to 27 epochs each
    python examples/search_grid_hyperband.py --epochs 9 --parallel 2
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import sweep, task  # noqa: E402

GRID = sweep.grid(width=[8, 16, 32, 64], dropout=[0.0, 0.1, 0.3, 0.5], decay=[1e-4, 1e-3, 1e-2])


@task
def fit(width: int, dropout: float, decay: float, epochs: int = 27) -> dict[str, float]:
    """A made-up learning curve: accuracy approaches a ceiling set by the hyperparameters."""
    ceiling = 0.99 - abs(math.log2(width) - 5) * 0.02 - abs(dropout - 0.1) * 0.1 - abs(math.log10(decay) + 3) * 0.02
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        accuracy = ceiling * (1 - math.exp(-epoch / (2 + width / 16)))
        sweep.report(step=epoch, accuracy=accuracy)
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()

    search = sweep.optimize(
        fit, GRID, sampler="grid", metric="accuracy", mode="max",
        scheduler=sweep.Hyperband(max_t=args.epochs, grace_period=1, reduction_factor=3),
        max_concurrent=args.parallel, name="grid-hyperband", epochs=args.epochs,
    )
    states = [t.state for t in search.trials]
    best = search.best
    print()
    print(f"sweep {search.name!r}: flow run {search.flow_run_id} ended {search.state.name}; {len(states)} points, "
          f"{states.count('Completed')} trained fully, {states.count('Pruned')} stopped early")
    print(f"  best: trial-{best.number} {best.params} accuracy={best.value:.4f}")
    print("  prefect-like sweeps show grid-hyperband --order-by -result.accuracy --limit 5")


if __name__ == "__main__":
    main()
