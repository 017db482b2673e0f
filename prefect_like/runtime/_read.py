"""What the three runtime modules share: attribute lookup from a table of readers, and the
links to a run on the tracking server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def attribute(module: str, fields: dict[str, Callable[[], Any]], name: str) -> Any:
    """The value of ``name`` from ``fields``, read now; AttributeError, as for any module, if unknown."""
    reader = fields.get(name)
    if reader is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return reader()


def run_urls(kind: str, run_id: str | None) -> tuple[str | None, str | None]:
    """The API and dashboard URLs of the ``kind`` (``flow-runs``, ``task-runs``) run ``run_id``:
    ``http://host:4300/api/flow-runs/ID`` and ``http://host:4300/#/flow-runs/ID``; (None, None)
    outside a run or with no tracking server."""
    from prefect_like import settings

    api = settings.api_url()
    if not run_id or not api:
        return None, None
    dashboard = api.removesuffix("/api")
    return f"{api}/{kind}/{run_id}", f"{dashboard}/#/{kind}/{run_id}"
