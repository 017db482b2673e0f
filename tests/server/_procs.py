"""A real tracking server process for the integration and CLI tests, and events to feed it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from prefect_like import settings
from prefect_like.tracking.events import Event
from prefect_like.tracking.store import Store

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def adopt_embedded_store(home: Path, database_url: str | None) -> None:
    """With a PostgreSQL store, copy what flows wrote into ``home``'s embedded SQLite file into
    it first (``prefect-like server database copy``, as a team moving over does), so a server
    started over ``home`` serves those runs on either backend."""
    embedded = home / "prefect_like.db"
    if database_url and database_url.startswith("postgresql") and embedded.exists():
        from prefect_like.tracking import databases

        databases.copy(f"sqlite:///{embedded}", database_url)


def server_store(home: Path) -> Store:
    """The store a server over ``home`` started now would use (close it, or use a ``with``)."""
    from prefect_like.tracking import databases

    return databases.open_store(databases.resolve(settings.database_url(), home))


class ServerProcess:
    """``python -m prefect_like.server`` on 127.0.0.1; start, SIGKILL and restart on one port.

    Its store is ``PREFECT_LIKE_DATABASE_URL`` as it was when it was made (the PostgreSQL
    variant of the server tests sets it), else the SQLite file in ``home``; ``store()`` opens
    it. ``workers`` > 1 runs ``--workers`` server processes on its one port."""

    def __init__(
        self, home: Path, port: int | None = None, env: dict[str, str] | None = None, workers: int = 1,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.env.pop("PREFECT_LIKE_API_URL", None)
        self.database_url = self.env.get("PREFECT_LIKE_DATABASE_URL") or None
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    def store(self) -> Store:
        """The store this server uses (close it, or use it in a ``with``)."""
        from prefect_like.tracking import databases

        return databases.open_store(databases.resolve(self.database_url, self.home))

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        adopt_embedded_store(self.home, self.database_url)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect_like.server", "--host", "127.0.0.1",
                 "--port", str(self.port), "--home", str(self.home), "--log-level", "warning",
                 "--workers", str(self.workers)],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers, if any, are killed with it
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from the server in {timeout} s:\n{self.log.read_text()}")
            time.sleep(0.05)  # polling /health, with a deadline

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no last flush; what the store committed is what stays."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def database(self) -> Path:
        return self.home / "prefect_like.db"


def sweep_events(n: int, flow_run_id: str | None = None, fail: tuple[int, ...] = ()) -> tuple[str, list[Event]]:
    """A finished flow run of ``n`` task runs (PENDING, RUNNING, final), some failed, as events."""
    flow_run_id = flow_run_id or uuid.uuid4().hex
    now = time.time() - 60
    events = [Event("flow", flow_run_id, 0, None, now, "RUNNING", "Running", None, {
        "name": "test-sweep", "flow_name": "sweep", "parameters": {"n": n},
        "parent_task_run_id": None, "runner": "ThreadPoolTaskRunner"})]
    counts: dict[str, int] = {}
    for i in range(n):
        task_id = f"{flow_run_id[:12]}-{i:07x}"
        t = now + i * 0.001
        events.append(Event("task", task_id, 0, flow_run_id, t, "PENDING", "Pending", None,
                            {"task_name": "train", "map_index": i, "name": f"train-{i}", "tags": []}))
        events.append(Event("task", task_id, 1, flow_run_id, t + 0.0001, "RUNNING", "Running", None, {"run_count": 1}))
        data: dict[str, Any] = {"parameters": {"lr": i / n, "depth": i % 5}, "run_count": 1, "duration": 0.0002}
        if i in fail:
            data["error"] = {"type": "ValueError", "message": f"bad {i}", "traceback": "Traceback...\nValueError"}
            events.append(Event("task", task_id, 2, flow_run_id, t + 0.0003, "FAILED", "Failed", f"ValueError: bad {i}", data))
            counts["Failed"] = counts.get("Failed", 0) + 1
        else:
            data["result"] = {"loss": round((i * 7919 % n) / n, 6), "acc": i / n}
            events.append(Event("task", task_id, 2, flow_run_id, t + 0.0003, "COMPLETED", "Completed", None, data))
            counts["Completed"] = counts.get("Completed", 0) + 1
        if i % 10 == 0:
            events.append(Event("log", task_id, 0, flow_run_id, t + 0.0002, None, "INFO", f"training {i}",
                                {"level": 20, "logger": "prefect_like.task_runs"}))
    events.append(Event("log", flow_run_id, 0, None, now + 0.5, None, "INFO", "sweep done",
                        {"level": 20, "logger": "prefect_like.flow_runs"}))
    events.append(Event("flow", flow_run_id, 1, None, now + n * 0.001 + 0.01, "COMPLETED", "Completed", None,
                        {"task_runs": counts, "duration": n * 0.001}))
    return flow_run_id, events
