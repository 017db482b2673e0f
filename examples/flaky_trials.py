"""A sweep with flaky trials: retries, real failures, skipped downstream runs, and finding them all.

Each trial can lose its connection (``ConnectionError``: retried, with backoff, and usually
fine on a later attempt) or hit a bad setting (``ValueError``: not worth retrying, so
``retry_condition_fn`` says no and it fails at once). A per-trial ``report`` task runs after
each trial; for a failed trial it never runs and ends NotReady. A final ``summarise`` task
takes every trial with ``allow_failure`` so it runs even though some failed.

Then the failed-runs query, three ways: the store in Python, the CLI, and the results table.

    python examples/flaky_trials.py                      # 200 trials
    python examples/flaky_trials.py --trials 20 --flaky 0.3
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import allow_failure, flow, settings, sweep, task  # noqa: E402
from prefect_like.cli import cli  # noqa: E402
from prefect_like.tracking.store import Store  # noqa: E402


def only_connection_errors(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's signature
    """Retry lost connections; a bad setting fails the same way every time."""
    return isinstance(state.result(raise_on_failure=False), ConnectionError)


@task(retries=3, retry_delay_seconds=[0.01, 0.02, 0.04], retry_condition_fn=only_connection_errors)
def trial(x: float, seed: int, flaky: float) -> dict[str, float]:
    rng = random.Random()  # not seeded: each attempt gets a fresh chance to succeed
    if rng.random() < flaky:
        raise ConnectionError("lost the connection to the data store")
    if x > 0.9:
        raise ValueError(f"x={x:.3f} is outside the model's valid range (x <= 0.9)")
    return {"loss": round((x - 0.3) ** 2 + random.Random(seed).gauss(0, 0.01), 5)}


@task
def report(result: dict[str, float]) -> str:
    return f"loss {result['loss']}"


@task
def summarise(outcomes: list) -> dict[str, int]:
    completed = [o for o in outcomes if isinstance(o, dict)]
    return {"completed": len(completed), "failed": len(outcomes) - len(completed)}


@flow(name="flaky-trials")
def flaky_sweep(trials: int, flaky: float) -> dict[str, int]:
    space = sweep.Space(x=sweep.uniform(0.0, 1.0), seed=sweep.integer(0, 10**6))
    results = space.map(trial, n=trials, seed=1, flaky=flaky)
    report.map(results)  # a failed trial's report never runs: NotReady
    return summarise.submit([allow_failure(r) for r in results]).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--flaky", type=float, default=0.2, help="chance that an attempt loses its connection")
    args = parser.parse_args()

    state = flaky_sweep(args.trials, args.flaky, return_state=True)
    summary = state.result()
    run_id = state.run_id

    # 1. The store, in Python: the failed task runs, their parameters and errors.
    with Store(settings.database_path()) as store:
        counts = store.task_run_counts(run_id)
        failed = store.list_task_runs(run_id, state="failed", limit=5)
        n_failed = store.count_task_runs(run_id, state="failed")
        n_not_ready = store.count_task_runs(run_id, state="NotReady")

    # 2. The results table: how many attempts the trials needed.
    frame = sweep.results_frame(state)
    trials = frame[frame["task_name"] == "trial"]
    attempts = trials["run_count"].astype(int).value_counts().sort_index().to_dict()

    print()
    print(f"flow run {run_id} ended {state.name}: {summary}")
    print(f"  task runs by state: {counts}")
    print(f"  trials by attempts used: {attempts}  (retries: {int(trials['run_count'].sum()) - len(trials)})")
    print(f"  failed trials: {n_failed}; reports not run (NotReady): {n_not_ready}")
    for run in failed:
        print(f"    {run['id']}  x={run['parameters']['x']:.3f}  {run['error']['type']}: {run['error']['message']}")

    # 3. The CLI: the same query as `prefect-like runs tasks <id> --state failed`.
    print(f"\n$ prefect-like runs tasks {run_id[:8]} --state failed --limit 5")
    cli.main(["runs", "tasks", run_id[:8], "--state", "failed", "--limit", "5"],
             prog_name="prefect-like", standalone_mode=False)


if __name__ == "__main__":
    main()
