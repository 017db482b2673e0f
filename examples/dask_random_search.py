"""Random search of a toy model's hyperparameters on Dask, every trial a tracked task run.

    python examples/dask_random_search.py --trials 200
    python examples/dask_random_search.py --trials 200 --address tcp://127.0.0.1:8786

Without ``--address`` the DaskTaskRunner starts a LocalCluster for the flow and closes it after.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "runners")]

from prefect_like_dask import DaskTaskRunner  # noqa: E402

from prefect_like import flow, task, unmapped  # noqa: E402


@task(retries=1, task_run_name="trial-{trial}")
def train(trial: int, lr: float, depth: int, noise: float) -> dict:
    """A stand-in for training: a smooth loss surface with its minimum near lr=0.01, depth=6."""
    rng = random.Random(trial)
    loss = (math.log10(lr) + 2) ** 2 + 0.05 * (depth - 6) ** 2 + rng.gauss(0, noise)
    return {"trial": trial, "lr": lr, "depth": depth, "loss": round(loss, 4)}


@task
def best(results: list[dict]) -> dict:
    return min(results, key=lambda r: r["loss"])


@flow(name="dask-random-search")
def random_search(trials: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    lrs = [10 ** rng.uniform(-4, 0) for _ in range(trials)]
    depths = [rng.randint(2, 12) for _ in range(trials)]
    results = train.map(range(trials), lrs, depths, unmapped(0.01))
    return best.submit(list(results)).result()


def main() -> None:
    parser = argparse.ArgumentParser(description="random search on Dask")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--address", default=None, help="a running Dask scheduler (default: a LocalCluster)")
    args = parser.parse_args()
    runner = DaskTaskRunner(address=args.address, cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
    state = random_search.with_options(task_runner=runner)(args.trials, return_state=True)
    winner = state.result()
    print(f"\n{args.trials} trials on Dask; flow run {state.run_id} ended {state.name}")
    print(f"best: trial {winner['trial']}  lr={winner['lr']:.5f}  depth={winner['depth']}  loss={winner['loss']}")
    print(f"inspect it: prefect-like runs show {state.run_id}")


if __name__ == "__main__":
    main()
