"""The peer comparison: the trivial-map workload in Prefect 3, tracked in Prefect's own database.

Only with ``python -m benchmarks --peers prefect``: Prefect is installed into its own virtual
environment under ``benchmarks/work/`` (git-ignored), so prefect-like never depends on it:
``pip install "prefect>=3,<4" "fastapi<0.151"`` (3.8.8 here; its server does not import with the
newest FastAPI). Two tracking modes, as a Prefect user would run them:

- ``server``: a long-lived ``prefect server start`` on 127.0.0.1, PREFECT_API_URL pointing to it;
- ``ephemeral``: no API URL, Prefect's default per-process local server.

Each measurement runs ``_prefect_flow.py`` in a fresh process with a fresh PREFECT_HOME: one
warm-up flow of 10 tasks, then the timed flow of N ``.map``-ed ``x + 1`` tasks. Task runs are
counted (COMPLETED) in Prefect's SQLite database when the flow call returns, then polled every
second until all N are there (server mode) or the process has exited (ephemeral mode: nothing
writes after that). A measurement is capped at ``CAP`` seconds; a capped one reports the rate
reached (task runs recorded per second).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
VENV = WORK / "prefect-venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ["prefect>=3,<4", "fastapi<0.151"]
CAP = 600.0


def install() -> str:
    """Create the venv and install Prefect 3; its version. Raises with pip's own words on failure."""
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    out = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if "ERROR" in line] or out.stderr.splitlines()[-5:]
        raise RuntimeError("pip install " + " ".join(REQUIREMENTS) + " failed: " + " ".join(lines)[-800:])
    version = subprocess.run([str(PYTHON), "-c", "import prefect; print(prefect.__version__)"],
                             capture_output=True, text=True, check=True)
    return version.stdout.strip()


def _env(home: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING", PREFECT_UI_ENABLED="false")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _count(db: Path, flow_run_id: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute("SELECT count(*) FROM task_run WHERE flow_run_id = ? AND state_type = 'COMPLETED'",
                               (flow_run_id,)).fetchone()
        return int(row[0])
    except sqlite3.Error:
        return -1


class PrefectServer:
    """``prefect server start`` on a free port, until ``stop``."""

    def __init__(self, home: Path) -> None:
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        self.log = open(home / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(VENV / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1",
                                      "--port", str(port)], env=_env(home, None), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # polling the server's health endpoint while it starts
        self.stop()
        raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-1500:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


def measure(n: int, mode: str, tag: str) -> dict[str, Any]:
    home = WORK / f"prefect-home-{mode}-{n}-{tag}"
    home.mkdir(parents=True, exist_ok=True)
    for old in home.glob("prefect.db*"):
        old.unlink()
    db = home / "prefect.db"
    server = PrefectServer(home) if mode == "server" else None
    row: dict[str, Any] = {"peer": "prefect", "mode": mode, "tasks": n}
    try:
        started = time.monotonic()
        proc = subprocess.Popen([str(PYTHON), str(ROOT / "benchmarks" / "_prefect_flow.py"), str(n), str(db)],
                                env=_env(home, server.url if server else None), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=CAP)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        elapsed = time.monotonic() - started
        row["dropped_message_logs"] = err.count("Subscription queue is full")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            row.update(capped=elapsed >= CAP, wall_s=round(elapsed, 1), error=err.strip().splitlines()[-1:] or ["killed"])
            return row
        result = json.loads(lines[-1])
        row.update(result, capped=False, tasks_per_s=round(n / result["wall_s"], 1),
                   bytes_per_task_run=round((result["peak_rss_bytes"] - result["rss_before_bytes"]) / n))
        fid = result["flow_run_id"]
        while True:  # until every task run is in the database, the cap, or (ephemeral) nothing more can come
            count = _count(db, fid)
            waited = time.time() - result["returned_at"]
            if count >= n or server is None or result["wall_s"] + waited >= CAP:
                break
            time.sleep(1.0)  # polling Prefect's database for the server's backlog to drain
        row.update(recorded=count, recorded_after_return_s=round(waited, 1) if count >= n else None,
                   tracked_tasks_per_s=round(count / (result["wall_s"] + waited), 1))
        row["capped"] = count < n and server is not None
        return row
    finally:
        if server is not None:
            server.stop()
            row["dropped_message_logs"] += (home / "server.log").read_text().count("Subscription queue is full")


def run(sizes: list[int], modes: tuple[str, ...] = ("server", "ephemeral")) -> dict[str, Any]:
    try:
        version = install()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        return {"peer": "prefect", "error": str(exc), "rows": []}
    rows = []
    tag = time.strftime("%H%M%S")
    for n in sizes:
        for mode in modes:
            print(f"  prefect {version} {mode} {n:,} tasks ...", file=sys.stderr, flush=True)
            rows.append(measure(n, mode, tag))
            print(f"    {rows[-1]}", file=sys.stderr, flush=True)
    return {"peer": "prefect", "version": version, "requirements": REQUIREMENTS, "rows": rows}
