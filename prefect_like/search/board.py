"""The board: where a trial's reports reach the search's scheduler, and its verdict comes back.

The scheduler lives in the flow process, beside the sampler. A trial running in that process
(sequential, thread or asyncio runner) calls ``Board.report`` directly, under a lock. A trial in
another process (a Dask or Ray worker) holds a ``RemoteBoard`` instead: pickling a ``Board``
(as a runner ships the trial's call) starts, once, a listener in the flow process on
``127.0.0.1`` with a random key (``multiprocessing.connection``), and the copy a worker unpickles
connects to it and asks there. One round trip per report, only for searches with a scheduler;
the metrics themselves travel with the tracking events (``reporting``), never this way.

A worker that cannot reach the board (a cluster on other machines: the listener binds to the
loopback address only) logs it once and is never told to stop; its reports are still recorded.

The scheduler sees values where higher is better: the board negates a metric to minimise.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
from typing import Any

from prefect_like.search.schedulers import Scheduler

log = logging.getLogger("prefect_like.search")


def _value(metric: str, metrics: dict[str, Any], sign: float) -> float:
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ValueError(
            f"report() got no {metric!r}, the metric this search's scheduler decides on; it reported {known}"
        )
    value = metrics[metric]
    return math.nan if value is None else sign * float(value)


class Board:
    """The scheduler of one search, and the lock that keeps its decisions in order."""

    def __init__(self, scheduler: Scheduler, metric: str, mode: str) -> None:
        self.scheduler = scheduler
        self.metric = metric
        self.sign = -1.0 if mode == "min" else 1.0
        self.lock = threading.Lock()
        self._listener: Any = None
        self._address: tuple[str, int] | None = None
        self._key = secrets.token_bytes(32)
        self._closed = False
        self._steps: dict[str, float] = {}  # trial -> its last reported step

    def report(self, trial: str, step: float, metrics: dict[str, Any]) -> bool:
        """Whether the trial must stop, given what it reported at ``step``."""
        value = _value(self.metric, metrics, self.sign)
        with self.lock:
            self._steps[trial] = float(step)
            return bool(self.scheduler.on_report(trial, float(step), value))

    def complete(self, trial: str, value: float | None, pruned: bool) -> None:
        """A trial ended (completed or pruned); ``value`` is its metric as the search reads it,
        taken to be at the last step it reported."""
        signed = None if value is None or not math.isfinite(value) else self.sign * value
        with self.lock:
            self.scheduler.on_complete(trial, self._steps.pop(trial, None), signed, pruned)

    # -- across processes --------------------------------------------------------------------

    def address(self) -> tuple[tuple[str, int], bytes]:
        """Start the listener once; its address and key."""
        with self.lock:
            if self._address is None:
                from multiprocessing.connection import Listener

                self._listener = Listener(("127.0.0.1", 0), authkey=self._key)
                self._address = self._listener.address
                threading.Thread(target=self._serve, name="prefect-like-search-board", daemon=True).start()
        return self._address, self._key

    def _serve(self) -> None:
        while not self._closed:
            try:
                connection = self._listener.accept()
            except Exception:  # closed, or a client with the wrong key
                if self._closed:
                    return
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: Any) -> None:
        with connection:
            while True:
                try:
                    trial, step, metrics = connection.recv()
                except (EOFError, OSError):
                    return
                try:
                    answer: Any = self.report(trial, step, metrics)
                except ValueError as exc:
                    answer = str(exc)
                connection.send(answer)

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            address = self._address
            try:
                self._listener.close()
                if address is not None:  # wake the accept() still waiting
                    from multiprocessing.connection import Client

                    Client(address, authkey=self._key).close()
            except Exception:
                pass

    def __reduce__(self) -> tuple[Any, ...]:
        address, key = self.address()
        return (RemoteBoard, (address, key))


class RemoteBoard:
    """A board in another process, asked over one connection per process."""

    _connections: dict[tuple[Any, ...], Any] = {}
    _lock = threading.Lock()
    _unreachable: set[tuple[Any, ...]] = set()

    def __init__(self, address: tuple[str, int], key: bytes) -> None:
        self.address: tuple[str, int] = (str(address[0]), int(address[1]))
        self.key = key

    def report(self, trial: str, step: float, metrics: dict[str, Any]) -> bool:
        where = (*self.address, os.getpid())
        with self._lock:
            if where in self._unreachable:
                return False
            connection = self._connections.get(where)
            try:
                if connection is None:
                    from multiprocessing.connection import Client

                    connection = self._connections[where] = Client(self.address, authkey=self.key)
                connection.send((trial, step, metrics))
                answer = connection.recv()
            except (OSError, EOFError) as exc:
                self._connections.pop(where, None)
                self._unreachable.add(where)
                log.warning(
                    "this worker cannot reach the search's scheduler at %s:%s (%s); its trials "
                    "report metrics but are never pruned", *self.address, exc,
                )
                return False
        if isinstance(answer, str):
            raise ValueError(answer)
        return bool(answer)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteBoard, (self.address, self.key))


__all__ = ["Board", "RemoteBoard"]
