"""When a flow call returns, the store holds every run, state, parameter, result and error."""

from __future__ import annotations

from prefect_like import allow_failure, flow, task, unmapped
from prefect_like.testing.fixtures import ConformanceFixtures


@task
def train(lr: float, depth: int) -> dict:
    return {"loss": round(1.0 / (lr * depth), 6), "depth": depth}


@task
def fail(x: int) -> int:
    raise ValueError(f"diverged at {x}")


@task
def after(x: int) -> int:
    return x


class TrackingTests(ConformanceFixtures):
    """When a flow call returns, the store holds every run, state, parameter, result and error."""

    def test_flow_run_record(self, runner, store):
        @flow(task_runner=runner())
        def sweep(lrs: list[float], depth: int = 3) -> int:
            train.map(lrs, unmapped(depth)).wait()
            return len(lrs)

        state = sweep([0.1, 0.2], return_state=True)
        record = store.get_flow_run(state.run_id)
        assert record["id"] == state.run_id
        assert record["flow_name"] == "sweep"
        assert record["name"]
        assert record["state"] == "COMPLETED"
        assert record["state_name"] == "Completed"
        assert record["parameters"] == {"lrs": [0.1, 0.2], "depth": 3}
        assert record["task_runs"] == {"Completed": 2}
        assert record["parent_flow_run_id"] is None
        assert record["start_time"] is not None and record["end_time"] is not None
        assert record["end_time"] >= record["start_time"]

    def test_mapped_sweep_task_runs(self, runner, store):
        lrs = [0.1, 0.2, 0.5, 1.0]

        @flow(task_runner=runner())
        def sweep() -> None:
            train.map(lrs, depth=unmapped(2)).wait()

        state = sweep(return_state=True)
        runs = store.list_task_runs(state.run_id, order_by="map_index")
        assert [r["map_index"] for r in runs] == [0, 1, 2, 3]
        assert {r["task_name"] for r in runs} == {"train"}
        assert [r["parameters"] for r in runs] == [{"lr": lr, "depth": 2} for lr in lrs]
        assert [r["result"]["loss"] for r in runs] == [round(1.0 / (lr * 2), 6) for lr in lrs]
        assert all(r["state"] == "COMPLETED" and r["state_name"] == "Completed" for r in runs)
        assert all(r["run_count"] == 1 for r in runs)
        assert len({r["id"] for r in runs}) == 4
        best = store.list_task_runs(state.run_id, order_by="result.loss", limit=1)
        assert best[0]["parameters"]["lr"] == 1.0

    def test_scalar_results_are_stored(self, runner, store):
        @task
        def scalar(x: int):
            return {"int": x, "float": x / 2, "str": str(x), "bool": True, "none": None}[
                ["int", "float", "str", "bool", "none"][x]
            ]

        @flow(task_runner=runner())
        def pipeline() -> None:
            scalar.map(range(5)).wait()

        state = pipeline(return_state=True)
        runs = store.list_task_runs(state.run_id, order_by="map_index")
        assert [r["result"] for r in runs] == [0, 0.5, "2", True, None]

    def test_failure_and_not_ready_are_stored(self, runner, store):
        @flow(task_runner=runner())
        def pipeline() -> None:
            for i in range(3):
                after.submit(i)
            after.submit(fail.submit(7)).wait()

        state = pipeline(return_state=True)
        assert state.is_completed()
        record = store.get_flow_run(state.run_id)
        assert record["task_runs"] == {"Completed": 3, "Failed": 1, "NotReady": 1}

        (failed,) = store.list_task_runs(state.run_id, state="FAILED")
        assert failed["task_name"] == "fail"
        assert failed["state_name"] == "Failed"
        assert failed["parameters"] == {"x": 7}
        assert failed["error"]["type"] == "ValueError"
        assert "diverged at 7" in failed["error"]["message"]
        assert "diverged at" in failed["error"]["traceback"]
        assert "fail" in failed["error"]["traceback"]

        (not_ready,) = store.list_task_runs(state.run_id, state="NotReady")
        assert not_ready["task_name"] == "after"
        assert not_ready["state"] == "PENDING"
        assert not_ready["state_name"] == "NotReady"
        assert not_ready["run_count"] in (0, None)

        completed = store.list_task_runs(state.run_id, state="COMPLETED")
        assert sorted(r["parameters"]["x"] for r in completed) == [0, 1, 2]
        assert len(store.list_task_runs(state.run_id, task_name="after")) == 4

    def test_flow_run_with_a_failed_body_is_stored_failed(self, runner, store):
        @flow(task_runner=runner())
        def pipeline() -> None:
            after(1)
            raise RuntimeError("body failed")

        state = pipeline(return_state=True)
        record = store.get_flow_run(state.run_id)
        assert record["state"] == "FAILED"
        assert record["task_runs"] == {"Completed": 1}
        assert record["end_time"] is not None

    def test_task_run_state_history(self, runner, store):
        @flow(task_runner=runner())
        def pipeline():
            future = after.submit(1)
            future.wait()
            return future.task_run_id

        task_run_id = pipeline()
        run = store.get_task_run(task_run_id)
        assert run["id"] == task_run_id
        names = [s["state_name"] for s in run["states"]]
        assert names[0] == "Pending"
        assert names[-1] == "Completed"
        assert "Running" in names

    def test_tags_are_stored(self, runner, store):
        @task(tags=["sweep", "gpu"])
        def tagged() -> int:
            return 1

        @flow(task_runner=runner())
        def pipeline() -> None:
            tagged()

        state = pipeline(return_state=True)
        (run,) = store.list_task_runs(state.run_id)
        assert sorted(run["tags"]) == ["gpu", "sweep"]

    def test_allow_failure_downstream_is_stored_completed(self, runner, store):
        @flow(task_runner=runner())
        def pipeline() -> None:
            after.submit(allow_failure(fail.submit(1))).wait()

        state = pipeline(return_state=True)
        assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": 1, "Failed": 1}

    def test_many_task_runs_are_all_stored_when_the_flow_returns(self, runner, store):
        n = 2000

        @flow(task_runner=runner())
        def pipeline() -> None:
            after.map(range(n)).wait()

        state = pipeline(return_state=True)
        assert store.get_flow_run(state.run_id)["task_runs"] == {"Completed": n}
        runs = store.list_task_runs(state.run_id, limit=n + 10)
        assert len(runs) == n
        assert sorted(r["map_index"] for r in runs) == list(range(n))
