"""The dashboard in real Chromium against a real server: time to usable, and the docs' screenshots.

    python -m benchmarks.dashboard --tasks 200000     # time to a usable flow-run page and sweep view
    python -m benchmarks.dashboard --screenshots      # docs/images/dashboard-*.png from a real sweep

The benchmark fills a fresh store with one flow run of N task runs (event tuples written with
``Store.write`` in batches, as a fixture: not the framework's speed under test), starts
``python -m prefect_like.server`` on it and opens the flow-run page in headless Chromium.
"Usable" means the first page of the task-run table and the counts by state are rendered; the
time is read in the browser (``performance.now()``, whose origin is the navigation), first on a
cold page load and then on reloads. It also times the one-click views a user asks for next: the
failures, and the best losses (a sort on a result field over all N rows, done in SQL).

The screenshots come from a real sweep run by the framework (thread runner, a few failures, a
subflow, logs) next to two smaller flow runs and one still running.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store
from tests.server._live import chromium, running_server

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
BATCH = 60_000  # events per Store.write
USABLE = """() => document.querySelectorAll('[data-testid=task-runs] tbody tr[data-id]').length > 0
    && document.querySelector('[data-testid=state-counts] li') !== null"""
# The sweep view is usable when its table and every plot are drawn.
SWEEP_USABLE = """() => document.querySelectorAll('[data-testid=trials] tbody tr[data-id]').length > 0
    && ['plot-best', 'plot-histogram', 'plot-importance', 'plot-parallel', 'plot-scatter'].every(
        (t) => document.querySelector(`[data-testid=${t}] svg`) !== null)"""

TRACEBACK = """Traceback (most recent call last):
  File "sweep.py", line 31, in train
    loss = fit(model, data, epochs=epochs)
  File "sweep.py", line 18, in fit
    raise FloatingPointError(f"loss diverged to inf at epoch {epoch}")
FloatingPointError: loss diverged to inf at epoch 3
"""


# -- the 200k fixture ---------------------------------------------------------------------


def synthetic_flow_run(
    n: int, failure_rate: float = 0.02, seed: int = 0
) -> tuple[str, list[Event]]:
    """One finished flow run of ``n`` task runs (PENDING, RUNNING, then COMPLETED or FAILED)."""
    rng = random.Random(seed)
    flow_id = uuid.uuid4().hex
    t0 = time.time() - 1800
    span = max(60.0, n / 150)  # about 150 task runs finished per second, with a ramp-up
    events = [
        Event(
            "flow",
            flow_id,
            0,
            None,
            t0,
            "RUNNING",
            "Running",
            None,
            {
                "name": "huge-sweep",
                "flow_name": "grid-search",
                "runner": "thread",
                "parameters": {"n_trials": n, "model": "gbm"},
                "parent_task_run_id": None,
            },
        )
    ]
    counts = {"Completed": 0, "Failed": 0}
    end = t0
    for i in range(n):
        task_id = uuid.uuid4().hex
        lr = 10 ** rng.uniform(-4, -1)
        depth = rng.randint(2, 12)
        created = t0 + (i / n) ** 0.8 * span
        start = created + rng.uniform(0, 0.5)
        stop = start + rng.uniform(0.05, 2.0)
        end = max(end, stop)
        params = {"lr": round(lr, 6), "depth": depth}
        events.append(
            Event(
                "task",
                task_id,
                0,
                flow_id,
                created,
                "PENDING",
                "Pending",
                None,
                {"task_name": "train", "map_index": i, "name": f"train-{i}", "tags": None},
            )
        )
        events.append(
            Event("task", task_id, 1, flow_id, start, "RUNNING", "Running", None, {"run_count": 1})
        )
        if rng.random() < failure_rate:
            counts["Failed"] += 1
            error = {
                "type": "FloatingPointError",
                "message": "loss diverged to inf at epoch 3",
                "traceback": TRACEBACK,
            }
            events.append(
                Event(
                    "task",
                    task_id,
                    2,
                    flow_id,
                    stop,
                    "FAILED",
                    "Failed",
                    "FloatingPointError: loss diverged to inf at epoch 3",
                    {
                        "parameters": params,
                        "result": None,
                        "error": error,
                        "run_count": 1,
                        "duration": stop - start,
                    },
                )
            )
        else:
            counts["Completed"] += 1
            loss = abs(rng.gauss(0.3, 0.1)) + abs(lr - 0.01) * 5
            result = {"loss": round(loss, 5), "accuracy": round(1 - loss / 2, 5)}
            events.append(
                Event(
                    "task",
                    task_id,
                    2,
                    flow_id,
                    stop,
                    "COMPLETED",
                    "Completed",
                    None,
                    {
                        "parameters": params,
                        "result": result,
                        "error": None,
                        "run_count": 1,
                        "duration": stop - start,
                    },
                )
            )
    events.append(
        Event(
            "flow",
            flow_id,
            1,
            None,
            end,
            "FAILED",
            "Failed",
            f"{counts['Failed']} task runs failed",
            {"task_runs": counts, "error": None, "duration": end - t0},
        )
    )
    return flow_id, events


def fill(store: Store, events: list[Event]) -> None:
    for i in range(0, len(events), BATCH):
        store.write(events[i : i + BATCH])


# -- measuring ----------------------------------------------------------------------------


def time_to_usable(page: Any, url: str, usable: str = USABLE) -> float:
    """Milliseconds from navigation start to a usable page, read in the browser."""
    page.goto(url)
    page.wait_for_function(usable, polling="raf", timeout=60_000)
    return float(page.evaluate("performance.now()"))


def time_click(page: Any, action: Any, done: str) -> float:
    """Milliseconds from a click to the condition ``done`` holding, read in the browser."""
    page.evaluate("window.__t0 = performance.now()")
    action()
    page.wait_for_function(done, polling="raf", timeout=60_000)
    return float(page.evaluate("performance.now() - window.__t0"))


def benchmark(n: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="prefect-like-dashboard-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        flow_id, events = synthetic_flow_run(n)
        with Store(home / "prefect_like.db") as store:
            fill(store, events)
            failed = store.count_task_runs(flow_id, state="failed")
            best = store.list_task_runs(flow_id, order_by="result.loss", limit=1)[0]["id"]
        print(
            f"store filled with {n:,} task runs ({len(events):,} events) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with running_server(home) as server, chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            url = f"{server}#/flow-runs/{flow_id}"
            cold = time_to_usable(page, url)
            warm = []
            for _ in range(repeat):
                page.goto("about:blank")
                warm.append(time_to_usable(page, url))
            rows = "document.querySelectorAll('[data-testid=task-runs] tbody tr[data-id]')"
            failures = time_click(
                page,
                lambda: page.locator("[data-testid=state-counts] a", has_text="Failed").click(),
                f"() => document.querySelector('[data-testid=task-total]').textContent"
                f".startsWith('{failed:,} ')",
            )
            time_to_usable(page, url)
            best_losses = time_click(
                page,
                lambda: page.get_by_role("button", name="loss", exact=True).click(),
                f"() => {rows}[0]?.dataset.id === '{best}'",
            )
            # The sweep view: the first load makes the server read every trial into columns
            # (cold); later loads are served from those columns (warm).
            sweep_url = f"{server}#/flow-runs/{flow_id}/sweep"
            page.goto("about:blank")
            sweep_cold = time_to_usable(page, sweep_url, SWEEP_USABLE)
            sweep_warm = []
            for _ in range(repeat):
                page.goto("about:blank")
                sweep_warm.append(time_to_usable(page, sweep_url, SWEEP_USABLE))
            page.close()
        return {
            "tasks": n,
            "usable_cold_ms": round(cold),
            "usable_warm_ms_median": round(statistics.median(warm)),
            "usable_warm_ms": [round(w) for w in warm],
            "failed_filter_ms": round(failures),
            "sort_by_loss_ms": round(best_losses),
            "sweep_view_cold_ms": round(sweep_cold),
            "sweep_view_warm_ms_median": round(statistics.median(sweep_warm)),
            "sweep_view_warm_ms": [round(w) for w in sweep_warm],
        }


# -- screenshots --------------------------------------------------------------------------


def realistic_sweep(home: Path) -> str:
    """Run a real random-search sweep (and two smaller flows) into ``home``; the sweep's id."""
    import os

    os.environ["PREFECT_LIKE_HOME"] = str(home)
    os.environ.pop("PREFECT_LIKE_API_URL", None)
    from prefect_like import flow, get_run_logger, task

    @task
    def load_data(split: str) -> dict[str, int]:
        return {"rows": 48_000 if split == "train" else 12_000}

    @task(retries=1, retry_delay_seconds=0)
    def train(lr: float, depth: int, dropout: float) -> dict[str, float]:
        logger = get_run_logger()
        logger.info("fitting depth=%d lr=%.4g dropout=%.2f", depth, lr, dropout)
        time.sleep(0.01 + depth * 0.004)  # stands in for the training itself
        if lr > 0.08 and depth > 8:
            logger.warning("gradient norm exploded at epoch 3")
            raise FloatingPointError("loss diverged to inf at epoch 3")
        rng = random.Random(hash((lr, depth, dropout)))
        loss = (
            0.18
            + abs(lr - 0.01) * 3
            + abs(depth - 6) * 0.012
            + dropout * 0.05
            + rng.random() * 0.03
        )
        return {"loss": round(loss, 4), "accuracy": round(1 - loss / 1.6, 4), "epochs": 12}

    @task
    def report(best: float) -> str:
        return f"best loss {best:.4f}"

    @flow(name="evaluate-best")
    def evaluate(n: int) -> list[dict[str, float]]:
        return [train(0.01, 6, 0.1) for _ in range(n)]

    @flow(name="prepare-data", task_runner="thread")
    def prepare() -> list[Any]:
        return [load_data(s) for s in ("train", "valid")]

    @flow(name="random-search", task_runner="thread")
    def random_search(n_trials: int, seed: int) -> str:
        rng = random.Random(seed)
        lrs = [round(10 ** rng.uniform(-3.5, -0.9), 5) for _ in range(n_trials)]
        depths = [rng.randint(2, 12) for _ in range(n_trials)]
        dropouts = [round(rng.choice([0.0, 0.1, 0.2, 0.3]), 2) for _ in range(n_trials)]
        load_data("train")
        trials = train.map(lrs, depths, dropouts)
        outcomes = [f.result(raise_on_failure=False) for f in trials]
        losses = [o["loss"] for o in outcomes if isinstance(o, dict)]
        evaluate(3)
        return report(min(losses))

    prepare()
    random_search(600, 7)
    with Store(home / "prefect_like.db") as store:
        sweep_id = store.list_flow_runs(flow_name="random-search", limit=1)[0]["id"]
        store.write(_running_flow())
    return sweep_id


def _running_flow() -> list[Event]:
    """A flow run still going: some task runs done, some running, the rest pending."""
    flow_id = uuid.uuid4().hex
    now = time.time()
    events = [
        Event(
            "flow",
            flow_id,
            0,
            None,
            now - 95,
            "RUNNING",
            "Running",
            None,
            {
                "name": "nightly-retrain",
                "flow_name": "random-search",
                "runner": "dask",
                "parameters": {"n_trials": 400, "seed": 11},
                "parent_task_run_id": None,
            },
        ),
        Event("heartbeat", flow_id, 0, None, now, None, None, None, None),
    ]
    for i in range(400):
        task_id = uuid.uuid4().hex
        events.append(
            Event(
                "task",
                task_id,
                0,
                flow_id,
                now - 90 + i * 0.01,
                "PENDING",
                "Pending",
                None,
                {"task_name": "train", "map_index": i, "name": f"train-{i}"},
            )
        )
        if i < 260:
            events.append(
                Event(
                    "task", task_id, 1, flow_id, now - 89 + i * 0.3, "RUNNING", "Running", None, {}
                )
            )
        if i < 236:
            done = i % 40 == 7
            events.append(
                Event(
                    "task",
                    task_id,
                    2,
                    flow_id,
                    now - 88 + i * 0.32,
                    "FAILED" if done else "COMPLETED",
                    "Failed" if done else "Completed",
                    None,
                    {"result": None if done else {"loss": 0.2 + i % 17 / 100}},
                )
            )
    return events


def screenshots() -> list[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefect-like-shots-") as tmp:
        home = Path(tmp)
        sweep_id = realistic_sweep(home)
        with Store(home / "prefect_like.db") as store:
            failed = store.list_task_runs(sweep_id, state="failed", limit=1)[0]["id"]
        shots = [
            ("dashboard-flow-runs.png", "#/", "[data-testid=flow-runs] tbody tr"),
            (
                "dashboard-flow-run.png",
                f"#/flow-runs/{sweep_id}?order=result.loss",
                "[data-testid=task-runs] tbody tr[data-id]",
            ),
            ("dashboard-task-run.png", f"#/task-runs/{failed}", ".traceback"),
            (
                "dashboard-sweep.png",
                f"#/flow-runs/{sweep_id}/sweep?task=train",
                "[data-testid=plot-parallel] path.pc-line",
            ),
        ]
        written = []
        with running_server(home) as server, chromium() as browser:
            page = browser.new_page(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
            for name, route, ready in shots:
                page.goto(server + route)
                page.wait_for_selector(ready)
                path = IMAGES / name
                page.screenshot(path=str(path))
                written.append(path)
            page.close()
            # The same sweep view in a dark system theme.
            dark = browser.new_page(viewport={"width": 1360, "height": 1000}, color_scheme="dark")
            dark.goto(server + f"#/flow-runs/{sweep_id}/sweep?task=train")
            dark.wait_for_selector("[data-testid=plot-parallel] path.pc-line")
            path = IMAGES / "dashboard-sweep-dark.png"
            dark.screenshot(path=str(path))
            written.append(path)
            dark.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="warm page loads to time")
    parser.add_argument(
        "--screenshots", action="store_true", help="write docs/images/dashboard-*.png"
    )
    args = parser.parse_args()
    if args.screenshots:
        for path in screenshots():
            print(f"wrote {path.relative_to(ROOT)}")
        return
    print(json.dumps(benchmark(args.tasks, args.repeat), indent=2))


if __name__ == "__main__":
    main()
