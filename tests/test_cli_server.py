"""The CLI against a real tracking server: same output as the embedded store, and the new commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pandas as pd
import pytest
from click.testing import CliRunner

from prefect_like import settings
from prefect_like.cli import cli
from prefect_like.client import Client
from prefect_like.tracking.recorder import shutdown_recorder
from prefect_like.tracking.store import Store
from tests.server._procs import ServerProcess, sweep_events

FLOW_FILE = '''
from prefect_like import flow, task

@task
def train(lr: float, depth: int) -> dict:
    return {"loss": round(abs(lr - 0.5) * depth, 6)}

@flow(task_runner="thread")
def sweep(n: int = 10, depth: int = 2):
    return len(train.map([i / n for i in range(n)], [depth] * n).result())
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PREFECT_LIKE_API_URL", server.url)
    yield server.url
    shutdown_recorder(timeout=10)


def invoke(*args: str, env: dict[str, Any] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_runs_commands_print_the_same_from_the_server_and_the_embedded_store(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id, events = sweep_events(25, fail=(2, 9))
    with Store(settings.database_path()) as store:
        store.write(events)
    with Client(api) as client:
        client.send_events(events)
    commands = [
        ("runs", "show", flow_id, "--json"),
        ("runs", "show", flow_id),
        ("runs", "tasks", flow_id, "--order-by", "-result.loss", "--limit", "5", "--json"),
        ("runs", "tasks", flow_id, "--state", "failed"),
        ("runs", "show", f"{flow_id[:12]}-{2:07x}", "--json"),
        ("runs", "logs", flow_id, "--json"),
        ("runs", "logs", flow_id, "--limit", "2", "--offset", "1"),
    ]
    for command in commands:
        remote = invoke(*command)
        local = invoke(*command, env={"PREFECT_LIKE_API_URL": None})
        assert remote.exit_code == local.exit_code == 0, (command, remote.output)
        assert remote.output == local.output, command
    missing = invoke("runs", "show", "ffffffffffff")
    assert missing.exit_code == 1 and missing.output.startswith("Error: no flow run or task run")


def test_an_unreachable_server_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LIKE_API_URL", "http://127.0.0.1:9/api")
    result = invoke("runs", "ls")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot reach the tracking server" in result.output


def test_run_a_flow_from_a_file_then_watch_and_export_it(api: str, tmp_path: Path) -> None:
    path = tmp_path / "sweeps.py"
    path.write_text(FLOW_FILE)
    result = invoke("run", f"{path}:sweep", "--param", "n=40", "--param", "depth=3")
    assert result.exit_code == 0, result.output
    assert "40 Completed" in result.output and "n=40, depth=3" in result.output
    with Client(api) as client:
        run = client.list_flow_runs(flow_name="sweep", limit=1)[0]
    watched = invoke("runs", "watch", run["id"])
    assert watched.exit_code == 0 and "Completed (40 Completed)" in watched.output

    out = tmp_path / "sweep.parquet"
    exported = invoke("runs", "export", run["id"], "--output", str(out))
    assert exported.exit_code == 0 and "wrote 40 task runs" in exported.output
    frame = pd.read_parquet(out)
    assert len(frame) == 40 and {"param.lr", "param.depth", "result.loss"} <= set(frame.columns)
    assert frame.sort_values("result.loss")["param.lr"].iloc[0] == 0.5
    csv = tmp_path / "sweep.csv"
    assert invoke("runs", "export", run["id"], "-o", str(csv)).exit_code == 0
    assert len(pd.read_csv(csv)) == 40


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--param", "n=lots"], 1, "invalid parameters: n"),
        (["--param", "width=3"], 1, "unexpected keyword argument 'width'"),
        (["--param", "n"], 2, "expected KEY=VALUE"),
        (["--runner", "warp"], 1, "no task runner named 'warp'"),
    ],
)
def test_run_with_bad_input_is_one_error_line(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    path = tmp_path / "sweeps.py"
    path.write_text(FLOW_FILE)
    result = invoke("run", f"{path}:sweep", *args)
    assert result.exit_code == code and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("target", "message"),
    [("missing.py:sweep", "no such file"), ("sweeps.py:nope", "no flow named 'nope'"),
     ("sweeps.py:train", "is not a flow")],
)
def test_run_a_missing_file_or_flow(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "sweeps.py").write_text(FLOW_FILE)
    result = invoke("run", str(tmp_path / target))
    assert result.exit_code == 1 and message in result.output and result.output.startswith("Error:")


def test_runs_flush_sends_what_an_ended_process_spilled(api: str, prefect_like_home: Path) -> None:
    flow_id, events = sweep_events(12)
    spill = prefect_like_home / "spill"
    spill.mkdir()
    dead_pid = 2**22 + 12345  # above the kernel's pid_max: never a live process
    with open(spill / f"events-{dead_pid}-abc-1.msgpack", "wb") as file:
        for i in range(0, len(events), 10):
            file.write(msgpack.packb([list(e) for e in events[i : i + 10]]))
    result = invoke("runs", "flush")
    assert result.exit_code == 0 and f"sent {len(events)} events from 1 spill file" in result.output
    assert not any(spill.iterdir())
    with Client(api) as client:
        assert client.get_flow_run(flow_id)["task_runs"] == {"Completed": 12}
    assert "nothing to send" in invoke("runs", "flush").output


def test_server_start_refuses_a_public_address_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_LIKE_API_KEY", raising=False)
    result = invoke("server", "start", "--host", "0.0.0.0")
    assert result.exit_code == 1 and "requires an API key" in result.output
    assert os.environ.get("PREFECT_LIKE_API_URL") is None
