"""Concurrency limits: ``concurrency()`` and ``rate_limit()`` (Prefect 3's global concurrency
limits), and tag-based task concurrency limits.

    from prefect_like.concurrency.sync import concurrency, rate_limit      # sync code
    from prefect_like.concurrency.asyncio import concurrency, rate_limit   # async code

A limit is made with ``prefect-like concurrency-limit create NAME N`` (Prefect's ``gcl create
NAME --limit N`` works too), in the tracking store or on the tracking server, so every flow using
the same store or server shares it, across processes and on Dask and Ray workers. A task run
whose tags include a limit's name takes one of its slots while it runs (``tags``).

The pieces: ``store`` (the SQL: limits, leases, the one acquiring transaction), ``leases``
(which backend, waiting, renewing), ``sync`` and ``asyncio`` (Prefect's functions), ``tags``
(the task engine's call).
"""

from prefect_like.concurrency.admin import (
    create_limit,
    delete_limit,
    list_limits,
    read_limit,
    reset_limit,
)

__all__ = ["create_limit", "delete_limit", "list_limits", "read_limit", "reset_limit"]
