"""Task runs as a table: the columns a sweep's analysis needs, from the store or the server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_like import settings
from prefect_like.export import (
    best,
    best_rows,
    export_task_runs,
    flat_row,
    rows_to_table,
    task_runs_frame,
)
from prefect_like.tracking.store import Store
from tests.server._procs import sweep_events


@pytest.fixture
def recorded() -> str:
    flow_id, events = sweep_events(30, fail=(4,))
    with Store(settings.database_path()) as store:
        store.write(events)
    return flow_id


def test_one_row_per_task_run_one_column_per_parameter_and_result_field(recorded: str) -> None:
    frame = task_runs_frame(recorded[:8])
    assert len(frame) == 30
    assert list(frame.columns) == [
        "id", "task_name", "name", "map_index", "state", "state_name", "start_time", "end_time", "duration",
        "run_count", "param.depth", "param.lr", "result.acc", "result.loss", "error_type", "error_message",
    ]
    assert str(frame["start_time"].dtype).startswith("datetime64") and frame["end_time"].notna().all()
    failed = frame[frame["state"] == "FAILED"].iloc[0]
    assert failed["error_type"] == "ValueError" and failed["error_message"] == "bad 4"
    assert pd.isna(failed["result.loss"])
    assert frame["result.loss"].dtype == "float64" and frame["param.depth"].dtype == "int64"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_parquet_or_csv_by_extension(recorded: str, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sweep{suffix}"
    assert export_task_runs(recorded, path) == 30
    frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert len(frame) == 30 and frame.sort_values("result.loss")["result.loss"].iloc[0] == 0.0


def test_an_unknown_extension_fails_before_reading(recorded: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.parquet"):
        export_task_runs(recorded, tmp_path / "sweep.xlsx")


def test_scalar_results_and_mixed_types_still_export() -> None:
    runs = [
        {"id": "a", "parameters": {"x": 1}, "result": 3.5},
        {"id": "b", "parameters": {"x": "one"}, "result": {"nested": {"k": 1}}},
        {"id": "c", "parameters": {"x": [1, 2]}, "result": None, "error": {"type": "E", "message": "m"}},
    ]
    table = rows_to_table(runs)
    assert table.column_names[-5:] == ["param.x", "result", "result.nested.k", "error_type", "error_message"]
    assert table.column("param.x").to_pylist() == ["1", "one", "[1,2]"]
    assert flat_row(runs[0])["result"] == 3.5


def test_best_asks_the_tracker_for_the_top_k(recorded: str) -> None:
    top = best(recorded, 3, "result.loss")
    assert list(top["result.loss"]) == sorted(top["result.loss"]) and len(top) == 3
    highest = best(recorded, 2, "-result.acc")
    assert highest["result.acc"].iloc[0] >= highest["result.acc"].iloc[1]
    frame = task_runs_frame(recorded)
    assert list(best_rows(frame, 3, "result.loss")["id"]) == list(top["id"])
    with pytest.raises(ValueError, match="no column"):
        best_rows(frame, 3, "result.nope")
