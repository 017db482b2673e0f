"""Every file in examples/ runs as it stands, at a tiny size, and ends with its summary.

Each example runs in a subprocess of its own, from a neutral working directory, with its own
PREFECT_LIKE_HOME (so it writes a fresh store) and PYTHONPATH naming the repository root and
runners/, as a user who cloned the repository would have it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# The arguments that make each example tiny. A new example without an entry fails
# test_every_example_is_smoke_tested, so none goes untested.
TINY: dict[str, list[str]] = {
    "quickstart_sweep.py": ["--trials-per-setting", "1", "--runner", "sequential"],
    "sklearn_grid_search.py": ["--values", "2", "--samples", "200", "--folds", "2"],
    "async_io_sweep.py": ["--trials", "30", "--latency", "0.001"],
    "adaptive_search.py": ["--configs", "9", "--max-budget", "9", "--parallel", "2"],
    "flaky_trials.py": ["--trials", "20", "--flaky", "0.3"],
    "dask_random_search.py": ["--trials", "6"],
    "ray_parameter_scan.py": ["--points", "3"],
    "search_digits_tpe_asha.py": ["--trials", "4", "--epochs", "3"],
    "search_random_median.py": ["--trials", "8", "--steps", "6"],
    "search_grid_hyperband.py": ["--epochs", "3", "--parallel", "2"],
}
SLOW = {"dask_random_search.py", "ray_parameter_scan.py"}  # start a cluster


def test_every_example_is_smoke_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(p for p in TINY if (EXAMPLES / p).exists())


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else []) for name in TINY],
)
def test_example_runs_small(name: str, tmp_path: Path) -> None:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{name} is not written yet")
    if name in SLOW:
        pytest.importorskip("distributed" if name.startswith("dask") else "ray")
    env = {
        **os.environ,
        "PREFECT_LIKE_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")]),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_LIKE_API_URL", None)
    done = subprocess.run(
        [sys.executable, str(path), *TINY[name]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "flow run" in done.stdout.lower(), output[-4000:]  # the closing summary names the run
    assert (tmp_path / "home" / "prefect_like.db").exists()
