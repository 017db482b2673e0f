"""The tracking server: ``create_app(home)`` builds the ASGI app, ``serve`` runs it on uvicorn.

Importing this package does not import FastAPI or uvicorn; they are the ``server`` extra.

What ``serve`` checks before it binds (each refusal is one line, and nothing is created):

- Beyond loopback, an API key of at least ``MIN_KEY_LENGTH`` characters
  (``PREFECT_LIKE_API_KEY``): a blank or guessable key on a public address protects nothing.
- The host names the server answers to: on loopback, ``localhost``, ``127.0.0.1``, ``[::1]``
  and the bound address, plus ``PREFECT_LIKE_SERVER_ALLOWED_HOSTS`` (comma-separated names,
  any port); a request naming another host in its ``Host`` header gets 421 (DNS rebinding).
  Beyond loopback the key guards every route, and the list applies only when the setting is set.
- ``PREFECT_LIKE_MAX_MESSAGE``, the length past which texts are cut (``tracking.limits``).
"""

from __future__ import annotations

import gc
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from prefect_like import settings
from prefect_like.errors import MissingEngineError
from prefect_like.tracking.limits import message_limit

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4300
MIN_KEY_LENGTH = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def create_app(home: Path | str, **options: Any) -> FastAPI:
    """The tracking API over the SQLite store in ``home`` (see ``prefect_like.server.app``)."""
    try:
        from prefect_like.server.app import create_app as _create_app
    except ImportError as exc:
        if exc.name in ("fastapi", "starlette", "uvicorn"):
            raise MissingEngineError("the tracking server", "server") from exc
        raise
    return _create_app(home, **options)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve on a non-loopback address without a key of ``MIN_KEY_LENGTH`` characters
    (ValueError says why)."""
    if is_loopback(host):
        return
    key = (api_key or "").strip()
    if not key:
        raise ValueError(
            f"refusing to bind {host}: serving beyond this machine requires an API key; "
            "set PREFECT_LIKE_API_KEY (clients send the same setting)"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"refusing to bind {host}: PREFECT_LIKE_API_KEY is {len(key)} characters, and serving "
            f"beyond this machine needs at least {MIN_KEY_LENGTH}; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def host_name(value: str) -> str:
    """A ``Host`` header's host (or an allow-list entry's): lower case, without its port or a
    trailing dot; an IPv6 address in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] or value
    if value.count(":") > 1:  # a bare IPv6 address, as an entry may give it
        return f"[{value}]"
    name, colon, port = value.partition(":")
    return (name if colon and port.isdigit() else value).rstrip(".")


def allowed_hosts(host: str) -> list[str] | None:
    """The host names a server bound to ``host`` answers to; None for any (see the module).

    ValueError names an entry of ``PREFECT_LIKE_SERVER_ALLOWED_HOSTS`` that is not a host name.
    """
    extra = [entry.strip() for entry in (settings._get("SERVER_ALLOWED_HOSTS") or "").split(",")]
    for entry in filter(None, extra):
        if "/" in entry or any(c.isspace() for c in entry):
            raise ValueError(
                f"PREFECT_LIKE_SERVER_ALLOWED_HOSTS: {entry!r} is not a host name; list names "
                "like tracking.example.org or 10.0.0.5, comma-separated (any port is allowed)"
            )
    names = [*LOOPBACK_NAMES, *filter(None, extra)]
    if not is_loopback(host) and len(names) == len(LOOPBACK_NAMES):
        return None
    if not _is_wildcard(host):
        names.append(host)
    return sorted({host_name(name) for name in names})


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: Path | str | None = None,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Run the tracking server until interrupted.

    ``workers`` > 1 runs that many server processes on one socket (uvicorn's workers), for a
    PostgreSQL store only (``PREFECT_LIKE_DATABASE_URL``): the processes keep nothing another
    needs, the store serialises their writes and heartbeat checks (``tracking.postgres``),
    and each takes its share of the rate limit. A SQLite file has one writer at a time, so
    more processes would add no throughput: refused, in one line.
    """
    from prefect_like.tracking import databases

    check_bind(host, settings.api_key())
    hosts = allowed_hosts(host)
    message_limit()  # a malformed setting is refused here, not found on the first long message
    home = Path(home).expanduser() if home is not None else settings.home()
    url = databases.resolve(settings.database_url(), home)
    if workers < 1:
        raise ValueError(f"--workers must be 1 or more, got {workers}")
    if workers > 1 and not databases.is_postgres(url):
        raise ValueError(
            f"--workers {workers} needs a PostgreSQL store: a SQLite file takes one writer at a "
            "time, so more processes add no throughput; set PREFECT_LIKE_DATABASE_URL=postgresql://..."
        )
    if workers > 1:
        _serve_workers(host, port, home, log_level, workers, hosts, url)
        return
    if not databases.is_postgres(url):
        home.mkdir(parents=True, exist_ok=True)
    app = create_app(home, allowed_hosts=hosts)
    _tune_gc()
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingEngineError("the tracking server", "server") from exc
    shown = f"[{host}]" if ":" in host else host
    print(
        f"prefect-like tracking server: http://{shown}:{port}/api (store: {databases.describe(url)})\n"
        f"dashboard: http://{shown}:{port}/",
        flush=True,
    )
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False, server_header=False,
        timeout_graceful_shutdown=5,
    )


_WORKER_SETTING = "PREFECT_LIKE_SERVER_WORKER"


def _serve_workers(
    host: str, port: int, home: Path, log_level: str, workers: int, hosts: list[str] | None, url: str
) -> None:
    from prefect_like.tracking import databases

    try:
        import uvicorn
    except ImportError as exc:
        raise MissingEngineError("the tracking server", "server") from exc
    # Upgraded once, here, before any worker opens it; then each worker builds its own app.
    databases.open_store(url, migrate=settings.database_migrate_on_start()).close()
    os.environ[_WORKER_SETTING] = orjson.dumps({"home": str(home), "hosts": hosts, "workers": workers}).decode()
    shown = f"[{host}]" if ":" in host else host
    print(
        f"prefect-like tracking server: http://{shown}:{port}/api, {workers} processes "
        f"(store: {databases.describe(url)})\ndashboard: http://{shown}:{port}/",
        flush=True,
    )
    uvicorn.run(
        "prefect_like.server:worker_app", factory=True, workers=workers, host=host, port=port,
        log_level=log_level, access_log=False, server_header=False, timeout_graceful_shutdown=5,
    )


def worker_app() -> FastAPI:
    """The app of one of ``serve``'s worker processes (uvicorn calls this in each)."""
    from prefect_like.server.app import DEFAULT_RATE_BURST, DEFAULT_RATE_LIMIT

    config = orjson.loads(os.environ[_WORKER_SETTING])
    share = int(config["workers"])
    # A client's requests reach any of the processes: each allows its share of the limit.
    rate = settings.float_setting("SERVER_RATE_LIMIT", DEFAULT_RATE_LIMIT) / share
    burst = settings.float_setting("SERVER_RATE_BURST", DEFAULT_RATE_BURST) / share
    app = create_app(config["home"], allowed_hosts=config["hosts"], rate_limit=rate, rate_burst=burst)
    _tune_gc()
    return app


def _tune_gc() -> None:
    # A batch decodes into ~10 objects per event, all garbage a moment later: collecting every
    # 700 allocations (the default) would scan the heap dozens of times per batch.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MIN_KEY_LENGTH",
    "allowed_hosts",
    "check_bind",
    "create_app",
    "host_name",
    "is_loopback",
    "serve",
    "worker_app",
]
