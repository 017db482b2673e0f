"""Results that storage cannot keep: the task run FAILS saying what and why; nothing hangs."""

from __future__ import annotations

from prefect_like import flow, settings, task
from prefect_like.results import ResultStorage
from prefect_like.tracking.store import Store


def test_a_result_too_large_for_its_storage_fails_that_run_only(tmp_path):
    storage = ResultStorage(tmp_path / "results", max_bytes=10_000)

    @task(persist_result=True, result_storage=storage)
    def make(size: int) -> bytes:
        return b"x" * size

    @flow(task_runner="thread")
    def pipeline() -> list[tuple[str, str, str | None]]:
        futures = make.map([10, 1_000_000, 20])
        states = [(f.wait(), f.state)[1] for f in futures]
        return [(s.run_id, s.type.value, s.message) for s in states]

    small, (big_id, big_state, message), other = pipeline()
    assert small[1] == other[1] == "COMPLETED"
    assert big_state == "FAILED"
    assert "bytes is 1,000,0" in message and "limit of 10,000 bytes" in message, message
    with Store(settings.database_path()) as store:
        stored = store.get_task_run(big_id)
    assert stored["state"] == "FAILED" and stored["error"]["type"] == "SerializationError"
    assert len(list((tmp_path / "results").iterdir())) == 2  # nothing half-written for the big one


def test_a_huge_result_is_summarised_without_rendering_it_whole():
    from prefect_like.results import MAX_REPR, short_repr

    assert short_repr(b"x" * 10_000_000) == "<bytes of 10,000,000 bytes>"
    assert len(short_repr("y" * 10_000_000)) <= MAX_REPR
    assert short_repr(list(range(1_000_000))).startswith("[0, 1, 2")
