"""Making and reading limits from code, where runs are tracked: the embedded store, or the
tracking server when ``PREFECT_LIKE_API_URL`` is set (the CLI's ``concurrency-limit`` commands
call these).

    from prefect_like.concurrency import create_limit
    create_limit("gpu", 2)                                   # a tag's or a block's limit
    create_limit("openai", 10, slot_decay_per_second=2.0)    # a rate limit

A limit that does not exist is ``LookupError``; a bad name or number ``ValueError``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from prefect_like import settings


class Limits:
    """The limits of the tracker the settings point at. Use as a context manager."""

    def __init__(self) -> None:
        url = settings.api_url()
        self.client: Any = None
        self.store: Any = None
        if url:
            from prefect_like.client import Client

            self.client = Client(url)
        else:
            from prefect_like.tracking.store import Store

            self.store = Store(settings.database_path())

    def __enter__(self) -> Limits:
        return self

    def __exit__(self, *exc: Any) -> None:
        (self.client or self.store).close()

    def _local(self, name: str, *args: Any) -> Any:
        from prefect_like.concurrency import store

        return getattr(store, name)(self.store, *args)

    def _remote(self, method: str, path: str, **kwargs: Any) -> Any:
        from prefect_like.errors import RunNotFoundError

        try:
            return self.client._request(method, "/concurrency/limits" + path, **kwargs)
        except RunNotFoundError as exc:  # the server's 404: no such limit
            raise LookupError(str(exc)) from None

    def create(self, name: str, limit: int, slot_decay_per_second: float | None = None) -> dict[str, Any]:
        if self.client:
            body = {"name": name, "limit": limit, "slot_decay_per_second": slot_decay_per_second}
            return self._remote("POST", "", json=body)
        return self._local("create_limit", name, limit, slot_decay_per_second)

    def all(self) -> list[dict[str, Any]]:
        return self._remote("GET", "") if self.client else self._local("list_limits")

    def get(self, name: str) -> dict[str, Any]:
        return self._remote("GET", f"/{_q(name)}") if self.client else self._local("get_limit", name)

    def delete(self, name: str) -> None:
        if self.client:
            self._remote("DELETE", f"/{_q(name)}")
        else:
            self._local("delete_limit", name)

    def reset(self, name: str) -> dict[str, Any]:
        return self._remote("POST", f"/{_q(name)}/reset") if self.client else self._local("reset_limit", name)

    def set_active(self, name: str, active: bool) -> dict[str, Any]:
        if self.client:
            return self._remote("POST", f"/{_q(name)}/active", params={"active": active})
        return self._local("set_active", name, active)


def _q(name: str) -> str:
    return quote(name, safe="")


def _forget() -> None:
    from prefect_like.concurrency.tags import forget_limits

    forget_limits()  # this process sees its own change at once


def create_limit(name: str, limit: int, slot_decay_per_second: float | None = None) -> dict[str, Any]:
    """Create the limit ``name`` of ``limit`` slots, or change its number of slots."""
    with Limits() as limits:
        made = limits.create(name, limit, slot_decay_per_second)
    _forget()
    return made


def read_limit(name: str) -> dict[str, Any]:
    """A limit, with ``active_slots`` taken now and ``holders`` (who holds them)."""
    with Limits() as limits:
        return limits.get(name)


def list_limits() -> list[dict[str, Any]]:
    with Limits() as limits:
        return limits.all()


def delete_limit(name: str) -> None:
    with Limits() as limits:
        limits.delete(name)
    _forget()


def reset_limit(name: str) -> dict[str, Any]:
    """Free every slot of a limit."""
    with Limits() as limits:
        return limits.reset(name)
