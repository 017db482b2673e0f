"""One write transaction on a SQLite store's connection, retried while the file is locked: the
control tables (``control``) and the concurrency slots (``concurrency.store``) write through it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def immediate_transaction(owner: Any, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` in one write transaction on ``owner._conn`` (taken at BEGIN, so two
    processes never both read then write), retried by ``owner._retry`` while the file is locked."""

    def transaction() -> T:
        conn = owner._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    result: T = owner._retry(transaction)
    return result
