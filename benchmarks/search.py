"""Adaptive search at scale: reported metrics, ASHA on Dask, Optuna TPE, each against a baseline.

    python -m benchmarks.search                          # every case, full size
    python -m benchmarks.search --cases tpe --scale 0.1  # one case, smaller

Three cases from the adaptive-search issue, each side in a fresh process, set-up untimed:

- ``reports``: a random search of 100,000 trials (``sweep.optimize``, thread runner), each
  reporting 10 steps (1,000,000 metric points), against the same search without reports.
  It reports wall time, how many metric points the store holds when ``optimize`` returns, and the
  flow process's peak RSS growth per trial.
- ``asha``: ASHA on a 2-worker Dask ``LocalCluster``, 40 trials of up to 8 steps of 50 ms. It
  reports parallel efficiency: the steps' own time / (wall x 2 workers).
- ``tpe``: Optuna's TPE through ``sweep.optimize`` (ask/tell, 2 trials in flight, every trial
  a tracked task run) against plain ``study.optimize(n_jobs=2)`` on the same trivial objective,
  1,000 trials.

``--scale`` multiplies the trial counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = ("reports", "asha", "tpe")
SIDES = {"reports": ("plain", "reports"), "asha": ("runner",), "tpe": ("optuna", "runner")}
STEP_SECONDS = 0.05


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _metric_points(home: Path) -> int:
    with sqlite3.connect(home / "prefect_like.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])


def _reports(side: str, scale: float, home: Path) -> dict[str, Any]:
    from prefect_like import sweep, task

    n = max(10, int(100_000 * scale))
    with_reports = side == "reports"

    @task
    def train(lr: float) -> dict[str, float]:
        loss = 1.0
        for step in range(10):
            loss *= 1 - lr
            if with_reports:
                sweep.report(step=step, loss=loss)
        return {"loss": loss}

    space = sweep.Space(lr=sweep.uniform(0.01, 0.5))
    sweep.optimize(train, space, n_trials=10, max_concurrent=8, name="warm-up", seed=1)
    before = _metric_points(home)
    baseline = _peak_rss()
    started = time.perf_counter()
    search = sweep.optimize(train, space, n_trials=n, max_concurrent=256, name="reports", seed=2)
    wall = time.perf_counter() - started
    return {
        "trials": n,
        "completed": sum(t.completed for t in search.trials),
        "wall_s": round(wall, 3),
        "trials_per_s": round(n / wall),
        "metric_points_stored": _metric_points(home) - before,
        "rss_growth_bytes_per_trial": round((_peak_rss() - baseline) / n, 1),
    }


def _asha(scale: float) -> dict[str, Any]:
    from prefect_like_dask import DaskTaskRunner

    from prefect_like import sweep, task

    n = max(8, int(40 * scale))

    @task
    def epochs(lr: float) -> dict[str, float]:
        loss = 1.0
        for step in range(1, 9):
            time.sleep(STEP_SECONDS)
            loss = lr / step
            sweep.report(step=step, loss=loss)
            if sweep.should_prune():
                raise sweep.TrialPruned()
        return {"loss": loss}

    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                           env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")])})
    runner = DaskTaskRunner(address=cluster.scheduler_address)
    space = sweep.Space(lr=sweep.uniform(0.1, 5.0))
    scheduler = sweep.ASHA(max_t=8, grace_period=1, reduction_factor=2)
    sweep.optimize(epochs, space, n_trials=2, max_concurrent=2, task_runner=runner, name="warm-up", seed=1)
    started = time.perf_counter()
    search = sweep.optimize(epochs, space, n_trials=n, max_concurrent=4, scheduler=scheduler,
                            task_runner=runner, name="asha", seed=2)
    wall = time.perf_counter() - started
    from prefect_like.client import connect

    with connect() as reader:
        steps = len(reader.metrics(flow_run_id=search.flow_run_id))
    return {
        "trials": n,
        "pruned": sum(t.state == "Pruned" for t in search.trials),
        "steps": steps,
        "wall_s": round(wall, 3),
        "efficiency": round(steps * STEP_SECONDS / (wall * 2), 3),
    }


def _tpe(side: str, scale: float) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = max(20, int(1000 * scale))

    def value(x: float, y: float) -> float:
        return (x - 1.0) ** 2 + (y + 2.0) ** 2

    if side == "optuna":
        def objective(trial: Any) -> float:
            return value(trial.suggest_float("x", -5, 5), trial.suggest_float("y", -5, 5))

        optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1)).optimize(objective, n_trials=5)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=2))
        started = time.perf_counter()
        study.optimize(objective, n_trials=n, n_jobs=2)
        wall = time.perf_counter() - started
        best = study.best_value
    else:
        from prefect_like import sweep, task

        @task
        def objective(x: float, y: float) -> dict[str, float]:
            return {"loss": value(x, y)}

        space = sweep.Space(x=sweep.uniform(-5, 5), y=sweep.uniform(-5, 5))
        sweep.optimize(objective, space, n_trials=5, sampler="tpe", max_concurrent=2, name="warm-up", seed=1)
        started = time.perf_counter()
        search = sweep.optimize(objective, space, n_trials=n, sampler="tpe", max_concurrent=2,
                                name="tpe", seed=2)
        wall = time.perf_counter() - started
        best = search.best.value
    return {"trials": n, "wall_s": round(wall, 3), "ms_per_trial": round(wall / n * 1000, 3),
            "best": round(best, 4)}


def child(case: str, side: str, scale: float, home: Path) -> dict[str, Any]:
    if case == "reports":
        row = _reports(side, scale, home)
    elif case == "asha":
        row = _asha(scale)
    else:
        row = _tpe(side, scale)
    return {"case": case, "side": side, **row}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the trial counts")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "SIDE", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, side, home = args.child
        print(json.dumps(child(case, side, args.scale, Path(home))))
        return
    for case in args.cases.split(","):
        if case not in CASES:
            parser.error(f"unknown case {case!r}; the cases are {', '.join(CASES)}")
        for side in SIDES[case]:
            with tempfile.TemporaryDirectory(prefix="prefect-like-search-") as home:
                env = {
                    **os.environ,
                    "PREFECT_LIKE_HOME": home,
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")]),
                }
                env.pop("PREFECT_LIKE_API_URL", None)
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.search", "--scale", str(args.scale),
                     "--child", case, side, home],
                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
                )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"{case} {side}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
