"""What the three runtime modules share: attribute lookup from a table of readers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def attribute(module: str, fields: dict[str, Callable[[], Any]], name: str) -> Any:
    """The value of ``name`` from ``fields``, read now; AttributeError, as for any module, if unknown."""
    reader = fields.get(name)
    if reader is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return reader()
