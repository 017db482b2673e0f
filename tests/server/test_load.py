"""Several flow processes streaming to one server at once: every task run stored, exactly once
(``python -m benchmarks.load`` runs the full 20 × 10,000 and reports latency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import run_load


@pytest.mark.slow
def test_four_flows_streaming_at_once_lose_nothing(tmp_path: Path) -> None:
    report = run_load(flows=4, tasks=2000, home=tmp_path)
    assert report["task_runs_stored"] == 8000
    assert report["requests"] > 0 and report["latency_ms"]["p50"] > 0
