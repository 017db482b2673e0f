"""Checkpoints: ``report(step=..., checkpoint=...)``, ``get_checkpoint()`` in a retry, and
``Trial.checkpoint`` after a search, on the real store and the real file system.

The cases follow Ray Tune's and Ray Train's documented behaviour ("How to Save and Load Trial
Checkpoints"; "Handling Failures": a retried run resumes "from the latest available checkpoint
reported", "the last checkpoint passed to train.report()"; every checkpoint is reported with
metrics), written for our API.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from prefect_like import flow, sweep, task
from prefect_like.client import connect

EPOCHS = 6


class Interrupted(RuntimeError):
    pass


@task(retries=1, retry_delay_seconds=0)
def train(lr: float, fail_at: int | None = None) -> dict[str, Any]:
    """Trains EPOCHS epochs from the latest checkpoint; the first attempt fails at ``fail_at``."""
    saved = sweep.get_checkpoint()
    if saved is not None:
        state = pickle.loads((saved / "checkpoint.bin").read_bytes())
    else:
        state = {"epoch": 0, "weights": 1.0, "ran": []}
    for epoch in range(state["epoch"] + 1, EPOCHS + 1):
        if epoch == fail_at and saved is None:
            raise Interrupted(f"preempted at epoch {epoch}")
        state["weights"] *= 1 - lr
        state["ran"].append(epoch)
        state["epoch"] = epoch
        sweep.report(step=epoch, loss=state["weights"], checkpoint=pickle.dumps(state))
    return {"loss": state["weights"], "ran": state["ran"], "resumed": saved is not None}


def test_a_retry_resumes_from_the_last_checkpoint_reported() -> None:
    @flow
    def one() -> dict[str, Any]:
        return train.submit(0.5, fail_at=4).result()

    out = one()
    # Epochs 1-3 ran in the first attempt; the retry started at 4, not from scratch.
    assert out["resumed"] and out["ran"] == [1, 2, 3, 4, 5, 6]
    assert out["loss"] == pytest.approx(0.5**EPOCHS)


def test_a_search_keeps_each_trials_checkpoints_and_its_link_in_the_record(tmp_path: Path) -> None:
    workdir = tmp_path / "work"

    @task
    def fit(lr: float) -> dict[str, float]:
        folder = workdir / f"model-{lr}"
        folder.mkdir(parents=True, exist_ok=True)
        loss = lr
        for epoch in range(1, 4):
            loss = lr / epoch
            (folder / "weights.txt").write_text(f"{lr} {epoch}")
            sweep.report(step=epoch, loss=loss, checkpoint=folder)  # a folder, copied whole
        return {"loss": loss}

    search = sweep.optimize(
        fit, sweep.grid(lr=[0.3, 0.1, 0.2]),
        metric="loss", mode="min", sampler="grid", task_runner="thread", name="ckpt",
    )
    best = search.best
    assert best.params["lr"] == 0.1
    # The latest checkpoint by default, any step by number; the copy does not follow the source.
    assert (best.checkpoint / "weights.txt").read_text() == "0.1 3"
    assert (sweep.checkpoint_of(best.task_run_id, step=1) / "weights.txt").read_text() == "0.1 1"
    (workdir / "model-0.1" / "weights.txt").write_text("overwritten")
    assert (best.checkpoint / "weights.txt").read_text() == "0.1 3"
    with pytest.raises(KeyError, match="saved no checkpoint at step 7; it saved steps 1, 2, 3"):
        sweep.checkpoint_of(best.task_run_id, step=7)

    with connect() as reader:
        links = reader.list_artifacts(task_run_id=best.task_run_id)
    assert sorted(a["data"]["link_text"] for a in links) == [
        "checkpoint at step 1", "checkpoint at step 2", "checkpoint at step 3"]
    assert {a["type"] for a in links} == {"link"}
    assert any(a["data"]["link"] == best.checkpoint.as_uri() for a in links)


def test_a_file_checkpoint_is_copied_under_its_own_name(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"

    @task
    def fit() -> float:
        model.write_bytes(b"weights-1")
        sweep.report(step=1, loss=0.5, checkpoint=str(model))
        model.write_bytes(b"weights-2")
        sweep.report(step=2.5, loss=0.25, checkpoint=model)
        return 0.25

    @flow
    def one() -> str:
        future = fit.submit()
        future.wait()
        return future.task_run_id

    run_id = one()
    assert (sweep.checkpoint_of(run_id) / "model.bin").read_bytes() == b"weights-2"
    assert sweep.checkpoint_of(run_id).name == "step-2.5"
    assert (sweep.checkpoint_of(run_id, step=1) / "model.bin").read_bytes() == b"weights-1"


def test_a_run_that_saved_none_has_no_checkpoint() -> None:
    @task
    def plain() -> Any:
        sweep.report(step=1, loss=1.0)
        return sweep.get_checkpoint()  # None: no attempt saved one

    @flow
    def one() -> tuple[Any, str]:
        future = plain.submit()
        return future.result(), future.task_run_id

    value, run_id = one()
    assert value is None and sweep.checkpoint_of(run_id) is None


def test_a_bad_checkpoint_fails_the_run_saying_why_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    @task
    def bad(kind: str) -> None:
        checkpoint = {"number": 42, "missing": str(tmp_path / "nowhere.pt")}[kind]
        sweep.report(step=1, loss=0.1, checkpoint=checkpoint)

    @flow
    def both() -> list[Any]:
        return [bad.submit(k, return_state=True) for k in ("number", "missing")]

    states = both(return_state=True).result(raise_on_failure=False)
    assert "takes a folder or a file (a path) or bytes, got int" in states[0].message
    assert "nowhere.pt' does not exist" in states[1].message
    with pytest.raises(RuntimeError, match="from inside a task run"):
        sweep.get_checkpoint()
    with pytest.raises(ValueError, match="is not a task run id"):
        sweep.checkpoint_of("../../etc")
