"""What one event may hold: the limits every writer of the store applies, in one place.

- **Text is cut, never refused.** A state message, a log line, and an error's ``message`` and
  ``traceback`` longer than ``PREFECT_LIKE_MAX_MESSAGE`` characters (100,000; never below
  1,000) keep their start and their end around a marker saying how long they were:
  ``... [truncated: 1,234,567 characters in all] ...``. A cut text is exactly the limit long,
  so cutting it again changes nothing (a batch sent twice still stores once). Text is cut where
  events are made (``events``, so the client never sends the bulk, and every event the
  embedded store writes is cut already) and again by the server as a batch arrives
  (``server.schemas``), whoever sent it.
- **Timestamps** are seconds since the epoch, from 0 to ``MAX_TIMESTAMP`` (the year 3000):
  milliseconds (JavaScript's ``Date.now()``), nanoseconds, NaN and infinities are all outside.
  The server refuses an event holding one (``server.schemas``); a reader shows one already
  stored as null (``queries``).
- **Integers** are what SQLite holds: 64-bit signed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from prefect_like import settings

log = logging.getLogger("prefect_like.tracking")

MAX_TIMESTAMP = 32_503_680_000.0  # 3000-01-01T00:00:00Z
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1

DEFAULT_MAX_MESSAGE = 100_000
# The lowest limit there is: a text this short is never cut, so the hot path asks no setting.
MIN_MAX_MESSAGE = 1_000
_ERROR_TEXTS = ("message", "traceback")  # the texts of an error that are cut
_warned: set[str] = set()


def message_limit() -> int:
    """``PREFECT_LIKE_MAX_MESSAGE`` in characters; ValueError if it is not a number."""
    value = settings.float_setting("MAX_MESSAGE", DEFAULT_MAX_MESSAGE)
    if not math.isfinite(value):
        raise ValueError(f"PREFECT_LIKE_MAX_MESSAGE must be a number of characters, got {value}")
    return max(MIN_MAX_MESSAGE, int(value))


def _limit() -> int:
    # Text is cut on the hot path of a task run, where a bad setting must not fail the run:
    # say so once and cut at the default. The server checks the setting when it starts.
    try:
        return message_limit()
    except ValueError as exc:
        if str(exc) not in _warned:
            _warned.add(str(exc))
            log.warning("%s; cutting long texts at %d characters", exc, DEFAULT_MAX_MESSAGE)
        return DEFAULT_MAX_MESSAGE


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and its end around a marker,
    ``limit`` characters in all (the end of a traceback says the most, so it is kept too)."""
    if len(text) <= limit:
        return text
    marker = f"\n... [truncated: {len(text):,} characters in all] ...\n"
    keep = limit - len(marker)
    tail = keep // 4
    return text[: keep - tail] + marker + text[len(text) - tail :]


def _long(value: Any) -> bool:
    return value.__class__ is str and len(value) > MIN_MAX_MESSAGE


def _cut_error(error: Any, limit: int) -> Any:
    if isinstance(error, dict):
        return {
            k: cut(v, limit) if k in _ERROR_TEXTS and isinstance(v, str) else v
            for k, v in error.items()
        }
    return cut(error, limit)


def clip_event(event: Sequence[Any]) -> Any:
    """The event (a 9-sequence in ``Event`` order) with its message, and its error's message
    and traceback, cut to the limit: the same object when nothing is long.

    It runs once per event made and once per event the server receives, so the usual case
    (a short message or none, no error or a short one) costs a few checks and reads no setting.
    """
    message, data = event[7], event[8]
    long_message = message.__class__ is str and len(message) > MIN_MAX_MESSAGE
    error = data.get("error") if data.__class__ is dict else None
    if error is None:
        if not long_message:
            return event
    elif error.__class__ is dict:
        if not (long_message or _long(error.get("message")) or _long(error.get("traceback"))):
            return event
    elif not (long_message or _long(error)):
        return event
    limit = _limit()
    if long_message:
        message = cut(message, limit)
    if error is not None:
        data = {**data, "error": _cut_error(error, limit)}
    fields = (*event[:7], message, data)
    # An Event stays an Event: the Recorder tells events from its markers by their class.
    return tuple.__new__(event.__class__, fields) if isinstance(event, tuple) else fields
