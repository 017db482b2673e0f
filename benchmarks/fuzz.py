"""Fuzz the tracking API from its own OpenAPI document (schemathesis), and check what it did.

``python -m benchmarks.fuzz [--examples N] [--seconds S]`` runs every operation of the API
in-process (ASGI, so thousands of requests a minute) with ``N`` generated requests each
(default 500), over a store seeded with a real flow run so reads find something. For every
request it checks that:

- the answer is not a 5xx (a crash or an unhandled input is a bug, whatever the input);
- a refused request (4xx) changed nothing: the store's row counts and checksums are the same
  after it as before;
- the server still answers ``/api/health`` at the end.

It prints one JSON line: requests sent, answers by status, failures (first few shown). The
test suite runs the same with a small budget (``tests/server/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_TABLES = {
    "flow_runs": "COUNT(*), TOTAL(seq), TOTAL(LENGTH(state_type))",
    "task_runs": "COUNT(*), TOTAL(seq), TOTAL(LENGTH(state_type))",
    "logs": "COUNT(*), TOTAL(seq)",
}


def fingerprint(app: Any) -> tuple[Any, ...]:
    """What the store holds, in a few numbers: any write changes at least one of them."""
    store = app.state.tracker.reader()
    return tuple(tuple(store._one(f"SELECT {what} FROM {table}")) for table, what in _TABLES.items())


def seed(app: Any) -> str:
    """A small real flow run in the store, so generated ids sometimes meet data."""
    import msgpack
    from starlette.testclient import TestClient

    from tests.server._procs import sweep_events

    flow_id, events = sweep_events(20, fail=(3,))
    with TestClient(app) as client:
        response = client.post("/api/events", content=msgpack.packb(events),
                               headers={"Content-Type": "application/msgpack"})
        assert response.status_code == 200, response.text
    return flow_id


def _register_msgpack(schemathesis: Any) -> None:
    import msgpack

    @schemathesis.serializer("application/msgpack")
    def _msgpack(ctx: Any, value: Any) -> bytes:
        return value if isinstance(value, bytes) else msgpack.packb(value, use_bin_type=True, default=str)


def fuzz(home: Path, examples: int, seconds: float | None = None, seed_data: bool = True) -> dict[str, Any]:
    """Fuzz every operation with ``examples`` generated requests each; a report dict."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase
    from starlette.testclient import TestClient

    from prefect_like.server import create_app

    app = create_app(home, rate_limit=0)  # the limit would answer 429 to most of a fuzz run
    if seed_data:
        seed(app)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    deadline = time.monotonic() + seconds if seconds else None
    _register_msgpack(schemathesis)
    with TestClient(app) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            if deadline is not None and time.monotonic() > deadline:
                break

            @hypothesis.settings(
                max_examples=examples, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
            )
            @hypothesis.given(case=operation.as_strategy())
            def check(case: Any) -> None:
                before = fingerprint(app)
                where = f"{case.method} {case.formatted_path}"
                try:
                    response = case.call()
                except Exception as exc:  # an unhandled error inside the app
                    failures.append(f"{where}: raised {type(exc).__name__}: {exc}")
                    return
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{where}: HTTP {response.status_code}: {response.text[:200]}")
                elif response.status_code >= 400 and fingerprint(app) != before:
                    failures.append(f"{where}: HTTP {response.status_code} yet the store changed")

            check()
        alive = client.get("/api/health").status_code == 200
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "failures": len(failures),
        "first_failures": failures[:5],
        "server_alive": alive,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="generated requests per operation")
    parser.add_argument("--seconds", type=float, default=None, help="stop starting new operations after this")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as home:
        report = fuzz(Path(home), args.examples, args.seconds)
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report))
    return 0 if report["failures"] == 0 and report["server_alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
