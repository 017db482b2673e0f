"""A real tracking server process and a real headless Chromium, for the dashboard's end-to-end
tests, its benchmark and its screenshots.

Chromium is Debian's (``apt-get install chromium``), driven by Playwright with the system
executable: Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.server._procs import adopt_embedded_store

ROOT = Path(__file__).resolve().parents[2]
# TODO(dashboard): "prefect_like.server" once app.py includes the dashboard router.
SERVER_MODULE = "prefect_like.server"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium, or None when it is not installed."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.access(found, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(home: Path, timeout: float = 30.0, api_key: str | None = None) -> Iterator[str]:
    """``python -m prefect_like.server`` on a free 127.0.0.1 port over ``home``; yields its URL.
    With ``api_key``, the server requires that key (``PREFECT_LIKE_API_KEY``)."""
    port = _free_port()
    log_path = home / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PREFECT_LIKE_API_KEY", None)
    if api_key is not None:
        env["PREFECT_LIKE_API_KEY"] = api_key
    command = [
        sys.executable,
        "-m",
        SERVER_MODULE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--home",
        str(home),
        "--log-level",
        "warning",
    ]
    adopt_embedded_store(home, env.get("PREFECT_LIKE_DATABASE_URL"))  # the PostgreSQL variant
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({proc.returncode}):\n{log_path.read_text()}"
                )
            try:
                headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
                if httpx.get(url + "api/health", headers=headers, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not answer within {timeout} s:\n{log_path.read_text()}"
                )
            time.sleep(0.05)  # polling the health route, with a deadline
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``); RuntimeError if it is not installed."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
