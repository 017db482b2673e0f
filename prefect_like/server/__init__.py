"""The tracking server: ``create_app(home)`` builds the ASGI app, ``serve`` runs it on uvicorn.

Importing this package does not import FastAPI or uvicorn; they are the ``server`` extra.
"""

from __future__ import annotations

import gc
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_like import settings
from prefect_like.errors import MissingEngineError

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4300


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
    """Refuse to serve on a non-loopback address without an API key (ValueError says why)."""
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"refusing to bind {host}: serving beyond this machine requires an API key; "
            "set PREFECT_LIKE_API_KEY (clients send the same setting)"
        )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: Path | str | None = None,
    log_level: str = "info",
) -> None:
    """Run the tracking server until interrupted (one process: the store has one writer)."""
    check_bind(host, settings.api_key())
    home = Path(home).expanduser() if home is not None else settings.home()
    home.mkdir(parents=True, exist_ok=True)
    app = create_app(home)
    # A batch decodes into ~10 objects per event, all garbage a moment later: collecting every
    # 700 allocations (the default) would scan the heap dozens of times per batch.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingEngineError("the tracking server", "server") from exc
    shown = f"[{host}]" if ":" in host else host
    print(f"prefect-like tracking server: http://{shown}:{port}/api (store: {home / 'prefect_like.db'})", flush=True)
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False, server_header=False,
        timeout_graceful_shutdown=5,
    )


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "check_bind", "create_app", "is_loopback", "serve"]
