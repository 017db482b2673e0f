"""Small helpers shared by the conformance tests; tasks may call them (pickled by value)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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
