"""Artifacts: tables, markdown, links and progress bars that flow and task runs publish.

``create_table_artifact(table, key=None, description=None)`` and its siblings take Prefect 3's
arguments and return the new artifact's id (a ``uuid.UUID``). Called inside a task or flow run,
the artifact belongs to that run; outside any run, to none (Prefect allows it too).

An artifact is an event (``events.artifact_event``), appended to the process-local buffer like a
state change or a log line: it travels to the store in the same batches, so a sweep that writes
a table per trial costs one small tuple per table on its hot path, never a request or a
transaction. On a Dask or Ray worker it goes home with the batch's other events. Outside a run
the process's Recorder is started, as a task called outside a flow starts it, and delivers it at
exit at the latest.

Each is stored with its run (``artifacts`` table; ``prefect-like artifacts ls``, the API's
``/api/artifacts``, the run pages of the dashboard). A progress artifact is updated in place
(``update_progress_artifact``): the update is an event with a higher seq, so the latest wins in
whatever order batches arrive.

Called from async code (an ``async def`` task or flow), each returns a coroutine to await, as
Prefect's do; the ``acreate_*`` names are the async ones.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from prefect_like.context import flow_run_context, task_run_context
from prefect_like.tracking.events import artifact_event, emit

KEY = re.compile(r"^[a-z0-9-]+$")
TYPES = ("table", "markdown", "link", "progress", "image")

_update_lock = threading.Lock()
_last_update = 0
# Artifact ids from a generator of our own, seeded from the OS once per process (and again in a
# forked child): ``uuid4()`` asks the OS for every id, which costs more than a short task run,
# and the module-level ``random`` is the user's to seed for a reproducible sweep.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def _new_id() -> uuid.UUID:
    return uuid.UUID(int=_ids.getrandbits(128), version=4)


def validate_key(key: str | None) -> str | None:
    """Prefect's rule for a key: lowercase letters, numbers and dashes (None: no key)."""
    if key is None:
        return None
    if not isinstance(key, str) or not KEY.match(key):
        raise ValueError(
            f"artifact key {key!r} is invalid: a key must only contain lowercase letters, numbers, "
            "and dashes (e.g. 'loss-table')"
        )
    return key


def _description(description: str | None) -> str | None:
    if description is not None and not isinstance(description, str):
        raise TypeError(f"an artifact's description is a string, got {type(description).__name__}")
    return description


def _run_ids() -> tuple[str | None, str | None]:
    """(task run id, flow run id) of the run this code is in, if any."""
    task_run = task_run_context.get()
    if task_run is not None:
        return task_run.task_run_id, task_run.flow_run_id
    flow_run = flow_run_context.get()
    return None, flow_run.flow_run_id if flow_run is not None else None


def _deliver_outside_runs() -> None:
    # In a run, the flow's Recorder (or a worker's shipper) drains the buffer already.
    from prefect_like.logging import setup_logging
    from prefect_like.tracking.recorder import get_recorder

    setup_logging()
    get_recorder()


def _publish(type_: str, payload: Any, key: str | None, description: str | None) -> uuid.UUID:
    key = validate_key(key)
    description = _description(description)
    artifact_id = _new_id()
    task_run_id, flow_run_id = _run_ids()
    data: dict[str, Any] = {"data": payload}
    if key is not None:
        data["key"] = key
    if description is not None:
        data["description"] = description
    if task_run_id is not None:
        data["task_run_id"] = task_run_id
    if task_run_id is None and flow_run_id is None:
        _deliver_outside_runs()  # first: a Recorder of other settings takes what is buffered with it
    emit(artifact_event(artifact_id.hex, 0, flow_run_id, time.time(), type_, data))
    return artifact_id


def _update_seq() -> int:
    """The seq of an update: microseconds since the epoch, rising within this process, so the
    latest of updates made anywhere wins (creation is seq 0)."""
    global _last_update
    with _update_lock:
        _last_update = max(_last_update + 1, time.time_ns() // 1000)
        return _last_update


def _sanitize(value: Any) -> Any:
    """NaN as None, as Prefect stores a table (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [_sanitize(item) for item in value]
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    return value


def _table(table: Any) -> Any:
    """A table in one of Prefect's three shapes: a dict of columns, a list of row dicts, or a
    list of row lists."""
    if isinstance(table, dict):
        if not all(isinstance(column, list | tuple) for column in table.values()):
            raise TypeError("a table given as a dict maps each column name to a list of values")
        return {str(name): _sanitize(list(column)) for name, column in table.items()}
    if isinstance(table, list | tuple):
        rows = list(table)
        if all(isinstance(row, dict) for row in rows):
            return [{str(k): _sanitize(v) for k, v in row.items()} for row in rows]
        if all(isinstance(row, list | tuple) for row in rows):
            return [_sanitize(list(row)) for row in rows]
    raise TypeError(
        "a table is a dict of column lists, a list of row dicts, or a list of row lists; "
        f"got {type(table).__name__}"
    )


def _progress(progress: Any) -> float:
    if isinstance(progress, bool) or not isinstance(progress, int | float) or not math.isfinite(progress):
        raise ValueError(f"progress is a number from 0 to 100, got {progress!r}")
    # Prefect clamps a value out of range (and warns); so do we, without the warning's noise.
    return float(min(100.0, max(0.0, progress)))


def _in_async_context() -> bool:
    # Prefect's rule: in a run, the run's own function decides (a sync flow called where an
    # event loop runs, as in Jupyter, gets ids, not coroutines); outside runs, a running loop.
    task_run = task_run_context.get()
    if task_run is not None:
        return task_run.task.is_async
    flow_run = flow_run_context.get()
    if flow_run is not None:
        return flow_run.flow.is_async
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _dispatch(make: Any) -> Any:
    # Prefect's artifact functions return a coroutine when called from async code; the
    # artifact is made when it is awaited, as theirs is.
    if _in_async_context():

        async def later() -> uuid.UUID:
            return make()

        return later()
    return make()


# -- the Prefect functions -------------------------------------------------------------------------


def create_table_artifact(table: Any, key: str | None = None, description: str | None = None) -> uuid.UUID:
    """Publish a table: a dict of column lists, a list of row dicts, or a list of row lists;
    returns its id. NaN is stored as null."""
    return _dispatch(lambda: _publish("table", _table(table), key, description))


def create_markdown_artifact(markdown: str, key: str | None = None, description: str | None = None) -> uuid.UUID:
    """Publish markdown text (the dashboard renders a safe subset of it; raw HTML is shown as text)."""
    if not isinstance(markdown, str):
        raise TypeError(f"markdown is a string, got {type(markdown).__name__}")
    return _dispatch(lambda: _publish("markdown", markdown, key, description))


def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None,
    client: Any = None,
) -> uuid.UUID:
    """Publish a link (``client`` is accepted for Prefect's signature and not used)."""
    if not isinstance(link, str) or not link:
        raise ValueError(f"a link is a non-empty string, got {link!r}")
    payload = {"link": link, "link_text": link_text}
    return _dispatch(lambda: _publish("link", payload, key, description))


def create_image_artifact(image_url: str, key: str | None = None, description: str | None = None) -> uuid.UUID:
    """Publish an image by its URL (the dashboard shows it as a link: it loads nothing from elsewhere)."""
    if not isinstance(image_url, str) or not image_url:
        raise ValueError(f"an image URL is a non-empty string, got {image_url!r}")
    return _dispatch(lambda: _publish("image", image_url, key, description))


def create_progress_artifact(progress: float, key: str | None = None, description: str | None = None) -> uuid.UUID:
    """Publish a progress bar at ``progress`` percent (0 to 100; outside that it is clamped)."""
    value = _progress(progress)
    return _dispatch(lambda: _publish("progress", value, key, description))


def update_progress_artifact(
    artifact_id: uuid.UUID | str, progress: float, description: str | None = None, client: Any = None
) -> uuid.UUID:
    """Set a progress artifact's progress (and description, if given); returns its id."""
    try:
        ident = artifact_id if isinstance(artifact_id, uuid.UUID) else uuid.UUID(str(artifact_id))
    except ValueError:
        raise ValueError(f"{artifact_id!r} is not an artifact id") from None
    value = _progress(progress)
    description = _description(description)

    def make() -> uuid.UUID:
        data: dict[str, Any] = {"data": value}
        if description is not None:
            data["description"] = description
        _, flow_run_id = _run_ids()
        if flow_run_id is None:
            _deliver_outside_runs()
        emit(artifact_event(ident.hex, _update_seq(), flow_run_id, time.time(), "progress", data))
        return ident

    return _dispatch(make)


def _async(fn: Any) -> Any:
    async def variant(*args: Any, **kwargs: Any) -> uuid.UUID:
        result = fn(*args, **kwargs)
        return await result if isinstance(result, Coroutine) else result

    variant.__name__ = "a" + fn.__name__
    variant.__doc__ = f"``{fn.__name__}`` to await."
    return variant


acreate_table_artifact = _async(create_table_artifact)
acreate_markdown_artifact = _async(create_markdown_artifact)
acreate_link_artifact = _async(create_link_artifact)
acreate_image_artifact = _async(create_image_artifact)
acreate_progress_artifact = _async(create_progress_artifact)
aupdate_progress_artifact = _async(update_progress_artifact)


@dataclass
class Artifact:
    """Prefect's ``Artifact``: ``Artifact(type="table", key="k", data=...).create()`` publishes
    it; ``Artifact.get("k")`` reads the latest of a key from the tracker (None if there is none)."""

    type: str | None = None
    key: str | None = None
    description: str | None = None
    data: Any = None
    id: uuid.UUID | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        validate_key(self.key)

    def create(self) -> Artifact:
        self.id = _publish(self.type or "markdown", self.data, self.key, self.description)
        return self

    @classmethod
    def get(cls, key: str | None = None) -> dict[str, Any] | None:
        from prefect_like.client import connect
        from prefect_like.errors import RunNotFoundError

        if key is None:
            return None
        with connect() as reader:
            try:
                return reader.get_artifact(key)
            except RunNotFoundError:
                return None


__all__ = [
    "Artifact",
    "acreate_image_artifact",
    "acreate_link_artifact",
    "acreate_markdown_artifact",
    "acreate_progress_artifact",
    "acreate_table_artifact",
    "aupdate_progress_artifact",
    "create_image_artifact",
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "update_progress_artifact",
    "validate_key",
]
