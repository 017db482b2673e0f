"""Events: the compact records that carry every state change and log line to the tracker.

An event is made on the hot path of a task run, so it is a plain named tuple appended to a
process-local deque: no I/O, no lock, no serialisation. Whatever drains the buffer (the Recorder
in the flow process, a runner's shipper in a Dask or Ray worker) batches the events onward.

``(kind, run_id, seq)`` is an event's unique id: ``seq`` counts the state changes (or log lines)
of one run from 0, so ingesting the same event twice stores it once, and a store can apply
events that arrive out of order (the highest ``seq`` holds the current state).

What ``data`` holds, by kind and state:

- ``task``, first event (PENDING): ``task_name``, ``map_index``, ``name`` (the task run name),
  ``tags``.
- ``task``, RUNNING: ``run_count``.
- ``task``, terminal (and NotReady): ``parameters`` (summary), ``result`` (summary), ``run_count``,
  ``error`` (``{"type", "message", "traceback"}``) on failure, ``duration`` in seconds. A final
  event may also carry its run's PENDING and first RUNNING events folded in (see ``coalesce``):
  then it has the first event's keys too, plus ``created`` and ``started`` (their timestamps).
- ``flow``, first event (RUNNING): ``name``, ``flow_name``, ``parameters``, ``parent_task_run_id``,
  ``runner``. ``flow_run_id`` holds the parent flow run's id for a subflow, else None.
- ``flow``, terminal: ``task_runs`` (state name to count), ``error``, ``duration``.
- ``heartbeat``: a live flow run's pulse; ``run_id`` is the flow run, ``seq`` its own counter.
- ``log``: ``state_name`` is the level name, ``message`` the line, ``data`` ``{"level", "logger"}``;
  ``run_id`` is the task run (or the flow run, for flow logs), ``seq`` counts that run's lines.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

FLOW = "flow"
TASK = "task"
LOG = "log"
HEARTBEAT = "heartbeat"
KINDS = (FLOW, TASK, LOG, HEARTBEAT)


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

# The process-local buffer. deque.append is atomic under the GIL, so producers on any thread
# append without a lock; exactly one consumer (Recorder or shipper) pops from the left.
BUFFER: collections.deque[Any] = collections.deque()
emit = BUFFER.append


_FINAL_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def coalesce(events: list[Event]) -> list[Event]:
    """Fold each task run's Pending (seq 0) and first Running (seq 1) into its final event,
    when all of them are in this batch.

    A short task run starts and ends between two batches: its Pending and Running states were
    never visible to anyone, and the final event can carry what they said (their data and
    timestamps). Two thirds of the events, and of the work of every store that ingests them,
    are saved. A run still going when the batch is made keeps its events as they are, so
    RUNNING is stored while it runs. One pass; it runs on the Recorder's thread.
    """
    out: list[Event | None] = []
    pending: dict[str, int] = {}  # run id -> index in out of its Pending event
    running: dict[str, int] = {}  # run id -> index in out of its first Running event
    folded = 0
    for event in events:
        if event[0] == TASK:
            seq = event[2]
            if seq == 0 and event[6] == "Pending":
                pending[event[1]] = len(out)
            elif seq == 1 and event[6] == "Running":
                running[event[1]] = len(out)
            elif event[5] in _FINAL_TYPES or event[6] == "NotReady":
                at = pending.pop(event[1], None)
                if at is not None:
                    first = out[at]
                    assert first is not None
                    out[at] = None
                    data = {**(first[8] or {}), **(event[8] or {})}
                    data["created"] = first[4]
                    started = running.pop(event[1], None)
                    if started is not None:
                        data["started"] = out[started][4]  # type: ignore[index]
                        out[started] = None
                        folded += 1
                    folded += 1
                    event = _new_tuple(Event, (*event[:8], data))
        out.append(event)
    if not folded:
        return events
    return [event for event in out if event is not None]


_new_tuple = tuple.__new__


def drain(limit: int = 1 << 62) -> list[Any]:
    """Pop up to ``limit`` items from the buffer, oldest first (single consumer only)."""
    batch: list[Any] = []
    pop = BUFFER.popleft
    append = batch.append
    try:
        for _ in range(min(limit, len(BUFFER))):
            append(pop())
    except IndexError:
        pass
    return batch
