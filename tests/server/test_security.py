"""The server's security model, on real server processes: loopback by default, an API key
everywhere beyond it, a rate limit, and a dashboard that runs only its own scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from prefect_like.client import Client
from prefect_like.errors import TrackingError
from prefect_like.server import create_app
from prefect_like.tracking.recorder import shutdown_recorder
from tests.server._procs import ROOT, ServerProcess, free_port, sweep_events

KEY = "correct-horse-battery-staple"


def test_a_public_address_without_a_key_is_refused_by_the_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_LIKE_API_KEY", None)
    for command in (["-m", "prefect_like.server"], ["-m", "prefect_like", "server", "start"]):
        done = subprocess.run(
            [sys.executable, *command, "--host", "0.0.0.0", "--port", str(free_port()), "--home", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode in (1, 2), done
        assert done.stderr.startswith("Error: refusing to bind 0.0.0.0") and "PREFECT_LIKE_API_KEY" in done.stderr
        assert "Traceback" not in done.stderr
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
    with TestClient(create_app(tmp_path / "srv", rate_limit=2, rate_burst=5)) as client:
        codes = [client.get("/api/health").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and 429 in codes[5:]
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
