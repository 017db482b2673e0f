"""A server outage longer than the heartbeat timeout: the restarted server judges the flow run
CRASHED from its silence, then the events the flow process spilled meanwhile arrive and the record
ends true: the flow run COMPLETED, every task run Completed, each stored once.

Real processes throughout: the flow in its own process, the server SIGKILLed and restarted on its
port and file. Between them a relay on 127.0.0.1 (the flow's PREFECT_LIKE_API_URL) stays shut
while the server restarts, so the server judges the run before the flow can reach it, as it does
when the flow's retry comes later than the server's first check.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from prefect_like.client import Client
from tests.polling import wait_until
from tests.server._procs import ROOT, ServerProcess, free_port

N = 3000
HEARTBEATS = {"PREFECT_LIKE_HEARTBEAT_SECONDS": "0.2", "PREFECT_LIKE_HEARTBEAT_TIMEOUT": "2"}

FLOW = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect_like import flow, task
    from prefect_like.task_runners import ThreadPoolTaskRunner

    down, end, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

    @task
    def trial(i: int) -> int:
        # A third runs before the outage, the rest during it; the last waits to end the flow.
        while (i >= n // 3 and not down.exists()) or (i == n - 1 and not end.exists()):
            time.sleep(0.02)
        return i

    @flow(name="outlived", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def outlived():
        return trial.map(range(n)).result()

    outlived()
    """
)


class Relay:
    """TCP from a port of its own to the server's; shut, nothing listens (connection refused)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        with self._lock:
            if self._listener is not None:
                _close(self._listener)
                self._listener = None
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # shut meanwhile
                    _close(client)
                    _close(upstream)
                    continue
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)


def _close(sock: socket.socket) -> None:
    # shutdown() first: it ends the connection (or the listening) at once, and wakes a thread
    # blocked in accept() or recv() on it; close() alone waits for that thread.
    with contextlib.suppress(OSError):  # not connected, or already shut
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_a_server_down_past_the_heartbeat_timeout_judges_the_flow_then_its_spill_corrects_it(
    tmp_path: Path, prefect_like_home: Path
) -> None:
    server = ServerProcess(tmp_path / "server", env=HEARTBEATS).start()
    relay = Relay(server.port)
    relay.open()
    down, end = tmp_path / "down", tmp_path / "end"
    script = tmp_path / "outlived.py"
    script.write_text(FLOW)
    env = {
        **os.environ,
        **HEARTBEATS,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LIKE_API_URL": relay.url,
        "PREFECT_LIKE_RECORDER_INTERVAL": "0.05",
        "PREFECT_LIKE_RECORDER_MAX_HELD": "200",
        "PREFECT_LIKE_FLUSH_TIMEOUT": "120",
    }
    process = subprocess.Popen([sys.executable, str(script), str(down), str(end), str(N)], env=env)
    try:
        with Client(server.url) as client:

            def counts() -> dict[str, int]:
                runs = client.list_flow_runs(limit=1)
                return client.task_run_counts(runs[0]["id"]) if runs else {}

            wait_until(
                lambda: counts().get("Completed") == N // 3,
                what="a third of the sweep on the server",
            )
            (flow_run,) = client.list_flow_runs()
        relay.shut()
        server.kill()
        killed_at = time.monotonic()
        down.touch()  # the rest of the sweep runs while the server is down
        spill = prefect_like_home / "spill"
        wait_until(
            lambda: time.monotonic() - killed_at > 3 and any(spill.glob("*")),
            what="events spilled and the outage past the heartbeat timeout",
        )

        server.start()  # the flow cannot reach it yet: the relay is shut
        with Client(server.url) as client:
            judged = wait_until(
                lambda: (r := client.get_flow_run(flow_run["id"]))["state"] == "CRASHED" and r,
                what="the restarted server to judge the silent flow run",
            )
            assert "no heartbeat" in judged["message"]
            at_verdict = client.task_run_counts(flow_run["id"])
            assert at_verdict["Completed"] == N // 3 and "Running" not in at_verdict

            relay.open()  # the spill arrives
            end.touch()
            assert process.wait(timeout=120) == 0
            final = client.get_flow_run(flow_run["id"])
            assert final["state"] == "COMPLETED" and final["task_runs"] == {"Completed": N}
            assert client.task_run_counts(flow_run["id"]) == {"Completed": N}
            assert [s["state_name"] for s in final["states"]] == [
                "Running",
                "Crashed",
                "Running",
                "Completed",
            ]
        with server.store() as db:  # SQLite or PostgreSQL, as the server uses
            assert db._one("SELECT COUNT(*), COUNT(DISTINCT id) FROM task_runs") == (
                N,
                N,
            )
        assert not any(spill.glob("*"))  # everything delivered
    finally:
        if process.poll() is None:
            process.kill()
        relay.shut()
        server.stop()
