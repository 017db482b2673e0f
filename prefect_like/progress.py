"""A live progress view of one flow run, read from the tracker (embedded store or server).

Used by ``prefect-like runs watch ID`` and ``prefect-like run FILE.py:FLOW``. Every
``interval`` seconds it reads the flow run and its task run counts (two indexed queries, or two
requests, whatever the run's size) and shows done / failed / running / pending, the rate in
task runs per second over the last few reads, and the time left at that rate. The total is the
task runs the tracker knows of: a map submits in bounded chunks, so it grows as the run goes.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefect_like.errors import RunNotFoundError
from prefect_like.states import DONE_NAMES, FAILURE_NAMES, NAMES, is_final

if TYPE_CHECKING:
    from rich.console import Console

    from prefect_like.client import Reader

_RUNNING_NAMES = frozenset(n for n, t in NAMES.items() if t == "RUNNING")


def tally(counts: dict[str, int]) -> dict[str, int]:
    """Task run counts by state name as ``done / failed / running / pending / total``."""
    done = sum(counts.get(n, 0) for n in DONE_NAMES)
    failed = sum(counts.get(n, 0) for n in FAILURE_NAMES)
    running = sum(counts.get(n, 0) for n in _RUNNING_NAMES)
    total = sum(counts.values())
    return {"done": done, "failed": failed, "running": running,
            "pending": total - done - failed - running, "total": total}


def is_over(run: dict[str, Any]) -> bool:
    return is_final(run.get("state"), run.get("state_name"))


class Rate:
    """Finished task runs per second over a sliding window of readings."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self.readings: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, finished: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        self.readings.append((now, finished))
        while len(self.readings) > 2 and now - self.readings[0][0] > self.window:
            self.readings.popleft()
        (t0, n0), (t1, n1) = self.readings[0], self.readings[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def describe(t: dict[str, int], rate: float | None) -> str:
    left = t["total"] - t["done"] - t["failed"]
    eta = ""
    if rate:
        seconds = int(left / rate)
        eta = f" · {seconds // 60}m{seconds % 60:02d}s left" if left else ""
    rate_text = f" · {rate:,.0f} tasks/s" if rate is not None else ""
    return (
        f"[green]{t['done']:,} done[/] · [red]{t['failed']:,} failed[/] · "
        f"[cyan]{t['running']:,} running[/] · {t['pending']:,} pending{rate_text}{eta}"
    )


def watch(
    reader: Reader,
    flow_run_id: str,
    *,
    console: Console | None = None,
    interval: float = 0.5,
    stop: Callable[[], bool] | None = None,
    wait_for_run: float = 0.0,
) -> dict[str, Any]:
    """Show the flow run's progress until it ends (or ``stop()`` is true); its final dict.

    ``wait_for_run``: seconds to wait for the run to reach the tracker before giving up.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    deadline = time.monotonic() + wait_for_run
    while True:
        try:
            run = reader.get_flow_run(flow_run_id)
            break
        except RunNotFoundError:
            if time.monotonic() >= deadline or (stop is not None and stop()):
                raise
            time.sleep(min(interval, 0.2))  # polling the tracker, up to the deadline
    rate = Rate()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
        console=console, transient=False, refresh_per_second=4,
    )
    bar = progress.add_task(run.get("name") or run["id"][:8], total=None, counts="")
    with progress:
        while True:
            finished_stopping = stop is not None and stop()
            run = reader.get_flow_run(run["id"])
            counts = reader.task_run_counts(run["id"])
            t = tally(counts)
            per_second = rate.add(t["done"] + t["failed"])
            progress.update(bar, total=max(t["total"], 1), completed=t["done"] + t["failed"],
                            counts=describe(t, per_second))
            if is_over(run) or finished_stopping:
                break
            time.sleep(interval)  # the refresh period of the view, not a synchronisation
    return run
