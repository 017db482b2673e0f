"""Prefect 3's ``prefect.concurrency.sync``: ``concurrency`` and ``rate_limit`` for sync code.

    with concurrency("database", occupy=2):
        ...                          # at most the limit's slots are taken here, everywhere

    rate_limit("external-api")       # returns once a slot of the decaying limit is free

A name that has no limit (or an inactive one) does not limit: the block runs at once, as in
Prefect; ``strict=True`` refuses it instead (``LookupError``). ``timeout_seconds`` bounds the
wait (``TimeoutError``). ``lease_duration`` is how long a slot stays taken after its holder
dies without releasing it (renewed while held; ``PREFECT_LIKE_CONCURRENCY_LEASE_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect_like.concurrency.leases import acquire


@contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float | None = None,
    strict: bool = False,
) -> Iterator[None]:
    """Hold ``occupy`` slots of each named limit for the block (``max_retries`` is accepted for
    Prefect's signature; the wait is bounded by ``timeout_seconds``)."""
    if not names:
        yield
        return
    lease = acquire(names, occupy, "concurrency", timeout_seconds, strict, lease_duration)
    try:
        yield
    finally:
        lease.release()


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Wait until ``occupy`` slots of each named limit are free, and take them; they are never
    released but decay at the limit's ``slot_decay_per_second``, which each limit must have."""
    if not names:
        return
    acquire(names, occupy, "rate_limit", timeout_seconds, strict)


__all__ = ["concurrency", "rate_limit"]
