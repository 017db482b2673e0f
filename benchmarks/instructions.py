"""Instructions per task run, counted by callgrind: a measure the shared machine's noise cannot move.

    python -m benchmarks.instructions                          # sequential, thread, asyncio + baselines
    python -m benchmarks.instructions --runners thread --tasks 20000
    python -m benchmarks.instructions --no-baselines --runners sequential

Wall-clock times on a few shared cores swing by 2x from one run to the next; the number of
instructions a run executes hardly moves. For each runner this runs a flow mapping ``x + 1``
over ``range(n)`` (the suite's ``trivial-map``: every run tracked and stored in the embedded
SQLite store when the call returns) under ``valgrind --tool=callgrind``, once with ``--tasks``
and once with a tenth of it, and prints the difference divided by the difference in tasks: the
cost of one more task run, with the process's start, imports and the flow run's fixed cost
cancelled out; the main thread's share (submission, and on the sequential runner the runs
themselves) is shown apart. Every thread of the flow process is counted (pool workers, the Recorder and
its sender). The store's writer process takes every batch, so what is counted does not depend
on batch sizes: it is the flow process's work, what competes for its GIL; with
``--store-inline`` the writer process is off and the SQLite writes are counted too. The raw baselines (a plain loop, ``ThreadPoolExecutor``,
``asyncio.gather``) are measured the same way, so the ratio is the framework's cost in
instructions against the same calls made without it.

Instructions are not time: cache misses, the GIL handing over between threads and the writer
running on another core are not in them. They say whether a change made the hot path do less.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ("sequential", "thread", "asyncio")
BASELINE = {"sequential": "raw-loop", "thread": "raw-thread", "asyncio": "raw-asyncio"}


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    return x + 1


def run_once(runner: str, n: int) -> int:
    """The body measured under callgrind: one trivial map of ``n`` on ``runner`` (or a baseline)."""
    if runner == "raw-loop":
        return sum([inc(i) for i in range(n)])
    if runner == "raw-thread":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
            futures = [pool.submit(inc, i) for i in range(n)]
            return sum(f.result() for f in futures)
    if runner == "raw-asyncio":
        import asyncio

        async def gather() -> list[int]:
            return await asyncio.gather(*(ainc(i) for i in range(n)))

        return sum(asyncio.run(gather()))

    from prefect_like import flow, task

    mapped = task(ainc if runner == "asyncio" else inc)

    @flow(name="instructions", task_runner=runner)
    def sweep(n: int) -> int:
        return sum(mapped.map(range(n)).result())

    return sweep(n)


def count(runner: str, n: int, home: Path, store_inline: bool) -> tuple[int, int]:
    """Instructions of a process running ``run_once(runner, n)``: all its threads, and its main thread."""
    out = home / f"callgrind.{runner}.{n}.out"
    writer = (
        {"PREFECT_LIKE_WRITER_PROCESS": "0"}
        if store_inline
        else {"PREFECT_LIKE_WRITER_PROCESS_THRESHOLD": "1"}
    )
    # Under callgrind a run takes some 50 times as long, so the Recorder's 0.2 s would see batches
    # 50 times smaller than a real run's, and fold far fewer of a run's events into its last one.
    env = {
        "PREFECT_LIKE_RECORDER_INTERVAL": "10",
        **os.environ,
        "PREFECT_LIKE_HOME": str(home / runner),
        "PYTHONPATH": str(ROOT),
        **writer,
    }
    env.pop("PREFECT_LIKE_API_URL", None)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        runner,
        str(n),
    ]
    subprocess.run(
        command, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    totals = {}
    for part in home.glob(f"{out.name}-*"):  # one file per thread: -01 is the main thread
        match = re.search(r"^(?:summary|totals): (\d+)", part.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no instruction total in {part}")
        totals[part.name.rsplit("-", 1)[1]] = int(match.group(1))
        part.unlink()
    return sum(totals.values()), totals["01"]


def per_task(
    runner: str, n: int, home: Path, store_inline: bool, repeat: int
) -> tuple[float, float]:
    """Instructions of one more task run: all threads, and the main thread (medians of ``repeat``)."""
    small = max(1, n // 10)
    rounds = []
    for _ in range(repeat):
        (big_all, big_main) = count(runner, n, home, store_inline)
        (small_all, small_main) = count(runner, small, home, store_inline)
        rounds.append(((big_all - small_all) / (n - small), (big_main - small_main) / (n - small)))
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--no-baselines", action="store_true", help="only the tracked runners")
    parser.add_argument("--store-inline", action="store_true", help="count the SQLite writes too")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds, medians shown (threads move by ~8%% a round)"
    )
    parser.add_argument("--child", nargs=2, metavar=("RUNNER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_once(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    if args.tasks < 20:
        sys.exit(f"--tasks must be at least 20, got {args.tasks}")
    if args.repeat < 1:
        sys.exit(f"--repeat must be at least 1, got {args.repeat}")
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = sorted(set(runners) - set(RUNNERS))
    if unknown:
        sys.exit(f"unknown runners: {', '.join(unknown)} (choose from {', '.join(RUNNERS)})")
    print(
        f"instructions per task run, {args.tasks:,} trivial tasks (callgrind): all threads (main thread)"
    )
    with tempfile.TemporaryDirectory(prefix="prefect-like-instructions-") as tmp:
        for runner in runners:
            ours, main_thread = per_task(
                runner, args.tasks, Path(tmp), args.store_inline, args.repeat
            )
            line = f"{runner:>10}: {ours:>9,.0f} ({main_thread:,.0f})"
            if not args.no_baselines:
                raw, _ = per_task(
                    BASELINE[runner], args.tasks, Path(tmp), args.store_inline, args.repeat
                )
                line += f"   {BASELINE[runner]}: {raw:>7,.0f}   ratio {ours / raw:.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
