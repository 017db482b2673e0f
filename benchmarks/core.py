"""The in-process runners against their raw baselines: now rows of the suite (``python -m benchmarks``).

    python -m benchmarks.core --tasks 200000            # thread runner vs ThreadPoolExecutor
    python -m benchmarks.core --tasks 10000 --all       # every in-process runner

Kept as a shortcut; the measurement is the suite's (``benchmarks.__main__``), one code for it.
"""

from __future__ import annotations

import argparse

from benchmarks.__main__ import main as suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--all", action="store_true", help="every in-process runner, not only thread")
    args = parser.parse_args(argv)
    runners = "sequential,thread,asyncio" if args.all else "thread"
    suite(["--full", "--tasks", str(args.tasks), "--workloads", "trivial-map", "--runners", runners])


if __name__ == "__main__":
    main()
