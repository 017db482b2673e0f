"""Short ids: a prefix that names one flow run means it, though its task runs' ids start alike."""

from __future__ import annotations

from click.testing import CliRunner

from prefect_like import flow, task
from prefect_like.cli import cli
from prefect_like.client import connect


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubles() -> None:
    double.map([1, 2, 3])


def test_an_eight_character_prefix_shows_the_flow_run_and_a_longer_one_a_task_run() -> None:
    state = doubles(return_state=True)
    with connect() as reader:
        task_run = reader.list_task_runs(state.run_id, limit=1)[0]
        assert task_run["id"].startswith(state.run_id[:12])  # why 8 characters used to be ambiguous
        assert reader.find_run(state.run_id[:8]) == ("flow", state.run_id)
        assert reader.find_run(task_run["id"]) == ("task", task_run["id"])
    shown = CliRunner().invoke(cli, ["runs", "show", state.run_id[:8]])
    assert shown.exit_code == 0, shown.output
    assert state.run_id in shown.output
