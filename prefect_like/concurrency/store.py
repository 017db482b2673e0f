"""Concurrency limits in the tracking store: the limits, the leases that hold their slots, and
the one transaction that takes slots from several limits at once.

A limit is a name, a number of slots and, for rate limits, a decay (slots freed per second). A
task tag's limit and a global limit (``concurrency("name")``) share one namespace: the limit
"gpu" holds both the task runs tagged "gpu" and the blocks in ``concurrency("gpu")``.

A slot is held by a **lease**: a row with an expiry, renewed while its holder holds it
(``leases.Renewer``). A holder that dies stops renewing, and its lease expires: every
acquisition first deletes the expired leases of the limits it asks for, so a killed process
holds its slots for at most one lease duration, and nothing else has to notice it died.

``rate_limit`` takes slots that are never released: they decay. A limit's ``decaying`` is the
level of such slots at ``decayed_at``; at time t it is ``max(0, decaying - decay * (t -
decayed_at))``, so n acquisitions of 1 slot from a limit of 1 slot decaying at d per second
are spaced 1/d seconds apart, whichever processes make them.

``try_acquire`` is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises it
against every other process using the file (embedded mode) or request thread (the server), so
two acquirers never both see the last free slot. All of the names or none: slots are never
taken from some limits while waiting on another.

Used in-process on the embedded store (``leases.StoreSlots``) and by the server's routes
(``server.routes_concurrency``), which call the same functions on its writer store.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefect_like.tracking.queries import iso
from prefect_like.tracking.transactions import immediate_transaction

if TYPE_CHECKING:
    from prefect_like.tracking.store import Store

# Prefect's rule, and ours: no control characters, and none of / % & > < (names go in URLs).
NAME = re.compile(r"^[^\s\x00-\x1f/%&><][^\x00-\x1f/%&><]{0,199}$")
MODES = ("concurrency", "rate_limit")


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name != name.strip():
        raise ValueError(
            f"a concurrency limit name is 1 to 200 characters, none of them / % & > < or a control "
            f"character, with no blanks around it; got {name!r}"
        )
    return name


def _slots(value: Any, what: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31:
        raise ValueError(f"a concurrency {what} is a whole number of slots from 0, got {value!r}")
    return value


def _decay(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ValueError(f"slot_decay_per_second is a positive number, got {value!r}")
    return float(value)


def _transaction(store: Store, fn: Any) -> Any:
    return immediate_transaction(store, fn)


def _level(decaying: float, decayed_at: float | None, decay: float | None, now: float) -> float:
    if not decaying or decay is None or decayed_at is None:
        return 0.0 if decay is not None else decaying
    return max(0.0, decaying - decay * (now - decayed_at))


# -- the limits ---------------------------------------------------------------------------------


def create_limit(store: Store, name: str, limit: int, slot_decay_per_second: float | None = None,
                 active: bool = True) -> dict[str, Any]:
    """Create the limit, or set its number of slots (and decay) if it exists; its leases, and
    whether it is active, stay."""
    name, limit, decay = validate_name(name), _slots(limit), _decay(slot_decay_per_second)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO concurrency_limits (name, slots, slot_decay_per_second, active, created) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, "
            "slot_decay_per_second = excluded.slot_decay_per_second",
            (name, limit, decay, int(active), time.time()),
        )

    _transaction(store, write)
    return get_limit(store, name)


def set_active(store: Store, name: str, active: bool) -> dict[str, Any]:
    name = validate_name(name)
    changed = _transaction(store, lambda conn: conn.execute(
        "UPDATE concurrency_limits SET active = ? WHERE name = ?", (int(active), name)).rowcount)
    if not changed:
        raise LookupError(f"no concurrency limit named {name!r}")
    return get_limit(store, name)


def delete_limit(store: Store, name: str) -> None:
    name = validate_name(name)

    def write(conn: sqlite3.Connection) -> int:
        conn.execute("DELETE FROM concurrency_slots WHERE name = ?", (name,))
        return conn.execute("DELETE FROM concurrency_limits WHERE name = ?", (name,)).rowcount

    if not _transaction(store, write):
        raise LookupError(f"no concurrency limit named {name!r}")


def reset_limit(store: Store, name: str) -> dict[str, Any]:
    """Free every slot of the limit (its holders' leases are gone; their renewals say so)."""
    name = validate_name(name)

    def write(conn: sqlite3.Connection) -> int:
        conn.execute("DELETE FROM concurrency_slots WHERE name = ?", (name,))
        return conn.execute(
            "UPDATE concurrency_limits SET decaying = 0, decayed_at = NULL WHERE name = ?", (name,)
        ).rowcount

    if not _transaction(store, write):
        raise LookupError(f"no concurrency limit named {name!r}")
    return get_limit(store, name)


def _limit_dict(row: tuple[Any, ...], leases: list[tuple[Any, ...]], now: float) -> dict[str, Any]:
    name, slots, decay, active, decaying, decayed_at, created = row
    held = sum(lease[2] for lease in leases)
    level = _level(decaying, decayed_at, decay, now)
    return {
        "name": name,
        "limit": slots,
        "active_slots": held + round(level, 3),
        "slot_decay_per_second": decay,
        "active": bool(active),
        "created": iso(created),
        "holders": [
            {"lease_id": lease_id, "occupy": occupy, "holder": holder, "acquired": iso(acquired),
             "expires": iso(expires)}
            for lease_id, _, occupy, holder, acquired, expires in leases
        ],
    }


_LIMIT_COLUMNS = "name, slots, slot_decay_per_second, active, decaying, decayed_at, created"
_LEASE_COLUMNS = "id, name, occupy, holder, acquired, expires"


def list_limits(store: Store) -> list[dict[str, Any]]:
    now = time.time()
    rows = store._all(f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits ORDER BY name")
    leases: dict[str, list[tuple[Any, ...]]] = {}
    for lease in store._all(
        f"SELECT {_LEASE_COLUMNS} FROM concurrency_slots WHERE expires > ? ORDER BY acquired", (now,)
    ):
        leases.setdefault(lease[1], []).append(lease)
    return [_limit_dict(row, leases.get(row[0], []), now) for row in rows]


def get_limit(store: Store, name: str) -> dict[str, Any]:
    name = validate_name(name)
    now = time.time()
    row = store._one(f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits WHERE name = ?", (name,))
    if row is None:
        raise LookupError(f"no concurrency limit named {name!r}")
    leases = store._all(
        f"SELECT {_LEASE_COLUMNS} FROM concurrency_slots WHERE name = ? AND expires > ? ORDER BY acquired",
        (name, now),
    )
    return _limit_dict(row, leases, now)


def limited_names(store: Store) -> frozenset[str]:
    """The names that have an active limit (what a tag must be for its runs to take slots)."""
    return frozenset(r[0] for r in store._all("SELECT name FROM concurrency_limits WHERE active = 1"))


# -- slots ------------------------------------------------------------------------------------


def try_acquire(
    store: Store, names: Sequence[str], occupy: int, mode: str, holder: str | None,
    lease_seconds: float, strict: bool,
) -> dict[str, Any]:
    """Take ``occupy`` slots of every named limit, or none. Returns ``{"acquired": True,
    "lease_ids": [...], "limits": [names limited]}``, or ``{"acquired": False, "retry_after":
    seconds}`` when some limit is full. A name with no limit (or an inactive one) does not
    limit: it is left out, or with ``strict`` refused (``LookupError``)."""
    names = sorted({validate_name(n) for n in names})
    occupy = _slots(occupy, "occupy")
    if occupy < 1:
        raise ValueError(f"occupy is at least 1 slot, got {occupy}")
    if mode not in MODES:
        raise ValueError(f"mode is one of {', '.join(MODES)}, got {mode!r}")
    if not 0 < lease_seconds < 1e7:
        raise ValueError(f"a lease lasts a positive number of seconds, got {lease_seconds!r}")

    def attempt(conn: sqlite3.Connection) -> dict[str, Any]:
        now = time.time()
        marks = ", ".join("?" * len(names))
        conn.execute(f"DELETE FROM concurrency_slots WHERE name IN ({marks}) AND expires <= ?", (*names, now))
        limits = {
            row[0]: row
            for row in conn.execute(
                f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits WHERE name IN ({marks}) AND active = 1",
                names,
            )
        }
        missing = [n for n in names if n not in limits]
        if missing and strict:
            raise LookupError(
                f"no active concurrency limit named {', '.join(map(repr, missing))}; create it with "
                f"`prefect-like concurrency-limit create NAME N` (strict=True refuses to run unlimited)"
            )
        # int(): PostgreSQL's SUM of integers is a decimal
        held = {name: int(total) for name, total in conn.execute(
            f"SELECT name, SUM(occupy) FROM concurrency_slots WHERE name IN ({marks}) GROUP BY name", names
        ).fetchall()}
        wait = 0.0
        for name, (_, slots, decay, _, decaying, decayed_at, _) in limits.items():
            if mode == "rate_limit" and decay is None:
                raise ValueError(
                    f"rate_limit needs a limit with a slot decay; {name!r} has none: create it with "
                    f"--slot-decay-per-second"
                )
            if slots == 0:
                raise ValueError(
                    f"the concurrency limit {name!r} has 0 slots: what it limits is refused, not "
                    "delayed (give it slots with `prefect-like concurrency-limit create NAME N`)"
                )
            if occupy > slots:
                raise ValueError(
                    f"cannot take {occupy} slot(s) of the concurrency limit {name!r}: it has {slots}"
                )
            level = held.get(name, 0) + _level(decaying, decayed_at, decay, now)
            over = level + occupy - slots
            if over > 1e-9:
                # A decaying limit frees its slots at a known pace; leases free theirs when released.
                wait = max(wait, over / decay if decay and not held.get(name) else 0.05)
        if wait:
            return {"acquired": False, "retry_after": wait}
        lease_ids: list[str] = []
        for name, (_, _, decay, _, decaying, decayed_at, _) in limits.items():
            if mode == "rate_limit":
                level = _level(decaying, decayed_at, decay, now)
                conn.execute(
                    "UPDATE concurrency_limits SET decaying = ?, decayed_at = ? WHERE name = ?",
                    (level + occupy, now, name),
                )
            else:
                lease_id = uuid.uuid4().hex
                conn.execute(
                    f"INSERT INTO concurrency_slots ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (lease_id, name, occupy, holder, now, now + lease_seconds),
                )
                lease_ids.append(lease_id)
        return {"acquired": True, "lease_ids": lease_ids, "limits": sorted(limits)}

    return _transaction(store, attempt)


def renew(store: Store, lease_ids: Sequence[str], lease_seconds: float) -> list[str]:
    """Push the expiry of these leases ``lease_seconds`` from now; returns the ids that were
    gone (expired and freed, or reset): their holder no longer holds those slots."""
    ids = list(lease_ids)
    if not ids:
        return []

    def write(conn: sqlite3.Connection) -> list[str]:
        now = time.time()
        marks = ", ".join("?" * len(ids))
        conn.execute(
            f"UPDATE concurrency_slots SET expires = ? WHERE id IN ({marks}) AND expires > ?",
            (now + lease_seconds, *ids, now),
        )
        live = {r[0] for r in conn.execute(f"SELECT id FROM concurrency_slots WHERE id IN ({marks}) AND expires > ?", (*ids, now))}
        return [i for i in ids if i not in live]

    return _transaction(store, write)


def release(store: Store, lease_ids: Sequence[str]) -> None:
    ids = list(lease_ids)
    if ids:
        marks = ", ".join("?" * len(ids))
        _transaction(store, lambda conn: conn.execute(f"DELETE FROM concurrency_slots WHERE id IN ({marks})", ids))
