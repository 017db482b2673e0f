"""``python -m prefect_like.server [--host H] [--port P] [--home DIR]``: the server without the CLI."""

from __future__ import annotations

import argparse
import sys

from prefect_like.errors import MissingEngineError, TrackingError
from prefect_like.server import DEFAULT_HOST, DEFAULT_PORT, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefect_like.server", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--home", default=None, help="the directory holding the store (PREFECT_LIKE_HOME)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL stores only)")
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.home, args.log_level, workers=args.workers)
    except (ValueError, MissingEngineError, TrackingError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
