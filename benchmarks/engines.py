"""The Dask and Ray runners against their raw engines: now rows of the suite (``python -m benchmarks``).

    python -m benchmarks.engines --tasks 20000

Trivial tasks (raw ``client.map`` / ``.remote`` against the runner on the same 2-worker local
cluster) and 10 ms sleeps for parallel efficiency, each side in a fresh process, every tracked
run checked to be fully recorded. Kept as a shortcut; the measurement is the suite's.
"""

from __future__ import annotations

import argparse

from benchmarks.__main__ import main as suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="trivial tasks per measurement")
    parser.add_argument("--engines", default="dask,ray")
    args = parser.parse_args(argv)
    suite(["--full", "--tasks", str(args.tasks), "--workloads", "trivial-map,sleep-10ms", "--runners", args.engines,
           "--modes", "embedded"])


if __name__ == "__main__":
    main()
