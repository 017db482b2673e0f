"""The embedded store's writer: small batches in-process, big ones through a writer process."""

from __future__ import annotations

import pytest

from prefect_like.errors import TrackingError
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store
from prefect_like.tracking.writer import StoreWriter

FLOW = "f" * 32


def batch(start: int, count: int) -> list[Event]:
    events = [Event("flow", FLOW, 0, None, 1.0, "RUNNING", "Running", None, {"name": "n", "flow_name": "sweep", "parameters": {}})]
    for i in range(start, start + count):
        run_id = f"{FLOW[:12]}-t{i}"
        events.append(Event("task", run_id, 0, FLOW, 1.0, "PENDING", "Pending", None, {"task_name": "train", "map_index": i, "tags": ["a"]}))
        events.append(Event("task", run_id, 1, FLOW, 2.0, "RUNNING", "Running", None, {"run_count": 1}))
        events.append(Event("task", run_id, 2, FLOW, 3.0, "COMPLETED", "Completed", None,
                            {"parameters": {"lr": 0.1, "layers": [1, 2]}, "result": {"loss": i / 10}, "run_count": 1, "duration": 1.0}))
    return events


def test_big_batches_are_stored_by_a_writer_process_exactly_like_small_ones(tmp_path):
    path = tmp_path / "store.db"
    writer = StoreWriter(path, threshold=50)
    writer.write(batch(0, 5))  # small: in-process
    assert writer._child is None
    writer.write(batch(5, 100))  # big: the writer process takes over
    assert writer._child is not None
    writer.write(batch(105, 5))  # and keeps every later batch, so there is one writer
    writer.write(batch(0, 5))  # a batch sent twice is stored once
    writer.close()
    with Store(path) as store:
        assert store.task_run_counts(FLOW) == {"Completed": 110}
        best = store.list_task_runs(FLOW, order_by="-result.loss", limit=1)[0]
        assert best["result"] == {"loss": 10.9}
        assert best["parameters"] == {"lr": 0.1, "layers": [1, 2]}
        assert best["tags"] == ["a"]


def test_a_writer_process_that_died_is_replaced_and_no_batch_is_lost(tmp_path):
    path = tmp_path / "store.db"
    writer = StoreWriter(path, threshold=10)
    writer.write(batch(0, 20))  # stored by the writer process
    assert writer._child is not None
    writer._child.kill()
    writer._child.wait()
    writer.write(batch(20, 20))  # the dead child cannot take it: stored in-process
    writer.write(batch(40, 20))  # and the next big batch starts a new child
    assert writer._child is not None and writer._child.poll() is None
    writer.close()
    with Store(path) as store:
        assert store.task_run_counts(FLOW) == {"Completed": 60}


def test_a_batch_the_store_refuses_raises_saying_why(tmp_path):
    path = tmp_path / "store.db"
    writer = StoreWriter(path, threshold=10)
    bad = batch(0, 20)
    bad.append(Event("nonsense", "x", 0, None, 1.0, None, None, None, None))
    with pytest.raises(TrackingError, match="nonsense"):
        writer.write(bad)  # the Recorder's sender keeps the batch, and says why
    writer.write(batch(0, 20))
    writer.close()
    with Store(path) as store:
        assert store.task_run_counts(FLOW) == {"Completed": 20}


def test_a_batch_cut_short_by_a_raw_pipe_write_is_sent_whole():
    """A write to an unbuffered pipe may take part of the bytes (a signal mid-write); the rest
    must follow, or the writer process waits for them forever."""
    from prefect_like.tracking.writer import _write_all

    class ShortWrites:
        def __init__(self) -> None:
            self.received = bytearray()

        def write(self, data: memoryview) -> int:
            taken = bytes(data[:1000])
            self.received += taken
            return len(taken)

    stream = ShortWrites()
    payload = bytes(range(256)) * 100
    _write_all(stream, payload)  # type: ignore[arg-type]
    assert stream.received == payload
