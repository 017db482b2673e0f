"""The server's security model, on real server processes: loopback by default, answering only
its own host names there, an API key of some strength everywhere beyond it, a rate limit, and a
dashboard that runs only its own scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from prefect_like.cli import cli
from prefect_like.client import Client
from prefect_like.errors import TrackingError
from prefect_like.server import create_app
from prefect_like.tracking.recorder import shutdown_recorder
from tests.server._procs import ROOT, ServerProcess, free_port, sweep_events

KEY = "correct-horse-battery-staple"


@pytest.mark.parametrize("key", [None, "   ", "k", "fifteen-chars-x"], ids=["none", "blank", "one", "fifteen"])
def test_a_public_address_without_a_strong_enough_key_is_refused_by_the_real_process(
    tmp_path: Path, key: str | None
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_LIKE_API_KEY", None)
    if key is not None:
        env["PREFECT_LIKE_API_KEY"] = key
    for command in (["-m", "prefect_like.server"], ["-m", "prefect_like", "server", "start"]):
        done = subprocess.run(
            [sys.executable, *command, "--host", "0.0.0.0", "--port", str(free_port()), "--home", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode in (1, 2), done
        assert done.stderr.startswith("Error: refusing to bind 0.0.0.0") and "PREFECT_LIKE_API_KEY" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        if key and key.strip():
            assert f"is {len(key)} characters" in done.stderr and "at least 16" in done.stderr
    assert not (tmp_path / "prefect_like.db").exists()


def test_with_a_key_every_route_needs_it_and_clients_send_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerProcess(tmp_path / "server", env={"PREFECT_LIKE_API_KEY": KEY})
    server.proc = subprocess.Popen(  # beyond loopback: allowed, because a key is set
        [sys.executable, "-m", "prefect_like.server", "--host", "0.0.0.0", "--port", str(server.port),
         "--home", str(server.home), "--log-level", "warning"],
        env=server.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{server.port}"
    try:
        ok = {"Authorization": f"Bearer {KEY}"}
        deadline_ok = _wait_up(base + "/api/health", ok)
        assert deadline_ok
        flow_id, events = sweep_events(5)
        routes = ["/api/health", "/api/openapi.json", "/api/flow-runs", f"/api/flow-runs/{flow_id}",
                  f"/api/flow-runs/{flow_id}/task-runs", "/api/dashboard/flow-names", "/api/docs"]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                        {"Authorization": f"Basic {KEY}"}):
            for route in routes:
                assert httpx.get(base + route, headers=headers).status_code == 401, (route, headers)
            posted = httpx.post(base + "/api/events", content=b"[]", headers={**headers, "Content-Type": "application/json"})
            assert posted.status_code == 401
        # The page is served (it holds no data); its data needs the key.
        assert httpx.get(base + "/").status_code == 200
        # Clients send the key from the same setting.
        monkeypatch.setenv("PREFECT_LIKE_API_KEY", "wrong")
        with Client(base + "/api") as client, pytest.raises(TrackingError, match="API key"):
            client.list_flow_runs()
        monkeypatch.setenv("PREFECT_LIKE_API_KEY", KEY)
        with Client(base + "/api") as client:
            client.send_events(events)
            assert client.get_flow_run(flow_id)["task_runs"] == {"Completed": 5}
        for route in routes:
            assert httpx.get(base + route, headers=ok).status_code in (200, 307), route
        # Beyond loopback the key is the guard: the server answers whatever name it is reached by.
        assert httpx.get(base + "/api/health", headers={**ok, "Host": "tracking.example.org"}).status_code == 200
    finally:
        server.stop()


def _wait_up(url: str, headers: dict[str, str]) -> bool:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling /health, with a deadline
    return False


def test_a_client_over_the_rate_limit_gets_429_with_retry_after(tmp_path: Path) -> None:
    # A token every 20 s: none comes back while the test runs, however slow the machine.
    with TestClient(create_app(tmp_path / "srv", rate_limit=0.05, rate_burst=5)) as client:
        codes = [client.get("/api/health").status_code for _ in range(8)]
        assert codes == [200] * 5 + [429] * 3
        refused = client.get("/api/health")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "too many requests" in refused.json()["detail"]


def test_a_rate_limited_flow_still_delivers_every_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_like import flow, task

    server = ServerProcess(tmp_path / "server", env={
        "PREFECT_LIKE_SERVER_RATE_LIMIT": "4", "PREFECT_LIKE_SERVER_RATE_BURST": "4"}).start()
    monkeypatch.setenv("PREFECT_LIKE_API_URL", server.url)
    monkeypatch.setenv("PREFECT_LIKE_RECORDER_INTERVAL", "0.01")
    monkeypatch.setenv("PREFECT_LIKE_HTTP_BATCH", "50")  # many small requests: some get 429

    @task
    def square(i: int) -> int:
        return i * i

    @flow(task_runner="thread")
    def sweep(n: int) -> int:
        return len(square.map(range(n)).result())

    try:
        assert sweep(600) == 600
        with Client(server.url) as client:
            (run,) = client.list_flow_runs()
            assert run["task_runs"] == {"Completed": 600}
            assert client.task_run_counts(run["id"]) == {"Completed": 600}
    finally:
        shutdown_recorder(timeout=30)
        server.stop()


def test_dashboard_pages_run_only_their_own_scripts(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "srv")) as client:
        page = client.get("/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in client.get("/api/health").headers


# -- the Host header of a loopback server (DNS rebinding) ---------------------------------------


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("loopback"),
                           env={"PREFECT_LIKE_SERVER_ALLOWED_HOSTS": "Tracking.Internal, 10.1.2.3:8080"})
    server.env.pop("PREFECT_LIKE_API_KEY", None)
    yield server.start()
    server.stop()


def _flow_event() -> tuple[str, bytes]:
    flow_id = uuid.uuid4().hex
    event = ["flow", flow_id, 0, None, 1.7e9, "RUNNING", "Running", None, {"flow_name": "f", "name": "n"}]
    return flow_id, msgpack.packb([event])


@pytest.mark.parametrize("host", [
    "attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example:{port}",
    "localhost.attacker.example", "tracking.internal.attacker.example", "localhost:{port}@attacker.example",
])
def test_a_loopback_server_refuses_another_host_name_and_changes_nothing(loopback: ServerProcess, host: str) -> None:
    # A page on attacker.example whose name now resolves to 127.0.0.1: the browser sends its own name.
    base = f"http://127.0.0.1:{loopback.port}"
    foreign = {"Host": host.format(port=loopback.port)}
    for path in ("/api/flow-runs", "/api/health", "/", "/api/openapi.json"):
        refused = httpx.get(base + path, headers=foreign)
        assert refused.status_code == 421, (path, refused.text)
        assert "PREFECT_LIKE_SERVER_ALLOWED_HOSTS" in refused.json()["detail"]
    flow_id, body = _flow_event()
    posted = httpx.post(base + "/api/events", content=body, headers={**foreign, "Content-Type": "application/msgpack"})
    assert posted.status_code == 421
    assert httpx.get(f"{base}/api/runs/{flow_id}").status_code == 404  # nothing was written


@pytest.mark.parametrize("host", [
    "127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "127.0.0.1", "localhost.:{port}",
    "tracking.internal", "tracking.internal:443", "10.1.2.3:{port}",
])
def test_a_loopback_server_answers_its_own_names_and_the_allowed_hosts(loopback: ServerProcess, host: str) -> None:
    base = f"http://127.0.0.1:{loopback.port}"
    named = {"Host": host.format(port=loopback.port)}
    flow_id, body = _flow_event()
    posted = httpx.post(base + "/api/events", content=body, headers={**named, "Content-Type": "application/msgpack"})
    assert posted.status_code == 200, posted.text
    assert httpx.get(f"{base}/api/flow-runs/{flow_id}", headers=named).json()["id"] == flow_id
    assert httpx.get(base + "/", headers=named).status_code == 200


def test_the_cli_and_the_dashboard_keep_working_on_a_loopback_server(
    loopback: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id, body = _flow_event()
    httpx.post(loopback.url + "/events", content=body, headers={"Content-Type": "application/msgpack"})
    for url in (loopback.url, f"http://localhost:{loopback.port}/api"):
        monkeypatch.setenv("PREFECT_LIKE_API_URL", url)
        shown = CliRunner().invoke(cli, ["runs", "show", flow_id], catch_exceptions=False)
        assert shown.exit_code == 0 and flow_id in shown.output, shown.output
    page = httpx.get(f"http://localhost:{loopback.port}/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    script = next(part.split('"')[1] for part in page.text.split("src=")[1:] if part.startswith('"'))
    assert httpx.get(f"http://localhost:{loopback.port}/{script.lstrip('/')}").status_code == 200


@pytest.mark.parametrize("entry", ["http://tracking.example.org", "tracking.example.org/api", "two words"])
def test_an_allowed_host_that_is_not_a_name_stops_the_server_with_one_line(tmp_path: Path, entry: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LIKE_SERVER_ALLOWED_HOSTS": f"ok.example,{entry}"}
    done = subprocess.run(
        [sys.executable, "-m", "prefect_like.server", "--port", str(free_port()), "--home", str(tmp_path / "srv")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stderr.strip() == (
        f"Error: PREFECT_LIKE_SERVER_ALLOWED_HOSTS: {entry!r} is not a host name; list names like "
        "tracking.example.org or 10.0.0.5, comma-separated (any port is allowed)"
    )
    assert not (tmp_path / "srv").exists()
