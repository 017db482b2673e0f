"""Clusters started by hand, as a user would: `dask scheduler` + `dask worker` subprocesses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._support import ENV


class ExternalDask:
    """A scheduler and its workers, each a subprocess; ``kill_scheduler`` for scheduler loss."""

    def __init__(self, folder: Path, workers: int, threads: int, memory_limit: str = "0") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        bin_dir = Path(sys.executable).parent
        common: dict[str, Any] = {
            "env": ENV,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        self.scheduler = subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--scheduler-file",
                str(self.scheduler_file),
                "--port",
                "0",
                "--no-dashboard",
            ],
            **common,
        )
        self.workers = subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--nworkers",
                str(workers),
                "--nthreads",
                str(threads),
                "--no-dashboard",
                "--memory-limit",
                memory_limit,
            ],
            **common,
        )
        self.expected_workers = workers
        self.address = ""

    def connect(self) -> Any:
        import distributed

        client = distributed.Client(scheduler_file=str(self.scheduler_file), timeout=60)
        client.wait_for_workers(self.expected_workers, timeout=60)
        self.address = client.scheduler.address
        return client

    def kill_scheduler(self) -> None:
        self.scheduler.kill()
        self.scheduler.wait(timeout=30)

    def stop(self) -> None:
        for process in (self.workers, self.scheduler):
            process.terminate()
        for process in (self.workers, self.scheduler):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@contextmanager
def external_dask(
    folder: Path, workers: int = 1, threads: int = 2
) -> Iterator[tuple[ExternalDask, Any]]:
    """An external Dask cluster and a client of the test's own on it (not the runner's)."""
    cluster = ExternalDask(folder, workers, threads)
    try:
        client = cluster.connect()
        try:
            yield cluster, client
        finally:
            client.close()
    finally:
        cluster.stop()
