"""A tracked hyperparameter sweep on the embedded store: the project's quick start.

A grid of learning rates, momenta and seeds trains a tiny model (gradient descent on a noisy
quadratic, pure Python so it runs anywhere). Some settings diverge and fail, some trials are
flaky and succeed on retry; every trial is a task run in the store, queryable afterwards.

    python examples/quickstart_sweep.py                 # 300 trials on the thread runner
    python examples/quickstart_sweep.py --trials-per-setting 10 --runner sequential
"""

from __future__ import annotations

import argparse
import itertools
import math
import random

from prefect_like import flow, get_run_logger, runtime, settings, task
from prefect_like.tracking.store import Store


@task(retries=2, task_run_name="lr={lr}-m={momentum}-seed={seed}")
def train(lr: float, momentum: float, seed: int, steps: int = 200) -> dict[str, float]:
    """Minimise (w - 3)^2 with noisy gradients; a diverging run raises, as real training does."""
    rng = random.Random(seed)
    # Flaky on some attempts, not all: a retry draws again (a fixed seed would fail every retry too).
    if random.Random(f"{seed}-{lr}-{momentum}-{runtime.task_run.run_count}").random() < 0.05:
        raise ConnectionError("lost the data loader (flaky; retried)")
    w, velocity = 0.0, 0.0
    for _ in range(steps):
        gradient = 2 * (w - 3.0) + rng.gauss(0, 0.5)
        velocity = momentum * velocity - lr * gradient
        w += velocity
        if not math.isfinite(w) or abs(w) > 1e6:
            raise FloatingPointError(f"diverged: lr={lr} momentum={momentum}")
    return {"loss": (w - 3.0) ** 2, "w": w}


@flow(name="quickstart-sweep")
def sweep(trials_per_setting: int = 20) -> list[dict[str, float] | None]:
    grid = list(itertools.product([0.001, 0.01, 0.1, 0.5, 1.1], [0.0, 0.5, 0.9], range(trials_per_setting)))
    get_run_logger().info("Sweeping %d trials", len(grid))
    lrs, momenta, seeds = zip(*grid, strict=True)
    futures = train.map(lrs, momenta, seeds)
    futures.wait()  # every trial has ended: reading a state before that would see it still running
    return [f.result() if f.state.is_completed() else None for f in futures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-per-setting", type=int, default=20)
    parser.add_argument("--runner", default="thread", help="sequential, thread, asyncio, dask or ray")
    args = parser.parse_args()

    state = sweep.with_options(task_runner=args.runner)(args.trials_per_setting, return_state=True)
    store = Store(settings.database_path())
    run = store.get_flow_run(state.run_id)
    best = store.list_task_runs(run["id"], state="completed", order_by="result.loss", limit=1)
    counts = run["task_runs"]
    total = sum(counts.values())
    failed = total - counts.get("Completed", 0) - counts.get("Cached", 0)
    print()
    print(f"Flow run {run['name']} ({run['id']}) ended {run['state_name']}")
    print(f"  task runs: {total}, failed: {failed}  ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
    if best:
        print(f"  best: loss={best[0]['result']['loss']:.3g} with {best[0]['parameters']}")
    print(f"  stored in {settings.database_path()}")
    print("Inspect it with (in the virtualenv: source .venv/bin/activate):")
    print(f"  prefect-like runs show {run['id']}")
    print(f"  prefect-like runs tasks {run['id']} --state failed")
    print(f"  prefect-like runs tasks {run['id']} --order-by result.loss --limit 10")


if __name__ == "__main__":
    main()
