"""Settings, read from ``PREFECT_LIKE_*`` environment variables each time they are asked for.

Reading at call time (not at import) lets a test or a CLI flag change a setting for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "PREFECT_LIKE_"


def _get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(PREFIX + name)
    return value if value not in (None, "") else default


def home() -> Path:
    """Where the embedded database, persisted results and spill files live."""
    return Path(_get("HOME", "~/.prefect_like")).expanduser()  # type: ignore[arg-type]


def database_path() -> Path:
    return home() / "prefect_like.db"


def database_url() -> str | None:
    """Where a tracking server keeps its runs: ``postgresql://user:password@host/db`` (or
    ``sqlite:///path/to/file.db``); None: the SQLite file under ``home()``. Only the server
    reads it; flows and the CLI write and read the embedded store or the API."""
    url = _get("DATABASE_URL")
    return url.strip() if url and url.strip() else None


def database_migrate_on_start() -> bool:
    """Whether a server upgrades an older PostgreSQL store's schema when it starts (the
    default), or refuses it, naming ``prefect-like server database upgrade`` (``false``: a team
    that upgrades in a deliberate step). A SQLite file is always brought forward on opening."""
    value = (_get("DATABASE_MIGRATE_ON_START") or "true").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{PREFIX}DATABASE_MIGRATE_ON_START must be true or false, got {value!r}")
    return value in ("true", "1", "yes")


def results_path() -> Path:
    return home() / "results"


def api_url() -> str | None:
    """The tracking server's base URL, e.g. ``http://127.0.0.1:4300/api``; None for embedded."""
    url = _get("API_URL")
    return url.rstrip("/") if url else None


def api_key() -> str | None:
    return _get("API_KEY")


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a live flow run is taken for crashed. A flow run
    takes its own process's value with it (its first event); a reader's is only the fallback
    for runs stored without one. It must be longer than the interval between heartbeats."""
    interval = float_setting("HEARTBEAT_SECONDS", 10.0)
    timeout = float_setting("HEARTBEAT_TIMEOUT", 6 * interval)
    if not interval < timeout < float("inf"):
        raise ValueError(
            f"{PREFIX}HEARTBEAT_TIMEOUT ({timeout:g} s) must be longer than "
            f"{PREFIX}HEARTBEAT_SECONDS ({interval:g} s), the interval between heartbeats"
        )
    return timeout


TRACKING_ERROR_POLICIES = ("continue", "stop")


def on_tracking_error() -> str:
    """What a tracking failure does to a flow run: ``continue`` (the default) or ``stop``; see
    ``prefect_like.tracking.recorder``."""
    value = (_get("ON_TRACKING_ERROR") or "continue").strip().lower()
    if value not in TRACKING_ERROR_POLICIES:
        raise ValueError(f"{PREFIX}ON_TRACKING_ERROR must be 'continue' or 'stop', got {value!r}")
    return value


def float_setting(name: str, default: float) -> float:
    value = _get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{PREFIX}{name} must be a number, got {value!r}") from None


def int_setting(name: str, default: int) -> int:
    return int(float_setting(name, default))
