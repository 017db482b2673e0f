"""Schedules: what a deployment's schedule may be, and the times it gives.

A schedule is one of: ``{"cron": "0 3 * * *", "timezone": "Europe/Paris"}`` (croniter's five
fields, or six with seconds last; in its IANA time zone, so 9 am stays 9 am across daylight
saving), ``{"interval": 60, "anchor": ts}`` (exact seconds from its anchor, by default when it
was made) or ``{"at": ts}`` (once). ``check_schedule`` refuses anything else in one line;
``next_times`` is the one place that turns a schedule into times, for the scheduler
(``tracking.control``) and its tests.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect_like import settings

SCHEDULE_KINDS = ("cron", "interval", "once")

# Runs made in one tick at most: a tick is one transaction, which holds the store's write lock
# (events wait meanwhile), so a thousand new schedules are made over a few ticks, not in one.
MAX_MADE_PER_TICK = 1000


def horizon() -> float:
    """How far ahead (seconds) the scheduler makes runs, and how far back it fills a gap."""
    return settings.float_setting("SCHEDULER_HORIZON", 3600.0)


def max_runs_ahead() -> int:
    """At most this many future runs per schedule (Prefect's scheduler keeps 100)."""
    return max(1, settings.int_setting("SCHEDULER_MAX_RUNS", 100))


def check_schedule(spec: dict[str, Any]) -> dict[str, Any]:
    """A schedule as stored: ``{"cron": "*/5 * * * *", "timezone": "Europe/Paris"}``,
    ``{"interval": 60, "anchor": ts}`` or ``{"at": ts}``; ValueError says what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError(f"a schedule is an object with cron, interval or at, got {spec!r}")
    given = [k for k in ("cron", "interval", "at") if spec.get(k) is not None]
    if len(given) != 1:
        raise ValueError("a schedule has exactly one of cron, interval or at")
    timezone = spec.get("timezone") or "UTC"
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r} (an IANA name, e.g. Europe/Paris)") from None
    active = bool(spec.get("active", True))
    if given[0] == "cron":
        from croniter import croniter

        expr = str(spec["cron"]).strip()
        if not croniter.is_valid(expr):
            raise ValueError(f"not a cron expression: {expr!r} (five fields, e.g. '*/5 * * * *')")
        return {"kind": "cron", "cron": expr, "timezone": str(timezone), "active": active}
    if given[0] == "interval":
        interval = spec["interval"]
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval < math.inf:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        anchor = _timestamp(spec.get("anchor"), "anchor") if spec.get("anchor") is not None else None
        return {"kind": "interval", "interval": float(interval), "anchor": anchor, "timezone": str(timezone), "active": active}
    return {"kind": "once", "anchor": _timestamp(spec["at"], "at"), "timezone": str(timezone), "active": active}


def _timestamp(value: Any, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 32_503_680_000:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.astimezone()
            return parsed.timestamp()
    raise ValueError(f"{what} must be seconds since the epoch or an ISO 8601 time, got {value!r}")


# -- schedules -----------------------------------------------------------------------------


def next_times(schedule: dict[str, Any], after: float, until: float, limit: int) -> list[float]:
    """The schedule's times in ``(after, until]``, at most ``limit``, in order."""
    kind = schedule["kind"]
    times: list[float] = []
    if kind == "once":
        at = schedule["anchor"]
        return [at] if after < at <= until else []
    if kind == "interval":
        interval, anchor = schedule["interval"], schedule["anchor"]
        k = math.floor((after - anchor) / interval) + 1
        t = anchor + k * interval
        while t <= until and len(times) < limit:
            if t > after:
                times.append(round(t, 6))
            k += 1
            t = anchor + k * interval
        return times
    from croniter import croniter

    zone = ZoneInfo(schedule["timezone"] or "UTC")
    it = croniter(schedule["cron"], datetime.fromtimestamp(after, zone))
    while len(times) < limit:
        t = it.get_next(datetime).timestamp()
        if t > until:
            break
        times.append(t)
    return times


__all__ = ["MAX_MADE_PER_TICK", "SCHEDULE_KINDS", "check_schedule", "horizon", "max_runs_ahead", "next_times"]
