"""The prefect-like CLI, as a user runs it against the embedded store under PREFECT_LIKE_HOME."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefect_like import settings
from prefect_like.cli import cli
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store

T0 = 1_700_000_000.0
FLOW_ID = "c0ffee00-0000-4000-8000-000000000001"


def tid(i: int) -> str:
    return f"7a5c{i:04d}-0000-4000-8000-000000000000"


def record_sweep(n: int = 6, failed: tuple[int, ...] = (2,)) -> None:
    """A finished flow run of ``n`` task runs, written straight into the store the CLI reads."""
    events = [
        Event("flow", FLOW_ID, 0, None, T0, "RUNNING", "Running", None,
              {"name": "brave-otter", "flow_name": "sweep", "parameters": {"n": n},
               "parent_task_run_id": None, "runner": "thread"}),
        Event("log", FLOW_ID, 0, None, T0 + 0.5, None, "INFO", "sweep starting",
              {"level": 20, "logger": "prefect_like.flow"}),
    ]
    for i in range(n):
        ts = T0 + 1 + i
        ok = i not in failed
        events += [
            Event("task", tid(i), 0, FLOW_ID, ts, "PENDING", "Pending", None,
                  {"task_name": "train", "map_index": i, "name": f"train-{i}", "tags": []}),
            Event("task", tid(i), 1, FLOW_ID, ts + 0.1, "RUNNING", "Running", None, {"run_count": 1}),
            Event("task", tid(i), 2, FLOW_ID, ts + 1, "COMPLETED" if ok else "FAILED",
                  "Completed" if ok else "Failed", None if ok else f"ValueError: lr too big ({i})",
                  {"parameters": {"lr": 0.01 * (i + 1), "depth": 3},
                   "result": {"loss": 1.0 / (i + 1)} if ok else None, "run_count": 1,
                   "error": None if ok else {"type": "ValueError", "message": f"lr too big ({i})",
                                             "traceback": "Traceback (most recent call last):\n..."}}),
            Event("log", tid(i), 0, FLOW_ID, ts + 0.2, None, "INFO", f"training {i}",
                  {"level": 20, "logger": "prefect_like.task"}),
        ]
    events.append(Event("flow", FLOW_ID, 1, None, T0 + n + 2, "FAILED", "Failed",
                        f"{len(failed)} task run(s) failed",
                        {"task_runs": {"Completed": n - len(failed), "Failed": len(failed)},
                         "error": None, "duration": n + 2.0}))
    with Store(settings.database_path()) as store:
        store.write(events)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_runs_ls_without_a_database_says_no_runs_yet(runner: CliRunner) -> None:
    result = invoke(runner, "runs", "ls")
    assert result.exit_code == 0
    assert "no runs yet" in result.output
    assert json.loads(invoke(runner, "runs", "ls", "--json").stdout) == []


def test_runs_ls_shows_the_flow_run(runner: CliRunner) -> None:
    record_sweep()
    result = invoke(runner, "runs", "ls")
    assert result.exit_code == 0
    assert FLOW_ID in result.output and "brave-otter" in result.output
    assert "Failed" in result.output and "1 Failed, 5 Completed" in result.output


def test_runs_ls_json_is_a_list_of_flow_runs_and_nothing_else(runner: CliRunner) -> None:
    record_sweep()
    result = invoke(runner, "runs", "ls", "--json", "--state", "failed", "--flow", "sweep")
    runs = json.loads(result.stdout)
    assert [r["id"] for r in runs] == [FLOW_ID]
    assert set(runs[0]) >= {"id", "name", "flow_name", "state", "state_name", "start_time",
                            "end_time", "duration", "parameters", "task_runs"}
    assert runs[0]["state"] == "FAILED" and runs[0]["task_runs"] == {"Completed": 5, "Failed": 1}
    assert json.loads(invoke(runner, "runs", "ls", "--json", "--state", "completed").stdout) == []


def test_runs_show_a_flow_run_lists_its_failures(runner: CliRunner) -> None:
    record_sweep(failed=(2, 4))
    result = invoke(runner, "runs", "show", FLOW_ID[:8])
    assert result.exit_code == 0
    assert "brave-otter" in result.output and "2 Failed, 4 Completed" in result.output
    assert "lr too big (2)" in result.output and "lr too big (4)" in result.output

    shown = json.loads(invoke(runner, "runs", "show", FLOW_ID, "--json").stdout)
    assert shown["id"] == FLOW_ID and shown["task_runs"] == {"Completed": 4, "Failed": 2}
    assert [t["map_index"] for t in shown["failed_task_runs"]] == [2, 4]
    assert shown["failed_task_runs"][0]["error"]["type"] == "ValueError"


def test_runs_show_a_task_run_with_its_history(runner: CliRunner) -> None:
    record_sweep()
    result = invoke(runner, "runs", "show", tid(2)[:8])
    assert result.exit_code == 0
    assert "ValueError" in result.output and "Traceback" in result.output
    shown = json.loads(invoke(runner, "runs", "show", tid(2), "--json").stdout)
    assert shown["id"] == tid(2) and shown["flow_run_id"] == FLOW_ID
    assert [s["state_name"] for s in shown["states"]] == ["Pending", "Running", "Failed"]


def test_runs_tasks_filters_sorts_and_pages(runner: CliRunner) -> None:
    record_sweep()
    result = invoke(runner, "runs", "tasks", FLOW_ID, "--limit", "3")
    assert result.exit_code == 0
    assert "train" in result.output and "lr=0.01" in result.output
    assert "showing 1-3 of 6" in result.output

    rows = json.loads(invoke(runner, "runs", "tasks", FLOW_ID, "--json", "--order-by", "-result.loss").stdout)
    assert [r["map_index"] for r in rows] == [0, 1, 3, 4, 5, 2]
    assert set(rows[0]) >= {"id", "flow_run_id", "task_name", "name", "map_index", "state",
                            "state_name", "message", "run_count", "parameters", "result", "error",
                            "created", "start_time", "end_time", "duration"}
    failed = json.loads(invoke(runner, "runs", "tasks", FLOW_ID, "--json", "--state", "FAILED").stdout)
    assert [r["id"] for r in failed] == [tid(2)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nope-nope"], "Error: no flow run or task run with id 'nope-nope'"),
        (["runs", "tasks", "deadbeef"], "Error: no flow run with id 'deadbeef'"),
        (["runs", "logs", "deadbeef"], "Error: no flow run or task run with id 'deadbeef'"),
        (["runs", "tasks", FLOW_ID, "--state", "finished"], "Error: unknown state 'finished'"),
        (["runs", "ls", "--state", "finished"], "Error: unknown state 'finished'"),
        (["runs", "tasks", FLOW_ID, "--order-by", "loss"], "Error: unknown order_by key 'loss'"),
        (["runs", "tasks", FLOW_ID, "--order-by", "result.a;drop"], "Error: invalid result key"),
        (["runs", "show", "7a5c"], "Error: id prefix '7a5c' is ambiguous"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_1(
    runner: CliRunner, args: list[str], message: str
) -> None:
    record_sweep()
    result = invoke(runner, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_runs_logs_of_a_flow_run_include_its_task_runs(runner: CliRunner) -> None:
    record_sweep(n=2)
    result = invoke(runner, "runs", "logs", FLOW_ID)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert "sweep starting" in lines[0] and "training 0" in lines[1] and "training 1" in lines[2]
    task_lines = json.loads(invoke(runner, "runs", "logs", tid(1), "--json").stdout)
    assert [x["message"] for x in task_lines] == ["training 1"]


def test_importing_the_cli_stays_light() -> None:
    code = (
        "import sys, prefect_like.cli; "
        "heavy = {'pyarrow', 'fastapi', 'dask', 'ray', 'rich', 'pandas'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    root = str(Path(__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={"PYTHONPATH": root, "PATH": ""}, check=True).stdout
    assert out.strip() == "[]"
