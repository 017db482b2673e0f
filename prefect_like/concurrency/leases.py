"""Where slots are taken: the embedded store or the tracking server; and the thread that renews
the leases a process holds.

``slots()`` picks the backend as the tracker does: the server's API when
``PREFECT_LIKE_API_URL`` is set (``HttpSlots``), else the SQLite store under
``PREFECT_LIKE_HOME`` (``StoreSlots``, one connection per process). Both offer the same calls
(``try_acquire``, ``renew``, ``release``, ``limited_names``), so ``acquire`` and the task
engine's tag slots do not care which.

``acquire`` tries, and while a limit is full waits (the backend's ``retry_after``, else a
backoff from 20 ms to 0.5 s, jittered, so waiters do not take the lock in step) until it has
every slot or ``timeout_seconds`` pass (``TimeoutError``, as Prefect raises). A held lease is
renewed by ``RENEWER``, one daemon thread per process, every third of its duration: a process
that dies stops renewing, so its slots come back one lease duration later
(``PREFECT_LIKE_CONCURRENCY_LEASE_SECONDS``, 60 s by default); a process that exits normally,
a Ctrl-C included, gives back what it still holds at once. A lease found gone at renewal
(someone ran ``concurrency-limit reset``) is logged once; the holder carries on.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from prefect_like import settings

log = logging.getLogger("prefect_like.concurrency")

DEFAULT_LEASE_SECONDS = 60.0


def lease_seconds() -> float:
    value = settings.float_setting("CONCURRENCY_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    if not 0 < value < 1e7:
        raise ValueError(f"PREFECT_LIKE_CONCURRENCY_LEASE_SECONDS must be a positive number, got {value:g}")
    return value


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class Slots(Protocol):
    def try_acquire(self, names: Sequence[str], occupy: int, mode: str, holder: str | None,
                    lease_seconds: float, strict: bool) -> dict[str, Any]: ...
    def renew(self, lease_ids: Sequence[str], lease_seconds: float) -> list[str]: ...
    def release(self, lease_ids: Sequence[str]) -> None: ...
    def limited_names(self) -> frozenset[str]: ...


class StoreSlots:
    """Slots in the embedded SQLite store: each call one transaction on this process's connection."""

    def __init__(self, path: Any) -> None:
        from prefect_like.tracking.store import Store

        self.store = Store(path)

    def try_acquire(self, names: Sequence[str], occupy: int, mode: str, holder: str | None,
                    lease_seconds: float, strict: bool) -> dict[str, Any]:
        from prefect_like.concurrency import store

        return store.try_acquire(self.store, names, occupy, mode, holder, lease_seconds, strict)

    def renew(self, lease_ids: Sequence[str], lease_seconds: float) -> list[str]:
        from prefect_like.concurrency import store

        return store.renew(self.store, lease_ids, lease_seconds)

    def release(self, lease_ids: Sequence[str]) -> None:
        from prefect_like.concurrency import store

        store.release(self.store, lease_ids)

    def limited_names(self) -> frozenset[str]:
        from prefect_like.concurrency import store

        return store.limited_names(self.store)


class HttpSlots:
    """Slots through the tracking server's ``/api/concurrency`` routes."""

    def __init__(self, url: str) -> None:
        from prefect_like.client import Client

        self.client = Client(url)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self.client._request("POST", f"/concurrency{path}", json=body)

    def try_acquire(self, names: Sequence[str], occupy: int, mode: str, holder: str | None,
                    lease_seconds: float, strict: bool) -> dict[str, Any]:
        from prefect_like.errors import RunNotFoundError

        try:
            return self._post("/acquire", {"names": list(names), "occupy": occupy, "mode": mode,
                                           "holder": holder, "lease_seconds": lease_seconds, "strict": strict})
        except RunNotFoundError as exc:  # a 404 names the missing limit
            raise LookupError(str(exc)) from None

    def renew(self, lease_ids: Sequence[str], lease_seconds: float) -> list[str]:
        return self._post("/renew", {"lease_ids": list(lease_ids), "lease_seconds": lease_seconds})["gone"]

    def release(self, lease_ids: Sequence[str]) -> None:
        self._post("/release", {"lease_ids": list(lease_ids)})

    def limited_names(self) -> frozenset[str]:
        return frozenset(limit["name"] for limit in self.client._get("/concurrency/limits") if limit["active"])


_warned: set[str] = set()  # names said once to have no limit
_backends: dict[str, Slots] = {}
_backends_lock = threading.Lock()


def slots() -> Slots:
    """This process's backend for the current settings (made once per target)."""
    url = settings.api_url()
    target = url or str(settings.database_path())
    backend = _backends.get(target)
    if backend is None:
        with _backends_lock:
            backend = _backends.get(target)
            if backend is None:
                backend = _backends[target] = HttpSlots(url) if url else StoreSlots(target)
    return backend


os.register_at_fork(after_in_child=_backends.clear)  # a child opens its own connection


class Lease:
    """Slots held: ``release()`` them (once; later calls do nothing)."""

    __slots__ = ("backend", "lease_ids", "names", "seconds", "released")

    def __init__(self, backend: Slots, lease_ids: list[str], names: list[str], seconds: float) -> None:
        self.backend = backend
        self.lease_ids = lease_ids
        self.names = names
        self.seconds = seconds
        self.released = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.lease_ids:
            RENEWER.forget(self)
            try:
                self.backend.release(self.lease_ids)
            except Exception as exc:  # its leases expire on their own
                log.warning("could not release concurrency slots of %s (%s); they come back when "
                            "their lease expires", ", ".join(self.names), exc)


class Renewer:
    """One daemon thread renewing every lease this process holds."""

    def __init__(self) -> None:
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None or not self._thread.is_alive():
                if self._thread is None:
                    atexit.register(self.release_all)
                self._thread = threading.Thread(target=self._run, name="prefect-like-leases", daemon=True)
                self._thread.start()
        self._wake.set()

    def release_all(self) -> None:
        """Give back what this process still holds as it exits (a run cut short by Ctrl-C whose
        thread never reached its release), so the next flow need not wait for the leases to lapse."""
        with self._lock:
            held = list(self._held)
        for lease in held:
            lease.release()

    def forget(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = list(self._held)
            if not held:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            interval = min(lease.seconds for lease in held) / 3
            self._wake.wait(interval)
            self._wake.clear()
            for lease in held:
                if lease.released:
                    continue
                try:
                    gone = lease.backend.renew(lease.lease_ids, lease.seconds)
                except Exception as exc:
                    log.warning("could not renew concurrency slots of %s: %s", ", ".join(lease.names), exc)
                    continue
                if gone:
                    log.warning("concurrency slots of %s were freed while held (reset, or a lease "
                                "that expired)", ", ".join(lease.names))
                    lease.lease_ids = [i for i in lease.lease_ids if i not in gone]


RENEWER = Renewer()


def _names(names: str | Sequence[str]) -> list[str]:
    if isinstance(names, str):
        return [names]
    listed = list(names)
    if not all(isinstance(n, str) for n in listed):
        raise TypeError(f"concurrency limit names are strings, got {names!r}")
    return listed


def _attempt(names: list[str], occupy: int, mode: str, seconds: float, strict: bool,
             backend: Slots) -> tuple[Lease | None, float]:
    answer = backend.try_acquire(names, occupy, mode, holder_name(), seconds, strict)
    if answer["acquired"]:
        unlimited = set(names) - set(answer.get("limits", names)) - _warned
        if unlimited:  # as Prefect does: the block runs, unlimited, and says so once
            _warned.update(unlimited)
            log.warning("no active concurrency limit named %s: not limiting it (create one with "
                        "`prefect-like concurrency-limit create NAME N`, or pass strict=True to refuse)",
                        ", ".join(map(repr, sorted(unlimited))))
        lease = Lease(backend, answer["lease_ids"], answer.get("limits", names), seconds)
        if lease.lease_ids:
            RENEWER.hold(lease)
        return lease, 0.0
    return None, float(answer.get("retry_after") or 0.0)


def _pause(backoff: float, hint: float, deadline: float | None) -> float:
    pause = max(hint, backoff) * (0.5 + random.random())
    if deadline is not None:
        pause = min(pause, max(0.0, deadline - time.monotonic()))
    return pause


def _timed_out(names: list[str], timeout: float | None) -> TimeoutError:
    return TimeoutError(f"could not take concurrency slots of {', '.join(map(repr, names))} within {timeout:g} s")


def acquire(names: str | Sequence[str], occupy: int = 1, mode: str = "concurrency",
            timeout_seconds: float | None = None, strict: bool = False,
            lease_duration: float | None = None) -> Lease:
    """Take ``occupy`` slots of every named limit, waiting while any is full."""
    listed = _names(names)
    seconds = lease_seconds() if lease_duration is None else float(lease_duration)
    backend = slots()
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    backoff = 0.02
    while True:
        lease, hint = _attempt(listed, occupy, mode, seconds, strict, backend)
        if lease is not None:
            return lease
        if deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(listed, timeout_seconds)
        time.sleep(_pause(backoff, hint, deadline))
        backoff = min(backoff * 2, 0.5)


async def acquire_async(names: str | Sequence[str], occupy: int = 1, mode: str = "concurrency",
                        timeout_seconds: float | None = None, strict: bool = False,
                        lease_duration: float | None = None) -> Lease:
    """``acquire`` for async code: each attempt in a thread, the waits on the loop."""
    listed = _names(names)
    seconds = lease_seconds() if lease_duration is None else float(lease_duration)
    backend = await asyncio.to_thread(slots)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    backoff = 0.02
    while True:
        lease, hint = await asyncio.to_thread(_attempt, listed, occupy, mode, seconds, strict, backend)
        if lease is not None:
            return lease
        if deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(listed, timeout_seconds)
        await asyncio.sleep(_pause(backoff, hint, deadline))
        backoff = min(backoff * 2, 0.5)
