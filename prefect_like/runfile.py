"""``prefect-like run FILE.py:FLOW``: load a flow from a file, parse ``--param`` values, run it.

The flow runs on the calling thread, where signals arrive, while a thread shows its progress,
read from the tracker like ``runs watch`` does, so what the bar shows is what the tracker
recorded. The flow run is found as the newest run of that flow that started after the command
did.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import cloudpickle

from prefect_like.errors import RunNotFoundError, TrackingError
from prefect_like.flows import Flow

if TYPE_CHECKING:
    from rich.console import Console

    from prefect_like.states import State


def load_flow(target: str) -> Flow[..., Any]:
    """The flow ``FLOW`` in ``FILE.py`` (``FILE.py`` alone if the file holds exactly one flow)."""
    path_text, _, name = target.rpartition(":")
    if not path_text or "/" in name or "\\" in name or name.endswith(".py"):
        path_text, name = target, ""  # no ":FLOW" (a Windows drive letter is not one)
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise click.ClickException(f"no such file: {path}")
    module_name = f"_prefect_like_run_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise click.ClickException(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # Workers cannot import a module by this made-up name: what it defines travels by value.
    cloudpickle.register_pickle_by_value(module)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise click.ClickException(f"loading {path} failed: {type(exc).__name__}: {exc}") from None
    flows = {key: value for key, value in vars(module).items() if isinstance(value, Flow)}
    if not name:
        if len(flows) != 1:
            found = ", ".join(sorted(flows)) or "none"
            raise click.ClickException(f"name the flow to run as {path}:FLOW (flows in it: {found})")
        return next(iter(flows.values()))
    found_obj = getattr(module, name, None)
    if found_obj is None:
        raise click.ClickException(
            f"{path} has no flow named {name!r}; flows in it: {', '.join(sorted(flows)) or 'none'}"
        )
    if not isinstance(found_obj, Flow):
        raise click.ClickException(f"{name!r} in {path} is not a flow; decorate it with @flow")
    return found_obj


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is JSON if it parses as JSON (``3``, ``[1,2]``), else text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--param'")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _started(run: dict[str, Any]) -> float:
    stamp = run.get("start_time")
    return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0


def find_new_run(reader: Any, flow_name: str, since: float) -> str | None:
    """The newest run of ``flow_name`` that started at or after ``since``, if the tracker has it."""
    for run in reader.list_flow_runs(flow_name=flow_name, limit=5):
        if _started(run) >= since:
            return str(run["id"])
    return None


def run_with_progress(
    flow: Flow[..., Any], parameters: dict[str, Any], console: Console, *, progress: bool = True
) -> tuple[State, str | None]:
    """Run the flow on this thread, showing its progress from another; its final State and
    flow run id.

    The flow runs on the calling (main) thread because that is where Ctrl-C and SIGTERM
    arrive: the flow engine ends the run CANCELLED, flushes it and says what it recorded; the
    command then exits 130 (143 for SIGTERM) with that one line, and no traceback.
    """
    from prefect_like.engine.signals import exit_status, one_line

    since = time.time() - 1.0  # the run's first event is stamped a moment after this
    ended = threading.Event()
    found: list[str] = []
    viewer = threading.Thread(
        target=_show_progress, args=(flow.name, since, console, progress, ended, found),
        name="prefect-like-progress", daemon=True,
    )
    viewer.start()
    try:
        state = flow(**parameters, return_state=True)
        if inspect.iscoroutine(state):
            state = asyncio.run(state)
    except KeyboardInterrupt as exc:
        _stop(ended, viewer)
        console.print(one_line(exc) or "Interrupted before the flow run began.",
                      markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(exit_status(exc)) from None
    except Exception as exc:  # the engine records the flow's own errors; this is anything else
        _stop(ended, viewer)
        raise click.ClickException(f"the flow could not run: {type(exc).__name__}: {exc}") from None
    _stop(ended, viewer)
    flow_run_id = found[0] if found else None
    if flow_run_id is None:
        try:
            with _connect() as reader:
                flow_run_id = find_new_run(reader, flow.name, since)
        except TrackingError:
            pass
    return state, flow_run_id


def _connect() -> Any:
    from prefect_like.client import connect

    return connect()


def _stop(ended: threading.Event, viewer: threading.Thread) -> None:
    ended.set()
    viewer.join(timeout=5.0)  # it wakes every few tenths of a second to look at `ended`


def _show_progress(
    flow_name: str, since: float, console: Console, progress: bool, ended: threading.Event, found: list[str]
) -> None:
    """Find the run in the tracker and show its progress until the flow call returns."""
    from prefect_like.progress import watch

    try:
        with _connect() as reader:
            while not ended.is_set():
                flow_run_id = find_new_run(reader, flow_name, since)
                if flow_run_id is not None:
                    found.append(flow_run_id)
                    break
                ended.wait(0.2)  # until the run's first events reach the tracker
            if progress and found and not ended.is_set():
                watch(reader, found[0], console=console, stop=ended.is_set)
    except (TrackingError, RunNotFoundError) as exc:
        if not ended.wait(1.0):  # a store the flow cannot use either fails the flow: one message
            console.print(f"[yellow]no live progress: {exc}[/]")
