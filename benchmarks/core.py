"""The in-process runners against their raw baselines, measured in the same run.

    python -m benchmarks.core --tasks 200000            # thread runner vs ThreadPoolExecutor
    python -m benchmarks.core --tasks 10000 --all       # every in-process runner

Each pair (raw, tracked) is measured in fresh processes, alternating, ``--repeat`` times; the
ratio is tracked wall time over raw wall time from the same round.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import run_isolated

PAIRS = {"thread": "raw-thread", "sequential": "raw-loop", "asyncio": "raw-asyncio"}


def compare(runner: str, n: int, repeat: int) -> dict[str, Any]:
    raws, ours = [], []
    for _ in range(repeat):
        raws.append(run_isolated("trivial-map", PAIRS[runner], n))
        ours.append(run_isolated("trivial-map", runner, n))
    ratios = [o["wall_s"] / r["wall_s"] for o, r in zip(ours, raws, strict=True)]
    best = min(ours, key=lambda m: m["wall_s"])
    raw_best = min(raws, key=lambda m: m["wall_s"])
    return {
        "runner": runner,
        "baseline": PAIRS[runner],
        "tasks": n,
        "raw_wall_s": raw_best["wall_s"],
        "wall_s": best["wall_s"],
        "tasks_per_s": best["tasks_per_s"],
        "ratio_median": round(statistics.median(ratios), 2),
        "overhead_us_per_task": round((best["wall_s"] - raw_best["wall_s"]) / n * 1e6, 1),
        "peak_rss_mb": round(best["peak_rss_bytes"] / 2**20, 1),
        "raw_peak_rss_mb": round(raw_best["peak_rss_bytes"] / 2**20, 1),
        "bytes_per_task_run": round((best["peak_rss_bytes"] - raw_best["peak_rss_bytes"]) / n),
        "recorded_task_runs": best.get("recorded_task_runs"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| runner | tasks | raw baseline | raw wall (s) | tracked wall (s) | ratio (median) | tasks/s | overhead µs/task | peak RSS MB (raw) | recorded |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['runner']} | {r['tasks']:,} | {r['baseline']} | {r['raw_wall_s']:.2f} | {r['wall_s']:.2f} | "
            f"{r['ratio_median']:.2f}x | {r['tasks_per_s']:,.0f} | {r['overhead_us_per_task']} | "
            f"{r['peak_rss_mb']} ({r['raw_peak_rss_mb']}) | {r['recorded_task_runs']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="every in-process runner, not only thread")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    runners = list(PAIRS) if args.all else ["thread"]
    rows = [compare(runner, args.tasks, args.repeat) for runner in runners]
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.output / f"core-{stamp}.json").write_text(
        json.dumps({"machine": platform.platform(), "python": platform.python_version(), "rows": rows}, indent=2)
    )
    print(table(rows))


if __name__ == "__main__":
    main()
