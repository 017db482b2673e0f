"""The worker half of the distributed runners: run a batch of task runs, send their events home.

Used by every runner that runs task calls in other processes (the Dask and Ray runners, the
process pool); nothing here imports an engine. What happens on a worker, in order:

1. ``run_batch`` gets one pickled payload (task calls, the flow process's ``PREFECT_LIKE_*``
   settings, seq offsets of re-run task runs), the runner's event ``Channel`` and the results of
   the upstream engine tasks as positional arguments: the engine resolved those (Dask futures,
   Ray ObjectRefs) before calling us, so no worker ever waits on an upstream.
2. Each call's ``Upstream`` placeholders become the upstream runs' final ``State`` objects (one
   walk, ``calls.walk``), which the engine accepts in place of futures: a failed upstream makes the run end
   NotReady without calling the function. Then ``run_task`` runs it, timed.
3. Every state change and log line lands in this process's ``events.BUFFER``. The ``Outbox``
   drains it under one lock, rewrites the seq numbers of re-runs (so a run re-run after its
   worker died never collides with what its first attempt stored) and sorts events by the flow
   run they belong to. A streamer thread ships what waited ``interval`` seconds over the channel
   (so the tracker shows RUNNING while a long task runs); the batch takes the rest with it in
   its return value. A batch returns only after every event of its runs has been handed to the
   channel or packed into its result, so when the flow process sees the result it has (or is
   sure to get before the next result) every event of those runs: nothing is lost.
   Where the channel can (``Channel.early_key``), the streamer also sends, after their events,
   the states of a running batch's runs that ended (but those with a big result), so a long
   run does not hold its batch's ended runs until it ends.
4. The return value is ``(home_blob, kept)``. ``kept`` is the final states, results and all:
   the small ones pickled together with cloudpickle, and each state whose result is past
   ``HOME_RESULT_BYTES`` as the object itself, once checked to pickle (without copying its
   buffers). It stays in the engine's object store, where downstream batches on any worker take
   it as an argument: on the same worker a big result is used where it lies, with no copy; the
   engine serializes it only to move it to another worker (numpy and other buffers out of band).
   A copy kept pickled would double every big result's memory on the worker that uses it, and
   the fan-in of a sweep's results would spill or pause that worker. ``home_blob`` is what the
   flow process fetches: the events, the measured compute time, the bytes of the results, and
   the final states, each big result left out (a ``RemoteResult`` stands for it until someone
   asks the runner for it: ``pick_result`` runs beside the batch and sends that one result).
   Just before returning, the batch hands ``home_blob`` to ``Channel.deliver``, which may send
   it home at once (Dask's does, where the engine would only fetch it with a task of its own).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import cloudpickle

from prefect_like.calls import walk
from prefect_like.errors import SerializationError
from prefect_like.futures import TaskFuture
from prefect_like.logging import install_print_capture, setup_logging
from prefect_like.states import Failed, State
from prefect_like.task_runners.shipping import loads as shipping_loads
from prefect_like.tasks import TaskCall
from prefect_like.tracking import events as _events
from prefect_like.tracking.events import TASK, task_event

# A re-run of a task run (after its worker died) numbers its events from attempt * SEQ_STRIDE, and
# the flow process records the end of an attempt at the top of that attempt's range.
SEQ_STRIDE = 1_000_000
ENV_PREFIX = "PREFECT_LIKE_"
# A result up to this size goes home with its state (cheaper than asking for it later); a bigger
# one stays on the cluster until someone asks for it.
HOME_RESULT_BYTES = 64 * 1024
_SMALL_TYPES = (int, float, bool, complex, type(None))


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """Stands for a result left on the cluster, in the state the flow process gets."""

    nbytes: int
    type_name: str


def result_bytes(value: Any) -> int:
    """About how many bytes ``value`` takes to ship: exact for buffers, by pickling otherwise."""
    if type(value) in _SMALL_TYPES:
        return 16
    if type(value) in (str, bytes, bytearray):
        return len(value)
    nbytes = getattr(value, "nbytes", None)  # numpy arrays, pandas Series, torch tensors...
    if type(nbytes) is int:
        return nbytes
    try:
        return len(pickle.dumps(value, protocol=5))
    except Exception:
        try:
            return len(cloudpickle.dumps(value))
        except Exception:
            return 0  # it cannot travel: _split_states fails its run


@dataclass(frozen=True, slots=True)
class Upstream:
    """Stands for an upstream future in a shipped call: ``args[arg]``, or slot ``slot`` of it."""

    arg: int
    slot: int | None
    task_run_id: str
    task_name: str


_PLACEHOLDERS = (TaskFuture, Upstream)


def replace_upstream(value: Any, leaf: Any) -> Any:
    """``value`` with every TaskFuture / Upstream inside it replaced by ``leaf(it)``."""
    return walk(value, lambda target, allowed: leaf(target), _PLACEHOLDERS)


class Channel:
    """How a worker sends event batches to one runner's flow process (engine-specific).

    A channel knows the flow process (``home``, its pid): a worker running in that very process
    (Dask's ``processes=False``, Ray's local mode) emits into the flow's own buffer, which the
    Recorder drains, and ships nothing."""

    key: str
    home: int = 0

    def at_home(self) -> bool:
        return self.home == os.getpid()

    def attach(self) -> None:
        """Called on the worker, in a task thread, when the channel is first used there."""

    def send(self, blob: bytes) -> None:
        raise NotImplementedError

    def ack(self) -> None:
        """Return once everything sent has reached the flow side's queue."""

    def early_key(self) -> str | None:
        """The engine's key of the batch running in this (task) thread, if this channel can send
        the states of a batch's ended runs home while the batch goes on (``deliver_early``);
        None if it cannot."""
        return None

    def deliver_early(self, key: str, ended_blob: bytes) -> None:
        """Send ``[(slot, state), ...]`` (pickled) of runs that ended in the running batch
        ``key``; called by the streamer thread, after the events of those runs."""

    def deliver(self, home_blob: bytes) -> None:
        """Called by ``run_batch`` (in the task thread) with the part of its value the flow
        process fetches, just before returning it. An engine whose own way of fetching that part
        would wait (Dask runs a task for it, which queues behind the worker's next task) sends it
        home here; the flow process still fetches it from the value if it never arrives."""


@dataclass(eq=False)
class Running:
    """A batch running in this process whose ended runs' states may go home before it ends."""

    channel: Channel
    key: str
    states: list[State]  # run_batch appends each run's final state
    last: float  # when its ended runs' states were last sent (at first, when it started)
    sent: int = 0  # how many of ``states`` were sent


class Outbox:
    """This process's events, sorted by the channel of the flow run they belong to; and the
    batches running here, whose ended runs go home while a long run holds the batch (a result
    past ``HOME_RESULT_BYTES`` waits for the batch's end: it lives in the batch's value)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channels: dict[str, Channel] = {}
        self.routes: dict[str, str] = {}  # flow run id -> channel key
        self.rewrites: dict[str, tuple[int, int]] = {}  # task run id -> (seq offset, run_count offset)
        self.pending: defaultdict[str, list[Any]] = defaultdict(list)
        self.waiting_since = 0.0
        self.running: set[Running] = set()
        self._streamer: threading.Thread | None = None

    def register(self, channel: Channel) -> Channel:
        with self.lock:
            known = self.channels.get(channel.key)
            if known is None:
                channel.attach()
                self.channels[channel.key] = known = channel
        return known

    def collect(self, default_key: str) -> None:
        """Move the buffer's events into ``pending`` (call with the lock held)."""
        batch = _events.fold(_events.drain(), None)[0]  # pending calls become events; markers are not ours
        if not batch:
            return
        if not self.waiting_since:
            self.waiting_since = time.monotonic()
        rewrites, routes, pending = self.rewrites, self.routes, self.pending
        if not rewrites and len(self.channels) <= 1:
            key = next(iter(self.channels), default_key)
            pending[key].extend(batch)
            return
        for event in batch:
            shift = rewrites.get(event.run_id)
            if shift is not None:
                data = event.data
                if event.kind == TASK and data and "run_count" in data:
                    data = {**data, "run_count": data["run_count"] + shift[1]}
                event = event._replace(seq=event.seq + shift[0], data=data)
            pending[routes.get(event.flow_run_id or "", default_key)].append(event)

    def take(self, channel: Channel) -> list[Any]:
        """Every event for ``channel`` so far; what the streamer sent is acknowledged first."""
        with self.lock:
            self.collect(channel.key)
            channel.ack()
            events = self.pending.pop(channel.key, [])
            if not self.pending:
                self.waiting_since = 0.0
            return events

    def stream(self, interval: float) -> None:
        """Start (once per process) the thread that ships events which waited ``interval`` s."""
        if self._streamer is not None:
            return
        with self.lock:
            if self._streamer is None:
                self._streamer = threading.Thread(
                    target=self._stream, args=(interval,), name="prefect-like-shipper", daemon=True
                )
                self._streamer.start()

    def _stream(self, interval: float) -> None:
        while True:
            time.sleep(interval / 2)
            if not _events.BUFFER and not self.pending and not self.running:
                continue
            with self.lock:
                now = time.monotonic()
                # Counted before the buffer is read: a run emits its events before its state is
                # appended, so each state counted here has its events in what is collected.
                ended = [
                    (r, n) for r in self.running
                    if (n := len(r.states)) > r.sent and now - r.last >= interval
                ]
                self.collect(next(iter(self.channels), ""))
                if ended:  # their runs' events go first, due or not: a state never outruns them
                    self.waiting_since = min(self.waiting_since or now, now - interval)
                if self.pending and now - self.waiting_since >= interval:
                    for key, events in list(self.pending.items()):
                        channel = self.channels.get(key)
                        if channel is None or not events:
                            continue
                        try:
                            channel.send(cloudpickle.dumps(events))
                            del self.pending[key]
                        except Exception:  # the batch carries them home instead
                            pass
                    self.waiting_since = 0.0 if not self.pending else self.waiting_since
                for running, upto in ended:
                    if running.channel.key not in self.pending:  # else its events did not go
                        _send_ended(running, upto, now)

    def watch(self, channel: Channel, key: str, states: list[State]) -> Running:
        running = Running(channel, key, states, time.monotonic())
        with self.lock:
            self.running.add(running)
        return running

    def unwatch(self, running: Running) -> None:
        with self.lock:
            self.running.discard(running)


def _send_ended(running: Running, upto: int, now: float) -> None:
    """Send home the states of ``running``'s runs that ended since the last time, up to slot
    ``upto``, but those with a big result (which stays in the batch's value)."""
    states = running.states
    found = []
    for slot in range(running.sent, upto):
        state = states[slot]
        if state.is_completed() and result_bytes(state.result()) > HOME_RESULT_BYTES:
            continue
        found.append((slot, state))
    running.sent, running.last = upto, now
    if not found:
        return
    with contextlib.suppress(Exception):  # else the batch's end brings them
        running.channel.deliver_early(running.key, cloudpickle.dumps(found))


OUTBOX = Outbox()
_applied_env: dict[str, str] | None = None
_logging_ready = False


def settings_for_workers() -> dict[str, str]:
    """This process's ``PREFECT_LIKE_*`` settings, for the processes that run its task calls."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}


def apply_settings(env: dict[str, str]) -> None:
    """Use the flow process's settings (home, API URL) here, so results and caches are shared."""
    global _applied_env, _logging_ready
    if not _logging_ready:
        setup_logging()
        _logging_ready = True
    if env == _applied_env:
        return
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX) and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    _applied_env = dict(env)


def take_events() -> list[Any]:
    """Every event this process buffered, pending calls made events (one consumer only)."""
    return _events.fold(_events.drain(), None)[0]


def _resolve_arg(value: Any) -> Any:
    """An upstream batch's final states from what the engine gives us (else ``value``: a State)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bytes):
        if isinstance(value[1], tuple):  # a whole batch's value (Dask): (home_blob, kept)
            value = value[1]
        return BatchStates(value)  # kept alone (Ray's second return value): (small_blob, big)
    return value


def home_part(value: tuple[bytes, Any]) -> bytes:
    """The part of a batch's value the flow process fetches (runs where the batch ran)."""
    return value[0]


def pick_result(value: Any, slot: int) -> Any:
    """The result of run ``slot`` of an upstream batch (runs on the cluster, beside the batch)."""
    return _resolve_arg(value)[slot].result(raise_on_failure=False)


def run_batch(
    payload: bytes, channel: Channel, interval: float, *upstream: Any
) -> tuple[bytes, tuple[bytes, dict[int, State]]]:
    """Run a batch of task calls on this worker; see the module docstring for the steps."""
    calls, env, offsets = shipping_loads(payload)
    apply_settings(env)
    shipping = not channel.at_home()
    if shipping:
        channel = OUTBOX.register(channel)
        OUTBOX.stream(interval)
        with OUTBOX.lock:
            for call in calls[:1]:
                OUTBOX.routes[call.flow_run_id] = channel.key
            for index, shift in offsets.items():
                OUTBOX.rewrites[calls[index].task_run_id] = shift
    resolved = [_resolve_arg(value) for value in upstream]

    def leaf(placeholder: Any) -> TaskFuture[Any]:
        # A done future rather than the bare state: a NotReady message then names the upstream task.
        value = resolved[placeholder.arg]
        future: TaskFuture[Any] = TaskFuture(placeholder.task_run_id, placeholder.task_name)
        future.set_state(value if placeholder.slot is None else value[placeholder.slot])
        return future

    states: list[State] = []
    started = time.perf_counter()
    early = channel.early_key() if shipping and len(calls) > 1 else None
    running = OUTBOX.watch(channel, early, states) if early is not None else None
    try:
        for call in calls:
            if call.upstream:
                call.parameters = {name: replace_upstream(v, leaf) for name, v in call.parameters.items()}
                call.wait_for = tuple(replace_upstream(v, leaf) for v in call.wait_for)
            if call.task.options.log_prints:
                install_print_capture()
            states.append(call.run())
    finally:
        if running is not None:
            OUTBOX.unwatch(running)
    elapsed = time.perf_counter() - started
    small_blob, away, big, nbytes = _split_states(states, calls, offsets)
    events: list[Any] = []
    if shipping:
        events = OUTBOX.take(channel)
        if offsets:
            with OUTBOX.lock:
                for index in offsets:
                    OUTBOX.rewrites.pop(calls[index].task_run_id, None)
    home_blob = cloudpickle.dumps((small_blob, away, elapsed, events, nbytes))
    channel.deliver(home_blob)
    return home_blob, (small_blob, big)


def _split_states(
    states: list[State], calls: list[TaskCall], offsets: dict[int, tuple[int, int]]
) -> tuple[bytes, dict[int, State], dict[int, State], int]:
    """What a batch's states become: ``small_blob``, every state but those with a big result
    (a None in their place), pickled once; for each big one, its state without the result (for
    the flow process) and the state itself (kept on the cluster, checked to travel); and the
    bytes of all the results."""
    small: list[State | None] = list(states)
    away: dict[int, State] = {}
    big: dict[int, State] = {}
    total = 0
    for slot, state in enumerate(states):
        if not state.is_completed():
            continue
        value = state.result()
        size = result_bytes(value)
        total += size
        if size <= HOME_RESULT_BYTES:
            continue
        try:  # buffers (numpy arrays...) are left out: they travel as they are
            cloudpickle.dumps(state, protocol=5, buffer_callback=_out_of_band)
        except Exception as exc:
            small[slot] = _cannot_travel(calls, offsets, slot, exc)
            continue
        big[slot] = state
        remote = RemoteResult(size, type(value).__name__)
        away[slot] = State(state.type, state.name, state.message, remote, state.timestamp, state.run_id)
        small[slot] = None
    try:
        small_blob = cloudpickle.dumps(small)
    except Exception:
        for slot, kept in enumerate(small):
            if kept is None:
                continue
            try:
                cloudpickle.dumps(kept)
            except Exception as exc:
                small[slot] = _cannot_travel(calls, offsets, slot, exc)
        small_blob = cloudpickle.dumps(small)
    return small_blob, away, big, total


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False


class BatchStates:
    """The final states of an upstream batch, from the value it left on the cluster."""

    def __init__(self, kept: tuple[bytes, dict[int, State]]) -> None:
        self._small_blob, self._big = kept
        self._small: list[State | None] | None = None

    def __getitem__(self, slot: int) -> State:
        state = self._big.get(slot)
        if state is not None:
            return state
        if self._small is None:
            self._small = pickle.loads(self._small_blob)
        found = self._small[slot]
        assert found is not None
        return found


def _cannot_travel(
    calls: list[TaskCall], offsets: dict[int, tuple[int, int]], slot: int, exc: Exception
) -> State:
    """A result that cannot travel: its run ends FAILED, saying why, recorded above what the
    run stored; the rest of the batch stands."""
    call = calls[slot]
    error = SerializationError(f"the result of task run {call.name!r} cannot be sent home: {exc}")
    failed = Failed(error)
    failed.run_id = call.task_run_id
    seq = offsets.get(slot, (0, 0))[0] + SEQ_STRIDE - 2
    data = {"run_count": 1, "error": {"type": "SerializationError", "message": str(error), "traceback": ""}}
    _events.emit(task_event(call.task_run_id, call.flow_run_id, seq, failed, data))
    return failed
