"""Deployments with real processes: a tracking server, workers, a serve process, a flow started
from a terminal, and a webhook receiver, all on 127.0.0.1.

Cases from Prefect's docs ("Run deployments", "Schedule flow runs", "Workers", "Cancel a flow
run", "Automations and notifications"): a deployment triggered with parameters, one on a
schedule every few seconds, two workers on one pool, a run cancelled while it runs, a worker
killed mid-run whose run is retried, a webhook on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.polling import wait_until
from tests.server._procs import ROOT, ServerProcess

pytestmark = pytest.mark.slow

FLOWS = '''
import os
import time
from pathlib import Path

from prefect_like import flow, task


@task
def square(x: int) -> int:
    return x * x


@flow
def sweep(n: int = 3, pause: float = 0.0, mark: str = "") -> int:
    if mark:
        with open(mark, "a") as f:
            f.write(f"{n}\\n")
    time.sleep(pause)
    return sum(square.map(range(n)).result())


@flow
def once_slow(marker: str) -> str:
    """Slow the first time (so a test can kill its worker), quick when run again."""
    if not Path(marker).exists():
        Path(marker).write_text("started")
        time.sleep(120)
    return "done"


@flow
def fails() -> None:
    raise ValueError("the data is bad")


@flow
def where(out: str, lr: float = 0.1) -> None:
    import json

    from prefect_like import runtime
    from prefect_like.context import FlowRunContext

    d, run = runtime.deployment, FlowRunContext.get().flow_run
    Path(out).write_text(json.dumps({"id": d.id, "name": d.name, "version": d.version,
                                     "parameters": d.parameters, "flow_run_id": d.flow_run_id,
                                     "flow_run": [run.deployment_id, run.work_pool_name]}))
'''

# Heartbeats every half second: a killed run is judged Crashed within seconds.
FAST = {"PREFECT_LIKE_HEARTBEAT_SECONDS": "0.5", "PREFECT_LIKE_HEARTBEAT_TIMEOUT": "3",
        "PREFECT_LIKE_WORKER_POLL_SECONDS": "0.3", "PREFECT_LIKE_SCHEDULER_SECONDS": "0.3"}


@pytest.fixture
def flows_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module's tests: each uses deployments and pools of its own."""
    proc = ServerProcess(tmp_path_factory.mktemp("server-home"), env=FAST).start()
    yield proc
    proc.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for a test that kills it."""
    proc = ServerProcess(tmp_path / "server-home", env=FAST).start()
    yield proc
    proc.stop()


def _env(server: ServerProcess, home: Path) -> dict[str, str]:
    env = {**os.environ, **FAST, "PREFECT_LIKE_API_URL": server.url, "PREFECT_LIKE_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def _cli(server: ServerProcess, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "prefect_like", *args], env=_env(server, home),
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"prefect-like {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Worker:
    """``prefect-like worker start`` in a process of its own."""

    def __init__(self, server: ServerProcess, home: Path, *args: str) -> None:
        self.log = home / f"worker-{time.monotonic_ns()}.out"
        home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect_like", "worker", "start", *args], env=_env(server, home),
                stdout=out, stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def start(server: ServerProcess, *args: str) -> Worker:
        worker = Worker(server, tmp_path / "worker-home", *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _api(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=10, **kwargs)


def _flow_run(server: ServerProcess, flow_run_id: str) -> dict[str, Any]:
    return _api(server, "GET", f"/flow-runs/{flow_run_id}").json()


def _ended(server: ServerProcess, flow_run_id: str, state: str) -> dict[str, Any] | None:
    """The run once it is in ``state``; a run that ended another way fails the test at once."""
    run = _flow_run(server, flow_run_id)
    final = {"COMPLETED", "FAILED", "CANCELLED"}
    if state in final and run.get("state") in final - {state}:
        raise AssertionError(f"the run ended {run['state']}, not {state}: {run}")
    return run if run.get("state") == state else None


def _deploy(server: ServerProcess, home: Path, target: str, *args: str) -> dict[str, Any]:
    return json.loads(_cli(server, home, "deploy", target, *args, "--json").stdout)


def test_a_triggered_run_with_parameters_runs_on_a_worker_as_the_run_the_server_made(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    deployment = _deploy(server, home, f"{flows_file}:sweep", "--name", "squares", "--pool", "cpu", "--param", "n=2")
    assert deployment["entrypoint"] == f"{flows_file}:sweep" and deployment["parameters"] == {"n": 2}

    # A bad parameter is refused with the reason, and makes no run.
    bad = _api(server, "POST", "/deployments/squares/runs", json={"parameters": {"n": "many"}})
    assert bad.status_code == 422 and "n: 'many' is not of type 'integer'" in bad.json()["detail"]
    unknown = _cli(server, home, "deployment", "run", "squares", "--param", "epochs=3", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "Error: flow 'sweep' got invalid parameters: unexpected parameter(s) epochs (it takes: n, pause, mark)")
    assert _api(server, "GET", "/deployments/squares/runs").json() == []

    made = json.loads(_cli(server, home, "deployment", "run", "squares", "--param", "n=5", "--json").stdout)
    assert made["state"] == "SCHEDULED"
    assert _flow_run(server, made["id"])["state_name"] == "Scheduled"  # in the run list at once
    worker = workers(server, "--pool", "cpu")
    run = wait_until(lambda: _ended(server, made["id"], "COMPLETED"), 60, "the triggered run to complete")
    assert run["parameters"] == {"n": 5}  # as triggered, the deployment's over its defaults
    assert run["task_runs"] == {"Completed": 5}
    assert run["name"] and run["start_time"]  # the worker's process ran this very run

    # run_deployment from Python waits for the result.
    from prefect_like.deployments import run_deployment

    os.environ["PREFECT_LIKE_API_URL"] = server.url
    try:
        ended = run_deployment("squares", {"n": 3}, timeout=60)
    finally:
        del os.environ["PREFECT_LIKE_API_URL"]
    assert ended["state"] == "COMPLETED" and ended["parameters"]["n"] == 3
    assert f"Running flow run {made['id']}" in worker.output()


def test_deploy_without_a_server_says_what_it_needs_in_one_line(flows_file: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LIKE_API_URL"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "prefect_like", "deploy", f"{flows_file}:sweep", "--name", "x",
                             "--pool", "p"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: deployments need a tracking server: start one with `prefect-like server start` and set "
        "PREFECT_LIKE_API_URL (e.g. http://127.0.0.1:4300/api)"]


def test_a_schedule_every_two_seconds_is_run_by_the_worker_across_a_server_restart(
    own_server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    server = own_server
    home = tmp_path / "cli-home"
    # croniter's six-field form: the sixth field is the second.
    _deploy(server, home, f"{flows_file}:sweep", "--name", "ticker", "--pool", "sched", "--cron", "* * * * * */2",
            "--timezone", "Europe/Paris")
    worker = workers(server, "--pool", "sched")

    def completed() -> list[dict[str, Any]]:
        runs = _api(server, "GET", "/deployments/ticker/runs", params={"limit": 1000}).json()
        return [r for r in runs if r["state"] == "COMPLETED"]

    wait_until(lambda: len(completed()) >= 2, 60, "two scheduled runs to complete")
    server.kill()  # no shutdown: what was committed stays
    down = time.time()
    server.start()
    wait_until(lambda: len([r for r in completed() if r["scheduled"] > down + 2]) >= 2, 60,
               "two more scheduled runs after the restart")
    runs = _api(server, "GET", "/deployments/ticker/runs", params={"limit": 1000}).json()
    due = sorted(r["scheduled"] for r in runs if r["scheduled"] <= time.time() - 3)
    assert len(due) == len(set(due)), "a scheduled time was made twice"
    gaps = [round(b - a) for a, b in zip(due, due[1:], strict=False)]
    assert set(gaps) == {2}, f"times missing between scheduled runs: {gaps}"
    said = worker.output()
    assert "Cannot reach the tracking server" in said and "The tracking server is back; claiming again" in said


def test_two_workers_on_one_pool_run_each_run_once(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    marks = tmp_path / "marks.txt"
    _deploy(server, home, f"{flows_file}:sweep", "--name", "race", "--pool", "race")
    ids = [_api(server, "POST", "/deployments/race/runs", json={"parameters": {"n": i, "mark": str(marks)}}).json()["id"]
           for i in range(6)]
    first = workers(server, "--pool", "race", "--name", "first")
    second = workers(server, "--pool", "race", "--name", "second")
    wait_until(lambda: all(_ended(server, i, "COMPLETED") for i in ids), 90, "every run to complete")
    seen = {w["name"]: w for w in json.loads(_cli(server, home, "worker", "ls", "--pool", "race", "--json").stdout)}
    assert set(seen) == {"first", "second"} and all(w["online"] for w in seen.values())
    assert sorted(int(line) for line in marks.read_text().split()) == list(range(6))  # each ran once
    runs = _api(server, "GET", "/deployments/race/runs", params={"limit": 100}).json()
    assert {r["worker"] for r in runs} <= {"first", "second"}
    assert "Running flow run" in first.output() + second.output()


def test_a_running_run_is_cancelled_within_seconds_and_a_pool_limit_holds_the_next(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    _deploy(server, home, f"{flows_file}:sweep", "--name", "long", "--pool", "slow")
    _cli(server, home, "work-pool", "set-limit", "slow", "1")
    long_id = _api(server, "POST", "/deployments/long/runs", json={"parameters": {"pause": 120}}).json()["id"]
    next_id = _api(server, "POST", "/deployments/long/runs", json={"parameters": {"n": 1}}).json()["id"]
    workers(server, "--pool", "slow")
    wait_until(lambda: _ended(server, long_id, "RUNNING"), 60, "the long run to start")
    time.sleep(0)  # the pool's limit of one keeps the second run waiting while the first runs
    assert _flow_run(server, next_id)["state"] == "SCHEDULED"
    asked = time.monotonic()
    out = _cli(server, home, "runs", "cancel", long_id)
    assert "cancellation requested" in out.stdout
    run = wait_until(lambda: _ended(server, long_id, "CANCELLED"), 30, "the run to end CANCELLED")
    assert time.monotonic() - asked < 10
    assert run["message"] == ("Cancelled: the flow process was cancelled: requested from the tracking server "
                              "(prefect-like runs cancel)")
    wait_until(lambda: _ended(server, next_id, "COMPLETED"), 60, "the next run, once the pool had room")


def test_a_flow_started_from_a_terminal_is_cancelled_through_the_server(
    server: ServerProcess, flows_file: Path, tmp_path: Path
) -> None:
    env = _env(server, tmp_path / "terminal-home")
    proc = subprocess.Popen([sys.executable, "-m", "prefect_like", "run", f"{flows_file}:sweep", "--param",
                             "pause=120", "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def running() -> str | None:
            items = _api(server, "GET", "/flow-runs", params={"flow_name": "sweep"}).json()["items"]
            return next((r["id"] for r in items if r["state"] == "RUNNING"), None)

        flow_run_id = wait_until(running, 60, "the terminal's flow run to start")
        assert _api(server, "POST", f"/flow-runs/{flow_run_id}/cancel", json={"reason": "stop it"}).json()["cancelling"]
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    run = _flow_run(server, flow_run_id)
    assert (run["state"], run["message"]) == ("CANCELLED", "Cancelled: the flow process was cancelled: stop it")
    assert b"is CANCELLED: the process was cancelled: stop it" in out


def test_a_worker_killed_mid_run_leaves_it_crashed_and_the_deployments_retry_runs_it(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    marker = tmp_path / "started"
    _deploy(server, home, f"{flows_file}:once_slow", "--name", "fragile", "--pool", "fragile", "--retries", "1",
            "--param", f"marker={marker}")
    first_id = _api(server, "POST", "/deployments/fragile/runs", json={}).json()["id"]
    victim = workers(server, "--pool", "fragile")
    wait_until(lambda: marker.exists() and _ended(server, first_id, "RUNNING"), 60, "the run to start")
    victim.proc.kill()  # SIGKILL: the worker's run process dies with it
    victim.proc.wait()
    crashed = wait_until(lambda: _ended(server, first_id, "CRASHED"), 30, "the killed run to be judged Crashed")
    assert "no heartbeat" in crashed["message"]
    workers(server, "--pool", "fragile")

    def retried() -> dict[str, Any] | None:
        runs = _api(server, "GET", "/deployments/fragile/runs").json()
        return next((r for r in runs if r["retry_of"] == first_id and r["state"] == "COMPLETED"), None)

    again = wait_until(retried, 60, "the retry to complete")
    assert again["attempt"] == 2 and again["id"] != first_id


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []
    paths: list[str] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).paths.append(self.path)
        if type(self).fail_first > 0:  # the first attempt fails: tenacity tries again
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            type(self).bodies.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_failed_run_posts_a_webhook_retried_and_its_secret_is_never_shown(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        home = tmp_path / "cli-home"
        secret = "T0KEN-s3cr3t"
        url = f"http://user:pw@127.0.0.1:{receiver.server_port}/hooks/{secret}?token={secret}"
        _deploy(server, home, f"{flows_file}:fails", "--name", "bad-data", "--pool", "alerts")
        made = _cli(server, home, "notify", "create", "--on", "failed", "--on", "crashed", "--webhook", url,
                    "--flow", "fails").stdout
        assert secret not in made and "pw" not in made
        run_id = _api(server, "POST", "/deployments/bad-data/runs", json={}).json()["id"]
        workers(server, "--pool", "alerts")
        wait_until(lambda: _Receiver.bodies, 60, "the webhook")
        body = _Receiver.bodies[0]
        assert (body["flow_run_id"], body["state_name"], body["deployment"]) == (run_id, "Failed", "bad-data")
        assert "the data is bad" in body["message"]
        assert len(_Receiver.paths) == 2 and _Receiver.paths[0].startswith(f"/hooks/{secret}")
        listed = _cli(server, home, "notify", "ls").stdout
        assert secret not in listed and f"127.0.0.1:{receiver.server_port}/***" in listed
        assert secret not in server.log.read_text()
    finally:
        receiver.shutdown()


SERVE = '''
import sys
sys.path.insert(0, {dir!r})
from flows import sweep

if __name__ == "__main__":
    sweep.serve("served", interval=1.5, parameters={{"n": 2}})
'''


def test_serve_runs_the_flow_on_its_schedule_and_when_triggered(
    server: ServerProcess, flows_file: Path, tmp_path: Path
) -> None:
    script = tmp_path / "serve_it.py"
    script.write_text(SERVE.format(dir=str(flows_file.parent)))
    env = _env(server, tmp_path / "serve-home")
    out = tmp_path / "serve.out"
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def runs() -> list[dict[str, Any]]:
            answer = _api(server, "GET", "/deployments/served/runs", params={"limit": 100})
            return answer.json() if answer.status_code == 200 else []  # 404 until serve deployed it

        wait_until(lambda: len([r for r in runs() if r["state"] == "COMPLETED"]) >= 2, 60,
                   "two scheduled runs of the served flow")
        triggered = _api(server, "POST", "/deployments/served/runs", json={"parameters": {"n": 4}}).json()["id"]
        run = wait_until(lambda: _ended(server, triggered, "COMPLETED"), 60, "the triggered run")
        assert run["parameters"]["n"] == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _api(server, "DELETE", "/deployments/served")
    text = out.read_text()
    assert "Serving deployment 'served' (every 1.5 s)" in text and "Worker 'serve-served' stopped" in text


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker`` processes, as a user starts them; their address."""
    dask = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--scheduler-file", str(info), "--port", "0",
                                  "--no-dashboard"], **quiet)
    worker = subprocess.Popen([dask, "worker", "--scheduler-file", str(info), "--nworkers", "1", "--nthreads",
                               "2", "--no-dashboard", "--memory-limit", "0"], **quiet)
    try:
        wait_until(lambda: info.exists() and info.read_text().strip(), 60, "the dask scheduler")
        yield json.loads(info.read_text())["address"]
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_run_a_worker_started_knows_its_deployment(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path
) -> None:
    # Prefect's runtime.deployment (src/prefect/runtime/deployment.py): the deployment's id and
    # name, and the parameters the run was made with; empty for a flow called directly. The
    # run's FlowRun (what hooks get) carries deployment_id and work_pool_name.
    out = tmp_path / "where.json"
    deployment = _deploy(server, tmp_path / "cli-home", f"{flows_file}:where", "--name", "located",
                         "--pool", "where", "--param", f"out={out}")
    run_id = _api(server, "POST", "/deployments/located/runs", json={"parameters": {"lr": 0.5}}).json()["id"]
    workers(server, "--pool", "where")
    wait_until(lambda: _ended(server, run_id, "COMPLETED"), 60, "the run")
    assert json.loads(out.read_text()) == {"id": deployment["id"], "name": "located", "version": None,
                                           "parameters": {"lr": 0.5, "out": str(out)}, "flow_run_id": run_id,
                                           "flow_run": [deployment["id"], "where"]}


@pytest.mark.dask
def test_a_worker_submits_its_run_to_a_dask_cluster(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path, dask_cluster: str
) -> None:
    home = tmp_path / "cli-home"
    _deploy(server, home, f"{flows_file}:sweep", "--name", "on-dask", "--pool", "cluster")
    run_id = _api(server, "POST", "/deployments/on-dask/runs", json={"parameters": {"n": 20}}).json()["id"]
    worker = workers(server, "--pool", "cluster", "--runner", "dask", "--address", dask_cluster)
    run = wait_until(lambda: _ended(server, run_id, "COMPLETED"), 90, "the run on the Dask cluster")
    assert run["task_runs"] == {"Completed": 20}
    import sqlite3

    with sqlite3.connect(server.database) as db:  # the runner the flow run recorded
        assert db.execute("SELECT runner FROM flow_runs WHERE id = ?", (run_id,)).fetchone() == ("DaskTaskRunner",)
    assert f"on the dask runner at {dask_cluster}" in worker.output()


@pytest.fixture
def page(server: ServerProcess) -> Iterator[Any]:
    from tests.server._live import chromium, chromium_path

    if chromium_path() is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; browser tests must run on CI")
        pytest.skip(reason)
    errors: list[str] = []
    with chromium() as browser:
        context = browser.new_context(base_url=server.url.removesuffix("api"), viewport={"width": 1400, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        context.close()
    assert errors == [], f"the page raised: {errors}"


def test_the_deployments_page_shows_schedules_upcoming_runs_and_workers_and_runs_one(
    server: ServerProcess, workers: Any, flows_file: Path, tmp_path: Path, page: Any
) -> None:
    from playwright.sync_api import expect

    _deploy(server, tmp_path / "cli-home", f"{flows_file}:sweep", "--name", "shown", "--pool", "page",
            "--interval", "3600")
    workers(server, "--pool", "page", "--name", "page-worker")
    page.goto("/#/deployments")
    row = page.locator("[data-testid=deployments] tbody tr", has_text="shown")
    expect(row).to_contain_text("every 3600 s")
    expect(page.locator("[data-testid=upcoming-runs] tbody tr", has_text="shown").first).to_contain_text("Scheduled")
    expect(page.locator("[data-testid=workers] tbody tr", has_text="page-worker")).to_contain_text("online", timeout=60_000)
    row.get_by_role("button", name="Run now").click()
    expect(page.get_by_test_id("deployment-status")).to_contain_text("Made flow run")
    made = page.get_by_test_id("deployment-status").locator("a").inner_text()
    done = page.locator("[data-testid=recent-runs] tbody tr", has_text=made)
    expect(done).to_contain_text("Completed", timeout=60_000)
