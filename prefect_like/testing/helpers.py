"""Small helpers for the conformance tests; tasks call them on any worker (the package is importable)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import prefect_like

# The directory prefect_like is imported from (a checkout or site-packages): a subprocess started
# with it on PYTHONPATH imports the same prefect_like as the tests.
REPO_ROOT = Path(prefect_like.__file__).resolve().parents[1]
PYTHON = sys.executable


def mark_call(path: str, line: str = "x") -> None:
    """Append one line to ``path``: how a task counts its calls across threads and processes."""
    with open(path, "a") as f:
        f.write(f"{line}\n")


def count_lines(path: str | Path) -> int:
    """How many lines were appended to ``path`` (0 if nothing ran)."""
    return len(read_lines(path))


def read_lines(path: str | Path) -> list[str]:
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


def wait_for_file(path: str | Path, timeout: float) -> bool:
    """Poll until ``path`` exists or ``timeout`` seconds pass; whether it appeared.

    How a task stands for long-running work: it waits for a file the test never writes (or
    writes to let it go), bounded so that nothing hangs forever.
    """
    deadline = time.monotonic() + timeout
    path = Path(path)
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_until(condition, timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
