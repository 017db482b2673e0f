"""An I/O-bound sweep on the asyncio runner: thousands of async task runs on one event loop.

Each trial "queries a remote service" (simulated with ``asyncio.sleep``): a run that waits costs
a coroutine, not a thread, so 2,000 trials that wait 50 ms each finish in about a second, where
one thread would take 100. One call in twenty fails and is retried.

    python examples/async_io_sweep.py                           # 2,000 trials, 50 ms each
    python examples/async_io_sweep.py --trials 40 --latency 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_like import flow, sweep, task  # noqa: E402


@task(retries=3, retry_delay_seconds=0, timeout_seconds=5)
async def fetch_score(region: str, batch_size: int, seed: int, latency: float) -> dict[str, float]:
    """Ask a (simulated) service how a setting scores; one call in twenty is slow and fails."""
    rng = random.Random(f"{region}-{batch_size}-{seed}")
    await asyncio.sleep(latency * rng.uniform(0.5, 1.5))
    if random.random() < 0.05:  # not seeded: a retry usually succeeds
        raise TimeoutError(f"{region} did not answer in time")
    throughput = batch_size * {"eu": 1.0, "us": 1.2, "ap": 0.8}[region] / (1 + batch_size / 256)
    return {"throughput": round(throughput + rng.gauss(0, 1), 3), "latency_ms": round(latency * 1000, 1)}


@flow(name="async-io-sweep", task_runner="asyncio")
async def io_sweep(trials: int, latency: float) -> int:
    space = sweep.Space(
        region=sweep.choice(["eu", "us", "ap"]),
        batch_size=sweep.choice([16, 32, 64, 128, 256, 512]),
        seed=sweep.integer(0, 10**6),
    )
    futures = space.map(fetch_score, n=trials, seed=42, latency=latency)
    return sum(f.result(raise_on_failure=False) is not None for f in futures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per simulated call")
    args = parser.parse_args()

    started = time.perf_counter()
    state = asyncio.run(io_sweep(args.trials, args.latency, return_state=True))
    elapsed = time.perf_counter() - started
    frame = sweep.results_frame(state)
    retried = int((frame["run_count"] > 1).sum())
    by_region = frame.groupby("param.region")["result.throughput"].mean().round(1).to_dict()
    top = sweep.best(state, "throughput", k=1, minimize=False).iloc[0]
    print()
    print(f"{len(frame)} async trials in {elapsed:.1f} s (each waits ~{args.latency * 1000:.0f} ms); "
          f"flow run {state.run_id} ended {state.name}")
    print(f"  retried: {retried}, failed: {int((frame['state'] != 'COMPLETED').sum())}")
    print(f"  mean throughput by region: {by_region}")
    print(f"  best: region={top['param.region']} batch_size={top['param.batch_size']} "
          f"throughput={top['result.throughput']}")


if __name__ == "__main__":
    main()
