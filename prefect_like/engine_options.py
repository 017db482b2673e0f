"""A task's ``engine_options``: checked when the task is made, spoken to each engine in its own words.

Resource hints have one spelling both distributed runners take, so a task written for Ray runs on
Dask unchanged::

    @task(engine_options={"num_gpus": 1})                 # or {"resources": {"GPU": 1}}
    @task(engine_options={"num_cpus": 2, "memory": 4e9, "resources": {"TPU": 1}})

``num_cpus``, ``num_gpus`` and ``memory`` (bytes) are the resources ``CPU``, ``GPU`` and
``MEMORY``; any other name in ``resources`` is a custom resource. Ray gets them as its ``num_cpus``,
``num_gpus``, ``memory`` and ``resources`` options; Dask as ``Client.submit(resources=...)``, met by
workers started with ``--resources "GPU=1"``. The engines' other options pass through as they are.

A name neither engine takes (``num_gpu``) is a ValueError when the task is decorated, with the
closest name; a resource no worker or node of the cluster has ends the task's runs Crashed, saying
what the cluster offers, where the engine itself would wait for it forever.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

# The resources with options of their own, and their names in ``resources``.
NAMED = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "MEMORY"}
# What the engines take besides (Ray's ``.options()``, Dask's ``Client.submit``), less what the
# runners set themselves: the function, its key or name, how many values it returns.
RAY_OPTIONS = frozenset({
    "accelerator_type", "enable_task_events", "fallback_strategy", "label_selector", "max_calls",
    "max_retries", "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "retry_exceptions", "runtime_env", "scheduling_strategy",
})
DASK_OPTIONS = frozenset({"allow_other_workers", "fifo_timeout", "priority", "retries", "workers"})
KNOWN = frozenset({*NAMED, "resources", *RAY_OPTIONS, *DASK_OPTIONS})


def _amount(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"engine_options: {where} must be a number, 0 or more; got {value!r}")
    return float(value)


def check(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as a new dict, or a ValueError naming what is wrong with them."""
    if not isinstance(options, Mapping):
        raise TypeError(f"engine_options must be a dict, got {type(options).__name__}")
    for name in options:
        if not isinstance(name, str) or (name not in KNOWN and not name.startswith("_")):
            close = difflib.get_close_matches(str(name), sorted(KNOWN), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"engine_options: neither Ray nor Dask takes an option {name!r}{hint} Resources are "
                f"{', '.join(sorted(NAMED))} or resources={{'GPU': 1}}; the others: {', '.join(sorted(KNOWN - set(NAMED)))}"
            )
    requested(options)
    return dict(options)


def requested(options: Mapping[str, Any]) -> dict[str, float]:
    """The resources ``options`` ask for, by name (``CPU``, ``GPU``, ``MEMORY``, custom ones)."""
    wanted: dict[str, float] = {}
    resources = options.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise ValueError(f"engine_options: resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    for name, value in resources.items():
        key = "MEMORY" if name == "memory" else str(name)
        wanted[key] = _amount(f"resources[{name!r}]", value)
    for option, name in NAMED.items():
        if options.get(option) is None:
            continue
        if name in wanted:
            raise ValueError(f"engine_options: give {name} once, as {option} or in resources, not both")
        wanted[name] = _amount(option, options[option])
    return wanted


def for_dask(options: Mapping[str, Any]) -> dict[str, Any]:
    """``Client.submit`` keywords: every resource in ``resources``."""
    spoken = {k: v for k, v in options.items() if k not in NAMED and k not in RAY_OPTIONS}
    wanted = requested(options)
    if wanted:
        spoken["resources"] = wanted
    return spoken


def for_ray(options: Mapping[str, Any]) -> dict[str, Any]:
    """``.options()`` keywords: CPU, GPU and memory as their own options, the rest in ``resources``."""
    spoken = {k: v for k, v in options.items() if k not in NAMED and k not in DASK_OPTIONS and k != "resources"}
    custom: dict[str, float] = {}
    for name, amount in requested(options).items():
        option = {"CPU": "num_cpus", "GPU": "num_gpus", "MEMORY": "memory"}.get(name)
        if option == "memory":
            spoken[option] = int(amount)
        elif option is not None:
            spoken[option] = amount
        else:
            custom[name] = amount
    if custom:
        spoken["resources"] = custom
    return spoken


def unmet(wanted: Mapping[str, float], offers: Iterable[Mapping[str, float]], engine: str, how: str) -> str | None:
    """Why no one of ``offers`` (a worker's or node's resources) can run a task that wants
    ``wanted``, or None if one can."""
    offered = [dict(offer) for offer in offers]
    if not wanted or any(all(offer.get(k, 0.0) >= v for k, v in wanted.items()) for offer in offered):
        return None
    shown = "; ".join(
        ", ".join(f"{k}={v:g}" for k, v in sorted(offer.items()) if k in wanted) or "none of them"
        for offer in offered
    ) or "no workers"
    asked = ", ".join(f"{k}={v:g}" for k, v in sorted(wanted.items()))
    return f"no {engine} worker has the resources the task asks for ({asked}); they offer: {shown}. {how}"
