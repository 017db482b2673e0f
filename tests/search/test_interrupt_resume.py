"""A search interrupted with Ctrl-C says how to resume it, and `prefect-like sweeps resume` does:
the completed trials are not run again, the interrupted one is, and the budget is finished."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import sys
import time
from pathlib import Path

from prefect_like import sweep, task


@task
def trial(x: float, marks: str, release: str) -> dict:
    with open(marks, "a") as f:
        f.write(f"{x!r}\\n")
    if len(Path(marks).read_text().split()) >= 4:  # the 4th trial runs until the test releases it
        deadline = time.monotonic() + 60
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"loss": (x - 0.5) ** 2}


if __name__ == "__main__":
    sweep.optimize(trial, sweep.Space(x=sweep.uniform(0, 1)), n_trials=6, seed=2, max_concurrent=1,
                   name="interrupted", marks=sys.argv[1], release=sys.argv[2])
'''


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_sweeps_resume_finishes_the_search(tmp_path: Path, prefect_like_home: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    marks, release = tmp_path / "marks", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")]),
           "PREFECT_LIKE_HOME": str(prefect_like_home)}
    env.pop("PREFECT_LIKE_API_URL", None)
    proc = subprocess.Popen([sys.executable, str(script), str(marks), str(release)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: marks.exists() and len(marks.read_text().split()) >= 4, 60, "the 4th trial to start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (130, -signal.SIGINT), err[-3000:]  # as Python exits on Ctrl-C
    found = re.search(r"`prefect-like sweeps resume ([0-9a-f]{32})` continues the search", err)
    assert found, err[-3000:]
    assert "CANCELLED" in err
    sweep_id = found.group(1)
    first = [float(x) for x in marks.read_text().split()]
    assert len(first) == 4

    cli = [sys.executable, "-c", "from prefect_like.cli import main; main()"]
    resumed = subprocess.run([*cli, "sweeps", "resume", sweep_id[:8]], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "6 trials, 6 completed" in resumed.stdout
    again = [float(x) for x in marks.read_text().split()][4:]
    assert again[0] == first[3]  # the interrupted trial, run again with its own point
    assert len(again) == 3 and not set(again) & set(first[:3])  # the completed ones were not

    shown = subprocess.run([*cli, "sweeps", "show", "interrupted", "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    stored = json.loads(shown.stdout)
    assert [r["state_name"] for r in stored["runs"]] == ["Cancelled", "Completed"]
    assert [t["name"] for t in stored["trials"]] == [f"trial-{i}" for i in range(6)]
    assert {t["state_name"] for t in stored["trials"]} == {"Completed"}
