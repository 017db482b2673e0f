"""Prefect 3's ``prefect.concurrency.asyncio``: ``concurrency`` and ``rate_limit`` for async code.

    async with concurrency("database", occupy=2):
        ...

    await rate_limit("external-api")

The same limits and rules as ``prefect_like.concurrency.sync``; waiting never blocks the event
loop (each attempt runs in a thread, the pauses are ``asyncio.sleep``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect_like.concurrency.leases import acquire_async


@asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float | None = None,
    strict: bool = False,
) -> AsyncIterator[None]:
    """Hold ``occupy`` slots of each named limit for the block."""
    if not names:
        yield
        return
    lease = await acquire_async(names, occupy, "concurrency", timeout_seconds, strict, lease_duration)
    try:
        yield
    finally:
        import asyncio

        await asyncio.to_thread(lease.release)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Wait until ``occupy`` slots of each named (decaying) limit are free, and take them."""
    if not names:
        return
    await acquire_async(names, occupy, "rate_limit", timeout_seconds, strict)


__all__ = ["concurrency", "rate_limit"]
