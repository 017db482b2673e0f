"""Trials in MLflow and TensorBoard, read back with their own readers.

The cases follow Optuna's integration tests (optuna-integration's ``tests/mlflow/test_mlflow.py``
and ``tests/tensorboard/test_tensorboard.py``): one MLflow run per trial in an experiment named
after the study, the trial's parameters as params, its value as a metric and its state as a tag;
one TensorBoard run per trial with its parameters and metric in the HParams plugin.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from prefect_like import sweep
from prefect_like.search.integrations import (
    MLflowCallback,
    TensorBoardCallback,
    log_to_mlflow,
    log_to_tensorboard,
)


def _need(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        reason = f"{module} is not installed (pip install -e '.[{extra}]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; the integration tests must run on CI", pytrace=False)
        pytest.skip(reason)


def learn(lr: float, epochs: int = 4) -> dict[str, float]:
    loss = 1.0
    for epoch in range(1, epochs + 1):
        loss = lr / epoch
        sweep.report(step=epoch, loss=loss)
    if lr > 0.8:
        raise ValueError("diverged")
    return {"loss": loss, "accuracy": 1 - loss}


SPACE = sweep.grid(lr=[0.1, 0.5, 0.9])


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    _need("mlflow", "mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a local file store
    return (tmp_path / "mlruns").as_uri()


def _runs(uri: str, experiment: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    return {run.data.tags["trial"]: (run, client) for run in runs}


def test_the_mlflow_callback_logs_each_trial_with_params_metrics_curve_and_state(mlflow_uri: str) -> None:
    found = sweep.optimize(learn, SPACE, metric="loss", sampler="grid", name="lr-grid", max_concurrent=2,
                           callbacks=[MLflowCallback(tracking_uri=mlflow_uri, metrics="loss")])

    runs = _runs(mlflow_uri, "lr-grid")
    assert sorted(runs) == ["0", "1", "2"]
    for trial in found.trials:
        run, client = runs[str(trial.number)]
        assert run.data.params["lr"] == str(trial.params["lr"])
        assert run.data.tags["task_run_id"] == trial.task_run_id
        assert run.data.tags["sweep"] == "lr-grid"
        history = client.get_metric_history(run.info.run_id, "loss")
        steps, values = [m.step for m in history], [m.value for m in history]
        curve = [trial.params["lr"] / epoch for epoch in range(1, 5)]
        if trial.completed:
            assert run.info.status == "FINISHED" and run.data.tags["state"] == "Completed"
            assert steps == [1, 2, 3, 4, 5]  # the curve, then the final value one step on
            assert values == pytest.approx(curve + [curve[-1]])
            assert run.data.metrics["accuracy"] == pytest.approx(1 - curve[-1])
        else:
            assert run.info.status == "FAILED" and run.data.tags["state"] == "Failed"
            assert steps == [1, 2, 3, 4] and values == pytest.approx(curve)  # reported before it failed


def test_log_to_mlflow_exports_a_finished_search_into_a_named_experiment(mlflow_uri: str) -> None:
    found = sweep.optimize(learn, SPACE, metric="loss", sampler="grid", name="exported")

    run_ids = log_to_mlflow(found, tracking_uri=mlflow_uri, experiment="from-prefect-like")

    runs = _runs(mlflow_uri, "from-prefect-like")
    assert len(run_ids) == 3 and {run.info.run_id for run, _ in runs.values()} == set(run_ids)
    best = runs[str(found.best.number)][0]
    assert best.data.metrics["loss"] == pytest.approx(found.best.value)
    assert best.data.params["lr"] == "0.1"


def _tensorboard_events(directory: Path) -> list[Any]:
    """The events of every event file under ``directory``, parsed from TFRecord framing
    (length, its CRC, the record, its CRC) with tensorboardX's own Event protobuf."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack_from("<Q", data, at)
            record = data[at + 12:at + 12 + length]
            events.append(Event.FromString(record))
            at += 12 + length + 4
    return events


def test_the_tensorboard_callback_writes_a_run_per_trial_with_its_curve_and_hparams(tmp_path: Path) -> None:
    _need("tensorboardX", "tensorboard")
    log_dir = tmp_path / "tb"
    found = sweep.optimize(learn, SPACE, metric="loss", sampler="grid",
                           callbacks=[TensorBoardCallback(log_dir, metrics="loss")])

    assert sorted(p.name for p in log_dir.iterdir()) == ["trial-0", "trial-1", "trial-2"]
    for trial in found.trials:
        events = _tensorboard_events(log_dir / f"trial-{trial.number}")
        scalars = [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value
                   if v.HasField("simple_value")]
        curve = [(step, "loss", pytest.approx(trial.params["lr"] / step)) for step in range(1, 5)]
        assert [s for s in scalars if s[1] == "loss"] == curve
        plugins = {v.metadata.plugin_data.plugin_name for e in events for v in e.summary.value}
        assert "hparams" in plugins  # the HParams tab lists the trial with its lr
        finals = {tag: value for _, tag, value in scalars if tag.startswith("final/")}
        if trial.completed:
            assert finals["final/loss"] == pytest.approx(trial.value)
        else:
            assert finals == {}


def test_log_to_tensorboard_returns_the_run_directories_in_trial_order(tmp_path: Path) -> None:
    _need("tensorboardX", "tensorboard")
    found = sweep.optimize(learn, SPACE, metric="loss", sampler="grid")

    written = log_to_tensorboard(found, tmp_path / "tb")

    assert [p.name for p in written] == ["trial-0", "trial-1", "trial-2"]
    assert all(_tensorboard_events(p) for p in written)
