"""The benchmark suite at a tiny size, so it cannot rot, and ``prefect-like bench``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from prefect_like.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_suite_runs_every_workload_tracked_next_to_its_baseline(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")])}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--tasks", "200", "--runners", "thread",
         "--output", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    rows = result["rows"]
    assert {r["workload"] for r in rows} == {
        "trivial-map", "chain", "diamond", "sleep-10ms", "cpu-10ms", "big-results", "retries", "cache-hits"}
    assert {r["tracking"] for r in rows} == {"embedded", "server"}
    for r in rows:
        assert r["baseline"] == "raw-thread"
        assert r["recorded_min"] == r["expected"], r  # every task run stored when the flow returned
        assert r["wall_s"] > 0 and r["peak_rss_mb"] > 0
    assert "| thread | embedded | 200 | raw-thread |" in out.stdout
    assert "### Targets" in next(tmp_path.glob("bench-*.md")).read_text()


def test_bench_command_reports_throughput_against_the_raw_engine() -> None:
    result = CliRunner().invoke(cli, ["bench", "--tasks", "200"])
    assert result.exit_code == 0, result.output
    assert "200 of 200 task runs recorded" in result.output
    assert "raw ThreadPoolExecutor" in result.output
    assert "overhead per task" in result.output


def test_bench_command_rejects_an_unknown_runner() -> None:
    result = CliRunner().invoke(cli, ["bench", "--runner", "nope", "--tasks", "10"])
    assert result.exit_code != 0
    assert "nope" in result.output


def test_the_search_benchmark_stores_every_reported_point_next_to_its_baselines() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")])}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.search", "--cases", "reports,tpe", "--scale", "0.002"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0 and "failed" not in out.stderr, out.stderr[-3000:]
    rows = {(r["case"], r["side"]): r for r in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == {("reports", "plain"), ("reports", "reports"), ("tpe", "optuna"), ("tpe", "runner")}
    assert rows[("reports", "reports")]["metric_points_stored"] == 10 * rows[("reports", "reports")]["trials"]
    assert rows[("reports", "plain")]["metric_points_stored"] == 0
    assert all(r["completed"] == r["trials"] for k, r in rows.items() if k[0] == "reports")
    assert rows[("tpe", "runner")]["trials"] == rows[("tpe", "optuna")]["trials"] == 20
