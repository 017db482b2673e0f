"""Result storage and summaries.

``ResultStorage`` keeps persisted results (for caching and ``persist_result``) as cloudpickle
files in a local folder, by default ``$PREFECT_LIKE_HOME/results``. Pickle runs code on load, so
results are only ever loaded from a folder this project wrote: the configured storage, never a
path that came from a run's parameters or the tracking API.

Summaries are what the tracker stores of parameters and results: JSON-able scalars and small
dicts/lists of scalars as they are (a sweep's metrics stay queryable), anything else as a short repr.
"""

from __future__ import annotations

import math
import os
import reprlib
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle

from prefect_like import settings
from prefect_like.errors import SerializationError
from prefect_like.futures import TaskFuture
from prefect_like.states import State

_SCALARS = (int, float, str, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
# What ``summarize`` gives back as it is, told by one set lookup (a float may not be finite).
AS_IS = frozenset({int, bool, type(None)})
# What a parameters summary holds as it is.
_NUMBERS = frozenset({int, float, bool, type(None)})
MAX_REPR = 200
MAX_ITEMS = 64


class ResultStorage:
    """A local folder of persisted results, one file per key."""

    def __init__(self, path: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> None:
        self._path = Path(path).expanduser() if path is not None else None
        self.max_bytes = max_bytes

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else settings.results_path()

    def write(self, key: str, value: Any, expires_at: float | None = None) -> None:
        try:
            payload = cloudpickle.dumps((expires_at, value), protocol=5)
        except Exception as exc:
            raise SerializationError(
                f"result of type {type(value).__name__} cannot be persisted: {exc}"
            ) from exc
        if self.max_bytes is not None and len(payload) > self.max_bytes:
            raise SerializationError(
                f"result of type {type(value).__name__} is {len(payload):,} bytes, over this "
                f"storage's limit of {self.max_bytes:,} bytes"
            )
        folder = self.path
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
        os.replace(tmp, folder / key)

    def read(self, key: str) -> tuple[bool, Any]:
        """(True, value) for a stored, unexpired result; (False, None) otherwise."""
        try:
            payload = (self.path / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        try:
            expires_at, value = cloudpickle.loads(payload)
        except Exception:
            return False, None  # unreadable (e.g. a class that no longer exists): recompute
        if expires_at is not None and expires_at < time.time():
            return False, None
        return True, value

    def __repr__(self) -> str:
        return f"ResultStorage({str(self._path) if self._path else 'default'!r})"


def resolve_storage(storage: ResultStorage | str | os.PathLike[str] | None) -> ResultStorage:
    if storage is None:
        return ResultStorage()
    if isinstance(storage, ResultStorage):
        return storage
    return ResultStorage(storage)


def summarize(value: Any) -> Any:
    """A small JSON-able stand-in for a parameter or result."""
    if type(value) in AS_IS:
        return value
    if type(value) in _SCALAR_TYPES:
        if type(value) is float and not math.isfinite(value):
            return str(value)
        if type(value) is str and len(value) > MAX_REPR:
            return value[:MAX_REPR] + "…"
        return value
    return _summarize_slow(value, depth=0)


def _summarize_slow(value: Any, depth: int) -> Any:
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0:  # numpy and similar scalars
        try:
            return summarize(item())
        except Exception:
            pass
    if isinstance(value, bool):
        return bool(value)
    for base in (int, float, str):  # subclasses: IntEnum, StrEnum and the like
        if isinstance(value, base):
            return summarize(base.__str__(value) if base is str else base(value))
    if depth < 2 and isinstance(value, dict) and len(value) <= MAX_ITEMS and all(type(k) is str for k in value):
        return {k: summarize(v) if type(v) in _SCALAR_TYPES else _summarize_slow(v, depth + 1) for k, v in value.items()}
    if depth < 2 and isinstance(value, (list, tuple)) and len(value) <= MAX_ITEMS:
        return [summarize(v) if type(v) in _SCALAR_TYPES else _summarize_slow(v, depth + 1) for v in value]
    return short_repr(value)


def summarize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: v if type(v) in _NUMBERS else summarize(v) for k, v in parameters.items()}


def summarize_call_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """What a task run's event says of its parameters, resolved or not: an upstream future (or
    the State a runner put in its place) is named ``<result of TASK ID>``; the one rule every
    task run event follows, whoever ends the run."""
    for value in parameters.values():
        if type(value) not in _NUMBERS:
            break
    else:  # the usual sweep's parameters: numbers, kept as they are
        return dict(parameters)
    try:
        return {
            name: value if type(value) in _NUMBERS
            else f"<result of {value.task_name} {value.task_run_id}>" if isinstance(value, TaskFuture)
            else f"<result of {value.run_id}>" if isinstance(value, State)
            else summarize(value)
            for name, value in parameters.items()
        }
    except Exception:
        return {name: short_repr(value) for name, value in parameters.items()}


_REPR = reprlib.Repr()  # keyword arguments to Repr() arrived only in Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, MAX_REPR, MAX_REPR, 40


def short_repr(value: Any) -> str:
    """At most ``MAX_REPR`` characters of repr, without rendering all of a big value first."""
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            size = len(value)
            text = f"<{type(value).__name__} of {size:,} bytes>" if size > MAX_REPR else repr(bytes(value))
        elif isinstance(value, (str, list, tuple, dict, set, frozenset)):
            text = _REPR.repr(value)
        else:
            text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 1] + "…"
