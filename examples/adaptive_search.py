"""Adaptive search: asynchronous successive halving (ASHA), steered by results as they arrive.

Every configuration starts on a small budget (training steps). Each time a trial finishes, the
flow looks at its rung: a configuration in the top 1/eta of those finished there is promoted to
eta times the budget; otherwise a fresh configuration from the search space takes the free
slot. No rung waits for its slowest trial, so the workers never idle, and most of the compute
goes to the promising configurations. Every trial, at every budget, is a tracked task run.

    python examples/adaptive_search.py                              # 81 configurations
    python examples/adaptive_search.py --configs 9 --max-budget 9 --parallel 2

No dependency beyond prefect-like: the loop is ``as_completed`` and ``submit``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import as_completed, flow, get_run_logger, sweep, task  # noqa: E402

SPACE = sweep.Space(lr=sweep.loguniform(1e-3, 1.0), momentum=sweep.uniform(0.0, 0.95))


@task(task_run_name="config-{config}-budget-{budget}")
def train(config: int, lr: float, momentum: float, budget: int) -> dict[str, float]:
    """Noisy gradient descent on (w - 3)^2 for ``budget`` steps; the loss falls with budget."""
    rng = random.Random(config)
    w, velocity = 0.0, 0.0
    for _ in range(budget * 20):
        gradient = 2 * (w - 3.0) + rng.gauss(0, 1.0)
        velocity = momentum * velocity - lr * gradient
        w += velocity
        if not math.isfinite(w) or abs(w) > 1e6:
            return {"loss": 1e6, "budget": budget}  # diverged: worst possible, never promoted
    return {"loss": round((w - 3.0) ** 2, 6), "budget": budget}


@flow(name="adaptive-search", task_runner="thread")
def successive_halving(configs: int, min_budget: int, max_budget: int, eta: int, parallel: int, seed: int = 0) -> dict:
    log = get_run_logger()
    rungs = [min_budget * eta**k for k in range(int(math.log(max_budget / min_budget, eta) + 1e-9) + 1)]
    fresh = enumerate(SPACE.points(configs, seed=seed))   # configurations not yet tried
    finished: list[dict[int, float]] = [{} for _ in rungs]  # per rung: config -> loss
    promoted: list[set[int]] = [set() for _ in rungs]
    points: dict[int, dict] = {}
    in_flight: dict = {}  # future -> (config, rung)

    def start(config: int, rung: int) -> None:
        future = train.submit(config, **points[config], budget=rungs[rung])
        in_flight[future] = (config, rung)

    def next_job() -> tuple[int, int] | None:
        # Promote the best unpromoted configuration of the highest rung that has one in its top 1/eta.
        for rung in reversed(range(len(rungs) - 1)):
            done = finished[rung]
            top = sorted(done, key=done.__getitem__)[: len(done) // eta]
            candidates = [c for c in top if c not in promoted[rung]]
            if candidates:
                promoted[rung].add(candidates[0])
                return candidates[0], rung + 1
        for config, point in fresh:
            points[config] = point
            return config, 0
        return None

    for _ in range(parallel):
        if (job := next_job()) is not None:
            start(*job)
    while in_flight:
        future = next(as_completed(list(in_flight)))  # the first of the running trials to finish
        config, rung = in_flight.pop(future)
        if future.state.is_completed():
            finished[rung][config] = future.result()["loss"]
        while len(in_flight) < parallel and (job := next_job()) is not None:
            start(*job)
    log.info("trials per rung: %s", {rungs[r]: len(finished[r]) for r in range(len(rungs))})
    top_rung = max(r for r in range(len(rungs)) if finished[r])
    winner = min(finished[top_rung], key=finished[top_rung].__getitem__)
    return {"config": winner, **points[winner], "budget": rungs[top_rung], "loss": finished[top_rung][winner],
            "per_rung": {rungs[r]: len(finished[r]) for r in range(len(rungs))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=81, help="configurations to try")
    parser.add_argument("--min-budget", type=int, default=1)
    parser.add_argument("--max-budget", type=int, default=81)
    parser.add_argument("--eta", type=int, default=3, help="keep the top 1/eta at each rung")
    parser.add_argument("--parallel", type=int, default=4, help="trials in flight at once")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    state = successive_halving(args.configs, args.min_budget, args.max_budget, args.eta, args.parallel,
                               args.seed, return_state=True)
    best = state.result()
    table = sweep.results(state)
    spent = sum(table.column("param.budget").to_pylist())
    print()
    print(f"{table.num_rows} trials over {args.configs} configurations; flow run {state.run_id} ended {state.name}")
    print(f"  trials per budget: {best['per_rung']}")
    print(f"  compute: {spent} budget units, against {args.configs * args.max_budget} to train every "
          f"configuration fully ({spent / (args.configs * args.max_budget):.0%})")
    print(f"  best: config {best['config']} lr={best['lr']:.4f} momentum={best['momentum']:.3f} "
          f"loss={best['loss']:.5f} at budget {best['budget']}")
    print(f"  the best at that budget: prefect-like runs tasks {state.run_id} "
          f"--where 'param.budget == {best['budget']}' --order-by result.loss")
    print("  (sweep.optimize(..., scheduler=sweep.ASHA(...)) runs this search for you: "
          "examples/search_digits_tpe_asha.py)")


if __name__ == "__main__":
    main()
