"""Trials in MLflow and TensorBoard: callbacks for ``sweep.optimize`` and exports of a finished search.

    from prefect_like import sweep
    from prefect_like.search.integrations import MLflowCallback, TensorBoardCallback, log_to_mlflow

    found = sweep.optimize(train, space, metric="loss", n_trials=50,
                           callbacks=[MLflowCallback(), TensorBoardCallback("runs/lr-search")])
    log_to_mlflow(found)                       # or afterwards, for a search already run

Each trial is one MLflow run (experiment: the search's name unless given) or one TensorBoard run
directory (``<log_dir>/trial-<n>``): its parameters, its final metrics (the search's metric and
every number in its result), its learning curve (what it ``report``-ed, by step), and its state,
trial number and prefect-like run ids as tags. A callback runs on the flow's thread as each trial
ends, as Optuna's ``MLflowCallback`` and ``TensorBoardCallback`` do; with ``curves=True`` (the
default) it first waits for the trial's reports to reach the store, which costs a round trip
per trial. The exports read a stored search whole, so they cost the search nothing.

MLflow comes from ``pip install "prefect-like[mlflow]"`` (mlflow-skinny; full ``mlflow`` works
too), TensorBoard files are written with ``tensorboardX`` (``prefect-like[tensorboard]``) or
PyTorch's ``torch.utils.tensorboard``, whichever is installed: none of them is imported until a
callback or an export is made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_like.errors import MissingEngineError

if TYPE_CHECKING:
    from prefect_like.search.optimize import Search, Trial


def _numbers(values: Mapping[str, Any] | None) -> dict[str, float]:
    """The finite numbers of ``values`` (a result, a report), by name."""
    found: dict[str, float] = {}
    for key, value in (values or {}).items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            found[str(key)] = float(value)
    return found


def _finals(trial: Trial, metrics: Iterable[str]) -> dict[str, float]:
    finals = _numbers(trial.result) if isinstance(trial.result, Mapping) else {}
    values = trial.value if isinstance(trial.value, list) else [trial.value]
    for name, value in zip(metrics, values, strict=False):
        finals.update(_numbers({name: value}))
    return finals


def _params(trial: Trial) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, str, bool)) else repr(v) for k, v in trial.params.items()}


def _tags(trial: Trial) -> dict[str, str]:
    tags = {"trial": str(trial.number), "state": trial.state or "", "sweep": trial.sweep or ""}
    tags.update({k: v for k, v in (("task_run_id", trial.task_run_id), ("flow_run_id", trial.flow_run_id)) if v})
    return tags


def _curves(trials: Iterable[Trial], flush: bool) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """What each trial's task run reported, as (step, metrics) in step order, read from the store:
    one read per task run for a single trial, one per flow run for a whole search."""
    from prefect_like.client import connect

    if flush:
        from prefect_like.tracking.recorder import get_recorder

        recorder = get_recorder()
        recorder.flush(timeout=recorder.final_flush_timeout)  # a tracker that is away costs the curve, not a hang
    trials = [t for t in trials if t.task_run_id]
    curves: dict[str, list[tuple[float, dict[str, float]]]] = {str(t.task_run_id): [] for t in trials}
    if not trials:
        return curves
    with connect() as reader:
        if len(trials) == 1:
            points = reader.metrics(task_run_id=trials[0].task_run_id)
        else:
            flow_runs = dict.fromkeys(t.flow_run_id for t in trials if t.flow_run_id)
            points = [p for flow_run_id in flow_runs for p in reader.metrics(flow_run_id=flow_run_id)]
    for point in points:
        run_id = point.get("task_run_id")
        if run_id in curves and isinstance(point.get("step"), numbers.Real):
            curves[run_id].append((float(point["step"]), _numbers(point.get("metrics"))))
    for points_of_run in curves.values():
        points_of_run.sort(key=lambda p: p[0])
    return curves


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise MissingEngineError("MLflow", "mlflow") from exc
    return mlflow


def _tensorboard() -> tuple[Any, Any]:
    """TensorBoard's ``SummaryWriter`` and its ``hparams`` summary maker, from tensorboardX or PyTorch."""
    try:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter  # type: ignore[no-redef, unused-ignore]
            from torch.utils.tensorboard.summary import hparams  # type: ignore[no-redef, unused-ignore]
        except ImportError as exc:
            raise MissingEngineError("tensorboardX", "tensorboard") from exc
    return SummaryWriter, hparams


class MLflowCallback:
    """Log each trial, as it ends, as one MLflow run (see the module docstring).

    ``tracking_uri`` is MLflow's (None: its own default or ``MLFLOW_TRACKING_URI``);
    ``experiment`` defaults to the search's name; ``metrics`` names the search's metrics, as
    ``optimize(metric=...)`` does (a trial's value is logged under them)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 metrics: str | Iterable[str] = "loss", curves: bool = True) -> None:
        self.mlflow = _mlflow()
        self.tracking_uri, self.experiment, self.curves = tracking_uri, experiment, curves
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)

    def __call__(self, trial: Trial) -> None:
        curve = _curves([trial], flush=True).get(trial.task_run_id or "", []) if self.curves else []
        _log_mlflow_run(self.mlflow, self.tracking_uri, self.experiment or trial.sweep or "prefect-like",
                        trial, _finals(trial, self.metrics), curve)


def _log_mlflow_run(mlflow: Any, uri: str | None, experiment: str, trial: Trial, finals: dict[str, float],
                    curve: list[tuple[float, dict[str, float]]]) -> str:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=f"trial-{trial.number}", tags=_tags(trial))
    run_id = run.info.run_id
    from mlflow.entities import Metric, Param

    params = [Param(k, str(v)) for k, v in _params(trial).items()]
    points = [Metric(k, v, 0, int(step)) for step, values in curve for k, v in values.items()]
    points += [Metric(k, v, 0, int(curve[-1][0]) + 1 if curve else 0) for k, v in finals.items()]
    for start in range(0, max(len(points), len(params), 1), 1000):  # MLflow takes 1,000 per batch
        client.log_batch(run_id, metrics=points[start:start + 1000], params=params[start:start + 100])
    client.set_terminated(run_id, "FINISHED" if trial.completed or trial.state == "Pruned" else "FAILED")
    return str(run_id)


class TensorBoardCallback:
    """Write each trial, as it ends, as one TensorBoard run under ``log_dir`` (``trial-<n>``):
    its learning curve as scalars by step, and its parameters and final metrics in the HParams
    tab (see the module docstring)."""

    def __init__(self, log_dir: str | Path, metrics: str | Iterable[str] = "loss", curves: bool = True) -> None:
        self.tensorboard = _tensorboard()
        self.log_dir, self.curves = Path(log_dir), curves
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)

    def __call__(self, trial: Trial) -> None:
        curve = _curves([trial], flush=True).get(trial.task_run_id or "", []) if self.curves else []
        _write_tensorboard_run(self.tensorboard, self.log_dir, trial, _finals(trial, self.metrics), curve)


def _write_tensorboard_run(tensorboard: tuple[Any, Any], log_dir: Path, trial: Trial, finals: dict[str, float],
                           curve: list[tuple[float, dict[str, float]]]) -> Path:
    writer_class, hparams = tensorboard
    where = log_dir / f"trial-{trial.number}"
    writer = writer_class(log_dir=str(where))
    try:
        for step, values in curve:
            for name, value in values.items():
                writer.add_scalar(name, value, int(step))
        # The HParams session goes in the trial's own event file: add_hparams would open a second
        # writer on a sub-directory (on the same file name, within a second, with tensorboardX).
        final = {f"final/{k}": v for k, v in finals.items()}
        for summary in hparams({**_params(trial), "state": trial.state or ""}, final):
            writer._get_file_writer().add_summary(summary)
        last = int(curve[-1][0]) + 1 if curve else 0
        for name, value in final.items():
            writer.add_scalar(name, value, last)
    finally:
        writer.close()
    return where


def log_to_mlflow(search: Search, tracking_uri: str | None = None, experiment: str | None = None) -> list[str]:
    """Log every trial of a finished search (``sweep.optimize``'s result, or ``sweep.resume``'s)
    as MLflow runs, with their learning curves; their run ids, in trial order."""
    mlflow = _mlflow()
    curves = _curves(search.trials, flush=True)
    return [
        _log_mlflow_run(mlflow, tracking_uri, experiment or search.name, t, _finals(t, search.metric),
                        curves.get(t.task_run_id or "", []))
        for t in search.trials
    ]


def log_to_tensorboard(search: Search, log_dir: str | Path) -> list[Path]:
    """Write every trial of a finished search as TensorBoard runs under ``log_dir``; their
    directories, in trial order (``tensorboard --logdir LOG_DIR`` shows them)."""
    tensorboard = _tensorboard()
    curves = _curves(search.trials, flush=True)
    return [
        _write_tensorboard_run(tensorboard, Path(log_dir), t, _finals(t, search.metric),
                               curves.get(t.task_run_id or "", []))
        for t in search.trials
    ]
