"""Checkpoints: what a trial saves at a step (``report(step=..., checkpoint=...)``), to pick up
from after a retry and to load the best trial's model after the search.

    @task(retries=2)
    def train(lr: float, epochs: int = 20) -> dict:
        model, start = new_model(lr), 0
        saved = sweep.get_checkpoint()               # an earlier attempt's latest, or None
        if saved is not None:
            model, start = load(saved / "model.pt"), int(saved.name.split("-", 1)[1]) + 1
        for epoch in range(start, epochs):
            loss = fit_one_epoch(model)
            torch.save(model, "model.pt")
            sweep.report(step=epoch, loss=loss, checkpoint="model.pt")
        return {"loss": loss}

    search = sweep.optimize(train, space, metric="loss", n_trials=50)
    best_model = search.best.checkpoint / "model.pt"

A checkpoint is a folder, as in Ray Tune: ``checkpoint=`` takes a folder (copied whole), a file
(copied into the folder under its own name) or bytes (written to ``checkpoint.bin`` in it). It
is stored beside the run's results, in the task's ``result_storage`` folder (by default
``$PREFECT_LIKE_HOME/results``), at ``checkpoints/<task run id>/step-<step>``: written to a
temporary folder and renamed into place, so a checkpoint is whole or absent, never half
written. On a Dask or Ray cluster the storage folder must be one that the workers and the
flow process share (the default is, on one machine). Each checkpoint is also a link artifact
of its task run (``prefect-like artifacts ls``, the dashboard's run page), saying where it is.

Only the checkpoint data travels through the file system: the tracking path carries the
artifact, one small event, like the report's metrics.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prefect_like.context import TaskRunContext, task_run_context
from prefect_like.results import resolve_storage

FOLDER = "checkpoints"
BYTES_NAME = "checkpoint.bin"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_STEP = re.compile(r"^step-(.+)$")


def _step_name(step: float) -> str:
    return f"step-{step}" if isinstance(step, int) else f"step-{step:g}"


def _root(storage: Any = None) -> Path:
    """The folder checkpoints live in: ``storage``'s (a ResultStorage or a path), or the default."""
    return resolve_storage(storage).path / FOLDER


def _run_folder(task_run_id: str, storage: Any = None) -> Path:
    if not isinstance(task_run_id, str) or not _RUN_ID.match(task_run_id):
        raise ValueError(f"{task_run_id!r} is not a task run id")
    return _root(storage) / task_run_id


def save(context: TaskRunContext, step: float, checkpoint: Any) -> Path:
    """Store ``checkpoint`` (a folder, a file or bytes) as the run's checkpoint at ``step``."""
    if isinstance(checkpoint, bytes | bytearray | memoryview):
        source: Path | bytes = bytes(checkpoint)
    elif isinstance(checkpoint, str | os.PathLike):
        source = Path(checkpoint)
        if not source.exists():
            raise FileNotFoundError(f"report(checkpoint=...): {str(source)!r} does not exist")
    else:
        raise TypeError(
            "report(checkpoint=...) takes a folder or a file (a path) or bytes, got "
            f"{type(checkpoint).__name__}"
        )
    runs = _run_folder(context.task_run_id, context.task.options.result_storage)
    runs.mkdir(parents=True, exist_ok=True)
    target = runs / _step_name(step)
    staging = Path(tempfile.mkdtemp(dir=runs, prefix=".tmp-"))
    try:
        if isinstance(source, bytes):
            (staging / BYTES_NAME).write_bytes(source)
        elif source.is_dir():
            shutil.copytree(source, staging, dirs_exist_ok=True)
        else:
            shutil.copy2(source, staging / source.name)
        if target.exists():  # the same step saved again (a retry): the newer one stands
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _announce(target, step)
    return target


def _announce(target: Path, step: float) -> None:
    from prefect_like.artifacts import _publish

    payload = {"link": target.as_uri(), "link_text": f"checkpoint at step {step:g}"}
    _publish("link", payload, None, "A checkpoint the trial saved with report()")


def _steps(folder: Path) -> dict[float, Path]:
    found: dict[float, Path] = {}
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        match = _STEP.match(entry.name)
        if match and entry.is_dir():
            try:
                step = float(match.group(1))
            except ValueError:
                continue
            if math.isfinite(step):
                found[step] = entry
    return found


def checkpoint_of(task_run_id: str, step: float | None = None, storage: Any = None) -> Path | None:
    """The folder of a task run's checkpoint at ``step`` (by default its latest), or None if it
    saved none. ``storage``: the task's ``result_storage`` when it had one of its own."""
    steps = _steps(_run_folder(task_run_id, storage))
    if not steps:
        return None
    if step is None:
        return steps[max(steps)]
    found = steps.get(float(step))
    if found is None:
        saved = ", ".join(f"{s:g}" for s in sorted(steps))
        raise KeyError(f"task run {task_run_id} saved no checkpoint at step {step:g}; it saved steps {saved}")
    return found


def get_checkpoint() -> Path | None:
    """Inside a task run: the latest checkpoint this run saved, in an earlier attempt (a retry,
    or a re-run after its worker died), or None. Start from it instead of from scratch."""
    context = task_run_context.get()
    if context is None:
        raise RuntimeError("get_checkpoint() is called from inside a task run")
    return checkpoint_of(context.task_run_id, storage=context.task.options.result_storage)


__all__ = ["checkpoint_of", "get_checkpoint"]
