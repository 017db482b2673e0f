"""RayTaskRunner: task runs as Ray tasks, in batches, with their events streamed home by an actor.

What happens, in order (the engine-agnostic part is ``prefect_like.task_runners.batching`` and
``worker``, shared with the Dask runner; this is the Ray part):

1. ``start`` uses the Ray this process is already connected to, or calls ``ray.init`` (a local
   Ray, or ``address``), with a runtime env whose PYTHONPATH imports prefect-like on workers;
   only a Ray it initialised itself is shut down by ``shutdown``.
2. One ``EventSink`` actor per driver and Ray session (no CPU of its own) receives the event
   batches that workers stream while tasks run; a poller thread takes this runner's batches
   every ``event_interval`` seconds into this process's event buffer, and once more at shutdown.
   A batch returns only after the sink acknowledged what its worker streamed, so that last take
   finds every event.
3. Each batch is one ``run_batch_remote.options(**engine_options).remote(payload, channel,
   interval, *upstream_refs)`` (``num_cpus``, ``num_gpus``, ``resources``, ``memory``...), with
   ``max_retries=0``: upstream ObjectRefs are arguments, Ray resolves them on the cluster.
4. A collector thread ``ray.wait``\\ s on the batches in flight, gets every ready one and hands
   results (or errors) to ``_batch_done``. While a batch runs long, its worker sends the
   states of its ended runs through the sink too (``RayChannel.deliver_early``); the collector
   ends their futures then (``BatchingTaskRunner._batch_ended_runs``).
   ``WorkerCrashedError``, ``OutOfMemoryError`` and a
   dead node count as the worker dying, under the same rule for lost runs as on Dask
   (``batching``, step 4). A Ray worker process runs one task at a time, so a run that kills
   its worker loses only its own batch; a dead node loses every batch on it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import queue
import signal
import threading
import uuid
from typing import Any

from prefect_like import engine_options
from prefect_like.errors import MissingEngineError
from prefect_like.task_runners.batching import Batch, BatchingTaskRunner, pythonpath_for_workers
from prefect_like.task_runners.worker import BatchStates, Channel
from prefect_like.tracking import events as _events

_sink_lock = threading.Lock()
_sink: tuple[Any, Any] | None = None  # (the Ray session's job and node ids, the EventSink handle)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingEngineError("Ray", "ray") from exc
    return ray


def _event_sink() -> Any:
    """This driver's EventSink in the current Ray session, created on first use."""
    global _sink
    import ray
    import ray.util.scheduling_strategies

    from ._remote import EventSink

    context = ray.get_runtime_context()
    # A new Ray session may reuse job id 01000000: the node id tells sessions apart.
    job = (context.get_job_id(), context.get_node_id())
    with _sink_lock:
        if _sink is None or _sink[0] != job:
            name = f"prefect-like-events-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # On the driver's node: a node lost with the sink would take the events with it.
            here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                context.get_node_id(), soft=False
            )
            # EventSink is a @ray.remote actor class: Ray gives it .options(), its type does not.
            _sink = (job, EventSink.options(name=name, scheduling_strategy=here).remote())  # type: ignore[attr-defined]
        return _sink[1]


class RayTaskRunner(BatchingTaskRunner):
    """Runs task runs on Ray: a local Ray of its own, the one already initialised, or ``address``.

    ``init_kwargs`` go to ``ray.init``. Batching is tuned by ``batch_seconds`` (work per Ray
    task) and ``max_batch_size``.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, init_kwargs: dict[str, Any] | None = None, **settings: Any
    ) -> None:
        super().__init__(**settings)
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self._owns_ray = False

    def __repr__(self) -> str:
        return f"RayTaskRunner(address={self.address!r})"

    # -- engine hooks -----------------------------------------------------------------------------

    def _engine_start(self) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            kwargs.update(self.init_kwargs)
            runtime_env = dict(kwargs.pop("runtime_env", None) or {})
            env_vars = {"PYTHONPATH": pythonpath_for_workers(), **runtime_env.get("env_vars", {})}
            runtime_env["env_vars"] = env_vars
            # ray.init makes SIGTERM exit the process; the flow's own handler must stay, so that
            # SIGTERM cancels the flow run (and this runner's work) like Ctrl-C.
            in_main = threading.current_thread() is threading.main_thread()
            previous = signal.getsignal(signal.SIGTERM) if in_main else None
            ray.init(address=self.address or "local", runtime_env=runtime_env, **kwargs)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self._owns_ray = True
        from ._remote import RayChannel, run_batch_remote

        self._remote = run_batch_remote
        self._remotes: dict[Any, Any] = {}
        self._resources_met: set[tuple[tuple[str, float], ...]] = set()
        self._sink = _event_sink()
        self._channel_obj = RayChannel(uuid.uuid4().hex, self._sink)
        # Batches sent, ("ended", task id, states) of a running batch's ended runs, None to stop.
        self._new: queue.SimpleQueue[Batch | tuple[Any, ...] | None] = queue.SimpleQueue()
        self._stop_polling = threading.Event()
        self._collector = self.start_collector(self._collect, "prefect-like-ray-collector")
        self._poller = threading.Thread(
            target=self._poll, name="prefect-like-ray-events", daemon=True
        )
        self._poller.start()

    def _engine_stop(self) -> None:
        self._new.put(None)
        self._stop_polling.set()
        self._collector.join()
        self._poller.join()
        if self._owns_ray:
            global _sink
            import ray

            with _sink_lock:
                _sink = None
            # Object refs and actor handles caught in reference cycles (a failed run's traceback,
            # say) must be freed while Ray is up: freed after ``ray.shutdown`` they make Ray end
            # the whole process ("the core worker has already been shutdown").
            gc.collect()
            ray.shutdown()
            self._owns_ray = False

    def _engine_channel(self) -> Channel:
        return self._channel_obj

    def _engine_slots(self) -> int:
        import ray

        return int(ray.cluster_resources().get("CPU", 1))

    def _engine_submit(
        self, payload: bytes, args: list[Any], options: dict[str, Any], name: str
    ) -> Any:
        options = engine_options.for_ray(options)
        self._check_resources(engine_options.requested(options))
        # Named after the task on Ray's dashboard and in `ray list tasks`, not all ``run_batch``.
        options = {"name": f"{name} batch", **options}
        key = repr(sorted(options.items()))
        remote = self._remotes.get(key)
        if remote is None:
            remote = self._remotes[key] = self._remote.options(**options)
        home, states = remote.remote(payload, self._channel, self.event_interval, *args)
        return home, states

    def _check_resources(self, wanted: dict[str, float]) -> None:
        """A ValueError if no live node has ``wanted``: Ray would keep the runs waiting, as
        infeasible, for a node that may never come. Asked once per set of resources."""
        import ray

        key = tuple(sorted(wanted.items()))
        if not wanted or key in self._resources_met:
            return
        offers = [
            {("MEMORY" if k == "memory" else k): float(v) for k, v in node["Resources"].items()}
            for node in ray.nodes() if node.get("Alive")
        ]
        how = "start a node that has them (ray start --num-gpus 1 --resources '{\"TPU\": 1}')"
        problem = engine_options.unmet(wanted, offers, "Ray", how)
        if problem is not None:
            raise ValueError(problem)
        self._resources_met.add(key)

    def _engine_fetch(self, wanted: list[tuple[Any, int]]) -> list[Any]:
        # A batch's kept value comes here whole (batches are bounded in bytes) and only the wanted
        # states are unpickled: a Ray task per fetch would start a worker process per result.
        import ray

        refs = list({id(ref): ref for ref, _ in wanted}.values())
        kept = dict(zip(map(id, refs), map(BatchStates, ray.get(refs)), strict=True))
        return [kept[id(ref)][slot].result(raise_on_failure=False) for ref, slot in wanted]

    def _engine_cancel(self, refs: list[Any]) -> None:
        import ray

        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def _engine_cancellation(self, exc: BaseException) -> str | None:
        from ray import exceptions

        if isinstance(exc, exceptions.TaskCancelledError):
            return f"Ray cancelled it (ray.cancel from elsewhere) [{type(exc).__name__}: {exc}]"
        return None

    def _worker_deaths(self, exc: BaseException) -> int:
        from ray import exceptions

        deaths = tuple(
            getattr(exceptions, name)
            for name in (
                "WorkerCrashedError",
                "OutOfMemoryError",
                "NodeDiedError",
                "LocalRayletDiedError",
            )
            if hasattr(exceptions, name)
        )
        return 1 if isinstance(exc, deaths) else 0

    def _engine_collect_events(self) -> None:
        self._take_events()

    # -- events and results ---------------------------------------------------------------------

    def _take_events(self) -> None:
        import ray

        for blob in ray.get(self._sink.take.remote(self._channel_obj.key)):
            message = pickle.loads(blob)
            if message.__class__ is tuple:  # ("ended", task id, states) of a batch still running
                self._new.put(message)
            else:
                _events.BUFFER.extend(message)

    def _poll(self) -> None:
        while not self._stop_polling.wait(self.event_interval):
            with contextlib.suppress(Exception):  # Ray going away: the final take reports it
                self._take_events()

    def _dispatch(self, batch: Batch) -> None:
        super()._dispatch(batch)
        if batch.home is not None:
            self._new.put(batch)

    def _collect(self) -> None:
        """Wait on the batches in flight; get every finished one and hand it over."""
        import ray

        inflight: dict[Any, Batch] = {}
        by_task: dict[str, Batch] = {}  # the Ray task id of each batch in flight
        closing = False
        while not (closing and not inflight):
            block = not inflight
            while True:
                try:
                    item = self._new.get(block=block)
                except queue.Empty:
                    break
                block = False
                if item is None:
                    closing = True
                elif isinstance(item, tuple):  # ended runs of a batch still running
                    running = by_task.get(item[1])
                    if running is not None:
                        self._batch_ended_runs(running, pickle.loads(item[2]))
                else:
                    inflight[item.home] = item
                    by_task[item.home.task_id().hex()] = item
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.05)
            if not ready:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0)
            batches = [inflight.pop(ref) for ref in ready]
            for ref in ready:
                by_task.pop(ref.task_id().hex(), None)
            try:
                results = ray.get(ready)
            except Exception:
                results = None
            for position, batch in enumerate(batches):
                if results is not None:
                    self._batch_done(batch, True, results[position])
                    continue
                try:
                    result = ray.get(batch.home)
                except Exception as exc:
                    self._batch_done(batch, False, exc)
                else:
                    self._batch_done(batch, True, result)
            # Held while the next wait blocks, the last batches would keep their runs' results.
            batches = results = ready = batch = item = None  # type: ignore[assignment]
