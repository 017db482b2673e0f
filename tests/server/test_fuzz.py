"""The API fuzzed from its own OpenAPI document (schemathesis), at a small budget: no 5xx, no
write by a refused request, the server still up. ``python -m benchmarks.fuzz`` runs it longer."""

from __future__ import annotations

from pathlib import Path

from benchmarks.fuzz import fuzz


def test_fuzzing_every_route_gives_no_5xx_and_no_partial_write(tmp_path: Path) -> None:
    report = fuzz(tmp_path / "srv", examples=25)
    assert report["failures"] == 0, report["first_failures"]
    assert report["server_alive"]
    assert report["requests"] >= 14 * 10  # every operation was exercised
    assert any(400 <= status < 500 for status in report["statuses"])  # hostile input was among them
