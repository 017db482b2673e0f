"""Events: the compact records that carry every state change and log line to the tracker.

An event is made on the hot path of a task run, so it is a plain named tuple appended to a
process-local list: no I/O, no lock, no serialisation. Whatever drains the buffer (the Recorder
in the flow process, a runner's shipper in a Dask or Ray worker) batches the events onward,
after ``fold`` has made each ``PendingCall`` (a run's PENDING, as its call is made) an event or
folded it into the run's final event.

``(kind, run_id, seq)`` is an event's unique id: ``seq`` counts the state changes (or log lines)
of one run from 0, so ingesting the same event twice stores it once, and a store can apply
events that arrive out of order (the highest ``seq`` holds the current state).

What ``data`` holds, by kind and state:

- ``task``, first event (PENDING): ``task_name``, ``map_index``, ``name`` (the task run name),
  ``tags``.
- ``task``, RUNNING: ``run_count``.
- ``task``, terminal (and NotReady): ``parameters`` (summary), ``result`` (summary), ``run_count``,
  ``error`` (``{"type", "message", "traceback"}``) on failure, ``duration`` in seconds, and what
  the run's PENDING and first RUNNING said: the first event's keys, plus ``created`` and
  ``started`` (their timestamps). The engine's final events carry these themselves; for one
  that does not, ``fold`` copies them in when the earlier events are in the same batch.
- ``flow``, first event (RUNNING): ``name``, ``flow_name``, ``parameters``, ``parent_task_run_id``,
  ``runner``, ``heartbeat_timeout`` (seconds), ``tags`` (those of ``with tags(...)`` around the
  call, if any). ``flow_run_id`` holds the parent flow run's id for
  a subflow, else None.
- ``flow``, terminal: ``task_runs`` (state name to count), ``error``, ``duration``.
- ``heartbeat``: a live flow run's pulse; ``run_id`` is the flow run, ``seq`` its own counter.
- ``log``: ``state_name`` is the level name, ``message`` the line, ``data`` ``{"level", "logger"}``;
  ``run_id`` is the task run (or the flow run, for flow logs), ``seq`` counts that run's lines.
- ``artifact``: ``run_id`` is the artifact's id, ``state_name`` its type (``table``,
  ``markdown``, ``link``, ``progress``), ``seq`` 0 as it is made and higher for each update
  (the highest holds its data). ``data``: ``data`` (the artifact's payload), and as it is made
  ``key``, ``description``, ``task_run_id``; ``flow_run_id`` is the run it belongs to, if any.
- ``metric``: what a task run reported (``sweep.report``): ``data`` ``{"step", "metrics"}``
  for one report, or ``{"points": [[seq, timestamp, step, metrics], ...]}`` for several of one
  task run (what ``fold`` makes of the reports it finds in a batch, up to ``MAX_POINTS``);
  ``run_id`` is the task run, ``seq`` from the same counter as its log lines (a point's own,
  and the event's is its first point's). It travels home from a Dask or Ray worker with the
  batch's other events, as log lines do.
- ``sweep``: a flow run belongs to a sweep (a search and each of its resumes): ``run_id`` is the
  sweep's id, ``flow_run_id`` the flow run, ``seq`` which attempt it is (0 the first), ``data``
  ``{"name", "spec"}``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from prefect_like import settings
from prefect_like.states import FINAL_STATE_NAMES, FINAL_TYPES, VALUES
from prefect_like.tracking.limits import clip_event

if TYPE_CHECKING:
    from prefect_like.states import State

FLOW = "flow"
TASK = "task"
LOG = "log"
HEARTBEAT = "heartbeat"
ARTIFACT = "artifact"
METRIC = "metric"
SWEEP = "sweep"
KINDS = (FLOW, TASK, LOG, HEARTBEAT, ARTIFACT, METRIC, SWEEP)


class Event(NamedTuple):
    kind: str
    run_id: str
    seq: int
    flow_run_id: str | None
    timestamp: float
    state_type: str | None
    state_name: str | None
    message: str | None
    data: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.run_id}:{self.seq}"


FIELDS = Event._fields

# The seq of a final state decided outside the run (cancelled while it ran, marked crashed
# because its process stopped sending heartbeats): higher than any seq the run itself could
# still send, so the store keeps the decision whatever arrives later.
OVERRIDE_SEQ = 1 << 40

# The process-local buffer: a list, because producers on any thread only append (atomic under
# the GIL, no lock) and the one consumer (Recorder or shipper) takes a whole slice off the front
# at C speed (``drain``).
BUFFER: list[Any] = []
emit = BUFFER.append
# A forked child starts with its parent's buffered events, which are the parent's to send.
os.register_at_fork(after_in_child=BUFFER.clear)


class PendingCall(NamedTuple):
    """A task run's PENDING as its call is made: what the Pending event would say, in a tuple
    of plain values (no reference to the call's parameters or upstream futures, so nothing of
    the user's stays alive in the buffer). The Recorder makes it a Pending event only if the
    run is still pending when the batch is made (``fold``); otherwise the run's final event,
    which says all of it too, stands alone. So a short task run costs one small tuple here, and
    its store one row write."""

    task_run_id: str
    flow_run_id: str
    created: float
    task_name: str
    map_index: int | None
    name: str | None  # the run's name, when the task names its runs
    tags: list[str] | None

    def event(self) -> Event:
        data: dict[str, Any] = {"task_name": self[3], "map_index": self[4]}
        if self[5] is not None:
            data["name"] = self[5]
        if self[6]:
            data["tags"] = self[6]
        return _new_tuple(Event, (TASK, self[0], 0, self[1], self[2], "PENDING", "Pending", None, data))


class MetricPoint(NamedTuple):
    """One ``report()`` of a task run, in a tuple of plain values: ``fold`` gathers a run's
    points in a batch into one ``metric`` event, so a trial reporting ten steps costs the
    Recorder, the wire and the store's writer one event, not ten."""

    task_run_id: str
    seq: int
    flow_run_id: str | None
    timestamp: float
    step: float
    metrics: dict[str, Any]


MAX_POINTS = 500  # per metric event that ``fold`` makes


def rows(events: Sequence[Any]) -> int:
    """About how many rows a batch of events writes, and how much it weighs in memory: one an
    event, a metric event one per report it holds."""
    count = len(events)
    for event in events:
        if event[0] == METRIC:
            data = event[8]
            if data.__class__ is dict and "points" in data:
                count += len(data["points"]) - 1
    return count


class Tally(dict[str, "collections.Counter[str]"]):
    """The final states of each flow run's task runs, counted as their events pass (``fold``):
    what the store will hold. A run ended from outside (cancelled while it ran: its event takes
    ``OVERRIDE_SEQ``) counts once, as that decision, whatever its abandoned call sends later."""

    def __init__(self) -> None:
        super().__init__()
        self.overridden: set[str] = set()

    def __missing__(self, flow_run_id: str) -> collections.Counter[str]:
        counter = self[flow_run_id] = collections.Counter()
        return counter


def fold(
    batch: list[Any], counts: dict[Any, Any] | None, carry_from: float | None = None
) -> tuple[list[Event], list[Any], list[Any]]:
    """Fold each task run's Pending (seq 0) and first Running (seq 1) into its final event,
    when all of them are in this drained batch.

    A short task run starts and ends between two batches: its Pending and Running states were
    never visible to anyone, and the final event says what they said (the engine's final
    events carry the task name, map index and both timestamps; for one that does not, they are
    copied in). Two thirds of the events, and of the work of every store that ingests them,
    are saved. A run still going when the batch is made keeps its events as they are, so
    RUNNING is stored while it runs; a call still pending becomes its Pending event.

    Returns the events, what is neither an event nor a pending call (flush markers), and the
    calls carried over. Given ``counts`` (flow run id to a ``Counter``), it also counts each
    task run's final state by name.

    With ``carry_from`` (a time), pending calls made since then are not made Pending events
    but handed back (the third list) to lead the next batch: a short run made just before
    this batch then ends in the next one and costs its store one row write, not two. A batch
    with a flush marker carries nothing over, since everything before a marker must be sent.

    It runs once per event on the Recorder's thread, so it indexes tuples by slot: 0 kind,
    1 run_id, 2 seq, 3 flow_run_id, 4 timestamp, 5 state_type, 6 state_name, 8 data.
    """
    out: list[Any] = []
    markers: list[Any] = []
    points: dict[str, list[Any]] = {}  # run id -> the points of its metric event being made
    overridden = counts.overridden if isinstance(counts, Tally) else set()
    pending: dict[str, int] = {}  # run id -> index in out of its Pending event or call
    running: dict[str, int] = {}  # run id -> index in out of its first Running event
    dropped = False
    append = out.append
    final_types = FINAL_TYPES
    final_names = FINAL_STATE_NAMES
    for event in batch:
        if event.__class__ is not Event:
            kind = event.__class__
            if kind is MetricPoint:
                run_id = event[0]
                group = points.get(run_id)
                if group is None or len(group) >= MAX_POINTS:
                    group = points[run_id] = []
                    append(_new_tuple(Event, (METRIC, run_id, event[1], event[2], event[3], None, None,
                                              None, {"points": group})))
                group.append((event[1], event[3], event[4], event[5]))
            elif kind is PendingCall:
                pending[event[0]] = len(out)
                append(event)
            else:
                markers.append(event)
            continue
        if event[0] == TASK:
            seq = event[2]
            name = event[6]
            if seq == 0 and name == "Pending":
                pending[event[1]] = len(out)
            elif seq == 1 and name == "Running":
                running[event[1]] = len(out)
            elif event[5] in final_types or name in final_names:
                if counts is not None:
                    if seq >= OVERRIDE_SEQ:
                        overridden.add(event[1])
                        counts[event[3]][name] += 1
                    elif event[1] not in overridden:  # an abandoned call's own end: not stored
                        counts[event[3]][name] += 1
                first = pending.pop(event[1], None)
                started = running.pop(event[1], None)
                if first is not None or started is not None:
                    data = event[8]
                    if not data or "task_name" not in data or (started is not None and "started" not in data):
                        event = _new_tuple(Event, (*event[:8], _folded_data(out, first, started, data)))
                    if first is not None:
                        out[first] = None
                    if started is not None:
                        out[started] = None
                    dropped = True
        append(event)
    carried: list[Any] = []
    if carry_from is not None and markers:
        carry_from = None
    for at in pending.values():  # calls still pending when the batch was made
        call = out[at]
        if call.__class__ is PendingCall:
            if carry_from is not None and call[2] >= carry_from:
                carried.append(call)
                out[at] = None
                dropped = True
            else:
                out[at] = call.event()
    if dropped:
        out = [event for event in out if event is not None]
    return out, markers, carried


def _folded_data(out: list[Any], first: int | None, started: int | None, data: dict[str, Any] | None) -> dict[str, Any]:
    """A final event's data with what its run's Pending and Running said, for a final event
    made without it (a run cancelled before it started, for instance)."""
    merged: dict[str, Any] = {}
    if first is not None:
        pending = out[first]
        if pending.__class__ is PendingCall:
            pending = pending.event()
        merged.update(pending[8] or {})
        merged["created"] = pending[4]
    merged.update(data or {})
    if started is not None:
        merged.setdefault("started", out[started][4])
    return merged


_new_tuple = tuple.__new__


# -- the one author of events: every state change, log line and heartbeat is built here ---------


def task_event(task_run_id: str, flow_run_id: str | None, seq: int, state: State, data: dict[str, Any] | None) -> Event:
    """The event of a task run's state change (``tuple.__new__``: no argument binding); a long
    message or error is cut here (``limits``), so it is never sent whole."""
    event = _new_tuple(Event, (TASK, task_run_id, seq, flow_run_id, state.timestamp, VALUES[state.type],
                               state.name, state.message, data))
    # Most state changes have no message and no error: nothing to cut, and no call to find out.
    return event if event[7] is None and (data is None or "error" not in data) else clip_event(event)


def task_running(task_run_id: str, flow_run_id: str | None, seq: int, timestamp: float, data: dict[str, Any]) -> Event:
    """A task run's first RUNNING, made without a State object (it is on every run's path)."""
    return _new_tuple(Event, (TASK, task_run_id, seq, flow_run_id, timestamp, "RUNNING", "Running", None, data))


def flow_event(flow_run_id: str, parent_flow_run_id: str | None, seq: int, state: State, data: dict[str, Any] | None) -> Event:
    """The event of a flow run's state change; ``flow_run_id`` of the event is the parent's. The
    first carries this process's heartbeat timeout: the run's silence is judged by it, whoever reads."""
    if seq == 0 and data is not None:
        data = {**data, "heartbeat_timeout": settings.heartbeat_timeout()}
    return clip_event(Event(FLOW, flow_run_id, seq, parent_flow_run_id, state.timestamp, VALUES[state.type],
                            state.name, state.message, data))


def log_event(run_id: str, seq: int, flow_run_id: str | None, timestamp: float, level: int, level_name: str,
              message: str, logger: str) -> Event:
    """A log line of a task run (or a flow run, for flow logs); a long one is cut (``limits``)."""
    return clip_event(Event(LOG, run_id, seq, flow_run_id, timestamp, None, level_name, message,
                            {"level": level, "logger": logger}))


def artifact_event(artifact_id: str, seq: int, flow_run_id: str | None, timestamp: float, type_: str,
                   data: dict[str, Any]) -> Event:
    """An artifact made (seq 0, ``data`` with its key, description, task run and payload) or
    updated (a higher seq, ``data`` with the new payload)."""
    return Event(ARTIFACT, artifact_id, seq, flow_run_id, timestamp, None, type_, None, data)


def sweep_event(sweep_id: str, attempt: int, flow_run_id: str, timestamp: float, name: str,
                spec: dict[str, Any]) -> Event:
    """A flow run is attempt ``attempt`` of a sweep (0 the first, then each resume)."""
    return Event(SWEEP, sweep_id, attempt, flow_run_id, timestamp, None, None, None, {"name": name, "spec": spec})


def heartbeat_event(flow_run_id: str, seq: int, timestamp: float) -> Event:
    """A live flow run's pulse."""
    return Event(HEARTBEAT, flow_run_id, seq, None, timestamp, None, None, None, None)


def drain(limit: int = 1 << 62) -> list[Any]:
    """Take up to ``limit`` items off the front of the buffer, oldest first (single consumer
    only: producers append meanwhile, and only the consumer ever removes)."""
    batch = BUFFER[:limit]
    del BUFFER[: len(batch)]
    return batch
