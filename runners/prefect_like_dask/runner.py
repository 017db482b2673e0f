"""DaskTaskRunner: task runs on a Dask cluster, in batches, with their events streamed home.

What happens, in order (the engine-agnostic part is ``prefect_like.task_runners.batching`` and
``worker``; this is the Dask part):

1. ``start`` connects a ``distributed.Client``: to ``address`` (an existing scheduler, left
   running), or to a cluster it starts itself (``cluster_class``, by default a ``LocalCluster``
   of worker processes, closed again by ``shutdown``). Its own cluster gets
   ``allowed_failures=0``, so a worker dying mid-task reaches us at once (as ``KilledWorker``,
   for every task that was on it) and prefect-like's rule for lost runs decides what happens
   (``batching``, step 4: the bystanders are rescheduled, the culprit ends CRASHED); on someone
   else's cluster Dask first re-runs the task on other workers, and its ``KilledWorker`` counts
   as the ``allowed_failures + 1`` deaths it reports. Worker processes get a PYTHONPATH that
   imports prefect-like.
2. The client subscribes to a topic of its own. Workers ``log_event`` pickled event batches to
   it (over the worker's ordered stream to the scheduler, the same stream that later reports the
   task's result), and the handler puts them in this process's event buffer.
3. Each batch is one ``client.submit(run_batch, payload, channel, interval, *upstream_futures)``
   with the task's ``engine_options`` as submit keywords (``resources``, ``workers``,
   ``priority``...). Upstream Dask futures are arguments: the scheduler resolves the dependency.
4. The flow process needs only the small part of a batch's value (``home_blob``, see
   ``worker``). A task that fetched it would queue behind the worker's next task, and the flow
   would learn of every batch's end one batch late (on a worker with one thread, a whole trial
   late). So the batch sends that part home itself, on the same ordered stream as its events,
   just before returning (``DaskChannel.deliver``): it reaches the client before Dask reports
   the task finished. A part past ``HOME_BY_STREAM_BYTES`` (the scheduler keeps a topic's last
   messages) or one that never arrived is fetched as before, by a ``home_part`` task beside the
   value, started when the batch's future finishes.
5. While a batch runs long, the worker's streamer sends the states of its runs that ended
   (``DaskChannel.deliver_early``, after their events): their futures end then, not with the
   batch (``BatchingTaskRunner._batch_ended_runs``).
6. One collector thread takes the parts that arrived, the finished futures and the fetched
   parts, many per round trip, and hands results (or errors) to ``_batch_done``, once per
   batch. ``KilledWorker`` (and a worker lost with a task) counts as the worker dying.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import inspect
import logging
import pickle
import queue
import uuid
from typing import Any

from prefect_like import engine_options
from prefect_like.errors import MissingEngineError
from prefect_like.task_runners.batching import Batch, BatchingTaskRunner, pythonpath_for_workers
from prefect_like.task_runners.worker import Channel, home_part, pick_result, run_batch
from prefect_like.tracking import events as _events


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingEngineError("Dask", "dask") from exc
    return distributed


# The biggest home part sent over the event topic; the scheduler keeps a topic's last
# ``distributed.admin.low-level-log-length`` messages, which the runner clears every
# ``TRUNCATE_EVERY`` parts it takes.
HOME_BY_STREAM_BYTES = 512 * 1024
TRUNCATE_EVERY = 100


class DaskChannel(Channel):
    """Events (and batches' home parts) to the flow process through the scheduler's event topics."""

    def __init__(self, topic: str) -> None:
        self.key = topic
        self._worker: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "home": self.home}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key, self.home = state["key"], state["home"]
        self._worker = None
        _size_states()  # unpickled on the worker, before the batch makes any

    def attach(self) -> None:
        from distributed import get_worker

        self._worker = get_worker()

    def send(self, blob: bytes) -> None:
        self._worker.log_event(self.key, blob)

    def early_key(self) -> str | None:
        return str(self._worker.get_current_task())

    def deliver_early(self, key: str, ended_blob: bytes) -> None:
        if len(ended_blob) <= HOME_BY_STREAM_BYTES:
            self._worker.log_event(self.key, {"batch": key, "ended": ended_blob})

    def deliver(self, home_blob: bytes) -> None:
        if len(home_blob) > HOME_BY_STREAM_BYTES:
            return
        try:
            from distributed import get_worker

            worker = self._worker or get_worker()
            worker.log_event(self.key, {"batch": worker.get_current_task(), "home": home_blob})
        except Exception:  # the flow process fetches it from the batch's value instead
            logging.getLogger(__name__).debug("could not send a batch's home part", exc_info=True)


@functools.cache
def _size_states() -> None:
    """Teach Dask's ``sizeof`` the size of a ``State``: its result's. A batch keeps its big
    results as objects (``worker``), and the worker's memory limits (spill, pause) go by what
    ``sizeof`` says its values hold; left alone it would count a 1 MB result as 72 bytes."""
    from dask.sizeof import sizeof

    from prefect_like.states import State

    @sizeof.register(State)
    def _state_bytes(state: State) -> int:
        return 64 + int(sizeof(state._data))


@functools.cache
def _submit_options() -> frozenset[str]:
    """The engine options a task may give on Dask: the keywords of ``Client.submit`` that this
    runner leaves to the task (it sets the function, its arguments, ``key`` and ``pure``)."""
    from distributed import Client

    taken = {"self", "func", "args", "kwargs", "key", "pure", "actor", "actors"}
    return frozenset(inspect.signature(Client.submit).parameters) - taken


def _resolve(qualified_name: str) -> Any:
    """The class ``package.module.Class`` names; ValueError if there is none."""
    module_name, _, name = qualified_name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cluster_class {qualified_name!r} names no class: {exc}") from None


class DaskTaskRunner(BatchingTaskRunner):
    """Runs task runs on a Dask cluster: a local one of its own, or an existing one by address.

    ``DaskTaskRunner()`` starts a ``LocalCluster`` (worker processes) for the flow run and closes
    it after; ``DaskTaskRunner(address="tcp://...")`` uses a running scheduler and leaves it be.
    As in Prefect, ``cluster_class`` may be a class or its qualified name
    (``"dask_jobqueue.SLURMCluster"``), and ``adapt_kwargs`` makes the cluster it starts
    adaptive (``cluster.adapt(minimum=..., maximum=...)``). Batching is tuned by
    ``batch_seconds`` (work per engine task) and ``max_batch_size``.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        cluster_class: Any = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        if address is not None and (cluster_class is not None or cluster_kwargs or adapt_kwargs):
            raise ValueError(
                "give either address (a running cluster) or cluster_class/cluster_kwargs/adapt_kwargs "
                "(a cluster the runner starts), not both"
            )
        self.address = address
        self.cluster_class = _resolve(cluster_class) if isinstance(cluster_class, str) else cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.client: Any = None
        self.cluster: Any = None

    def __repr__(self) -> str:
        where = (
            f"address={self.address!r}" if self.address else f"cluster_class={self._cluster_name()}"
        )
        return f"DaskTaskRunner({where})"

    def _cluster_name(self) -> str:
        return getattr(self.cluster_class, "__name__", None) or "LocalCluster"

    # -- engine hooks -----------------------------------------------------------------------------

    def _engine_start(self) -> None:
        distributed = _import_distributed()
        if self.address is None:
            cluster_class = self.cluster_class or distributed.LocalCluster
            kwargs = dict(self.cluster_kwargs)
            if cluster_class is distributed.LocalCluster:
                kwargs.setdefault("processes", True)
                kwargs.setdefault("dashboard_address", ":0")
                kwargs.setdefault("silence_logs", logging.ERROR)
                scheduler_kwargs = {"allowed_failures": 0, **kwargs.get("scheduler_kwargs", {})}
                kwargs["scheduler_kwargs"] = scheduler_kwargs
                if kwargs["processes"]:
                    env = {"PYTHONPATH": pythonpath_for_workers(), **kwargs.get("env", {})}
                    kwargs["env"] = env
            self.cluster = cluster_class(**kwargs)
            if self.adapt_kwargs:
                self.cluster.adapt(**self.adapt_kwargs)
            target: Any = self.cluster
        else:
            target = self.address
        self.client = distributed.Client(target, set_as_default=False, **self.client_kwargs)
        self._resources_met: set[tuple[tuple[str, float], ...]] = set()
        self._topic = f"prefect-like-events-{uuid.uuid4().hex}"
        self.client.subscribe_topic(self._topic, self._on_event)
        # What the collector takes: ("home", key, home_blob) sent by a batch, ("ended", key,
        # ended_blob) of its runs that ended while it runs, ("done", batch) when its future
        # ends, ("fetched", batch, home_future) when a fetched home part is ready; None to stop.
        self._done: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._awaiting: dict[str, Batch] = {}  # engine key -> batch not handed over yet
        self._delivered = 0
        self._collector = self.start_collector(self._collect, "prefect-like-dask-collector")

    def _engine_stop(self) -> None:
        self._done.put(None)
        self._collector.join()
        try:
            topic = self._topic
            self.client.unsubscribe_topic(topic)
            self.client.run_on_scheduler(_truncate_topic, topic=topic)
        except Exception:
            pass
        self.client.close()
        self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def _engine_channel(self) -> Channel:
        return DaskChannel(self._topic)

    def _engine_submit(
        self, payload: bytes, args: list[Any], options: dict[str, Any], name: str
    ) -> Any:
        options = engine_options.for_dask(options)
        unknown = sorted(set(options) - _submit_options())
        if unknown:  # Client.submit would pass them on to the function: say so here instead
            raise ValueError(
                f"Dask's Client.submit takes no option {', '.join(map(repr, unknown))}; the ones it "
                f"takes are {', '.join(sorted(_submit_options()))} (GPUs, say, are resources={{'GPU': 1}})"
            )
        self._check_resources(options.get("resources") or {})
        # Dask's dashboard groups keys by their words up to the first that is not all letters:
        # the task's name stays whole as one word (``evaluate-v2`` would show as ``evaluate``).
        key = uuid.uuid4().hex
        name = dashboard_name(name)
        future = self.client.submit(
            run_batch,
            payload,
            self._channel,
            self.event_interval,
            *args,
            key=f"{name}-batch-{key}",
            pure=False,
            **options,
        )
        return future, future

    def _check_resources(self, wanted: dict[str, float]) -> None:
        """A ValueError if no worker has ``wanted``: Dask would keep the runs waiting for good.
        Asked once per set of resources; an adaptive cluster may yet start a worker with them."""
        key = tuple(sorted(wanted.items()))
        if not wanted or self.adapt_kwargs or key in self._resources_met:
            return
        offers = self.client.run_on_scheduler(_worker_resources)
        how = ('start workers with them (dask worker ... --resources "GPU=1"), or give the cluster the '
               'runner starts cluster_kwargs={"resources": {"GPU": 1}}')
        problem = engine_options.unmet(wanted, offers, "Dask", how)
        if problem is not None:
            raise ValueError(problem)
        self._resources_met.add(key)

    def _engine_fetch(self, wanted: list[tuple[Any, int]]) -> list[Any]:
        picks = [
            self.client.submit(
                pick_result,
                ref,
                slot,
                key=f"{ref.key.split('-batch-')[0]}-result-{uuid.uuid4().hex}-{slot}",
                pure=False,
            )
            for ref, slot in wanted
        ]
        return list(self.client.gather(picks))

    def _engine_slots(self) -> int:
        return sum(self.client.nthreads().values())

    def _engine_cancel(self, refs: list[Any]) -> None:
        if refs:
            self.client.cancel(refs, force=True)

    def _engine_cancellation(self, exc: BaseException) -> str | None:
        from distributed.client import FutureCancelledError

        if isinstance(exc, FutureCancelledError):
            why = {
                "scheduler-restart": "the scheduler was restarted (client.restart(), by any client)",
                "scheduler-connection-lost": "this client lost its connection to the scheduler",
                "unknown": "another client or the scheduler cancelled it",
            }.get(exc.reason, exc.reason)
            return f"{why} [{type(exc).__name__}: {exc}]".replace("\n", " ")
        if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
            return f"another client or the scheduler cancelled it [{type(exc).__name__}: {exc}]"
        return None

    def _worker_deaths(self, exc: BaseException) -> int:
        from distributed.scheduler import KilledWorker

        return exc.allowed_failures + 1 if isinstance(exc, KilledWorker) else 0

    # -- events and results ---------------------------------------------------------------------

    def _on_event(self, event: tuple[float, Any]) -> None:
        message = event[1]
        if isinstance(message, bytes):
            _events.BUFFER.extend(pickle.loads(message))
        elif "home" in message:  # a batch's home part, sent ahead of its value (``deliver``)
            self._done.put(("home", message["batch"], message["home"]))
        else:  # the states of a running batch's ended runs (``deliver_early``)
            self._done.put(("ended", message["batch"], message["ended"]))

    def _dispatch(self, batch: Batch) -> None:
        super()._dispatch(batch)
        future = batch.home
        if future is not None:
            self._awaiting[future.key] = batch
            future.add_done_callback(lambda _: self._done.put(("done", batch)))

    def _collect(self) -> None:
        """Take what arrived, many at a time, and hand each batch over once."""
        while True:
            first = self._done.get()
            if first is None:
                return
            taken = [first]
            while True:
                try:
                    item = self._done.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._done.put(None)
                    break
                taken.append(item)
            try:
                self._take(taken)
            except BaseException as exc:  # never let the collector die: the runs would hang
                for entry in taken:
                    batch = entry[1]
                    if isinstance(batch, Batch) and self._awaiting.pop(batch.home.key, None) is not None:
                        self._batch_done(batch, False, exc)
            # Held while the next get() blocks, the last batches would keep their runs' results.
            first = taken = item = entry = batch = None  # type: ignore[assignment]

    def _take(self, taken: list[tuple[Any, ...]]) -> None:
        ended: list[Batch] = []
        fetched: list[tuple[Batch, Any]] = []
        for what, *rest in taken:
            if what == "ended":  # ended runs of a batch still running
                running = self._awaiting.get(rest[0])
                if running is not None:
                    self._batch_ended_runs(running, pickle.loads(rest[1]))
            elif what == "home":  # a batch's home part, arrived before its future ended
                arrived = self._awaiting.pop(rest[0], None)
                if arrived is not None:  # else handed over already, or a re-run of a batch
                    self._delivered += 1
                    self._batch_done(arrived, True, rest[1])
            elif what == "done":
                batch: Batch = rest[0]
                if self._awaiting.get(batch.home.key) is batch:
                    ended.append(batch)
            else:  # "fetched": a home part fetched by a task
                fetched.append((rest[0], rest[1]))
        if self._delivered >= TRUNCATE_EVERY:
            self._delivered = 0
            with contextlib.suppress(Exception):  # housekeeping: the next try may succeed
                self.client.run_on_scheduler(_truncate_topic, topic=self._topic)
        for batch in ended:
            error = _error_of(batch.home)
            if error is None:  # it finished, but its home part did not arrive: fetch it
                home = self.client.submit(
                    home_part, batch.home, key=f"{batch.home.key}-home", pure=False
                )
                home.add_done_callback(
                    lambda _, batch=batch, home=home: self._done.put(("fetched", batch, home))
                )
            else:
                self._awaiting.pop(batch.home.key, None)
                self._batch_done(batch, False, error)
        if fetched:
            self._hand_over(fetched)

    def _hand_over(self, fetched: list[tuple[Batch, Any]]) -> None:
        """The batches whose home parts were fetched by a task: all in one round trip."""
        ok = [(b, home) for b, home in fetched if home.status == "finished"]
        failed = [(b, home) for b, home in fetched if home.status != "finished"]
        if ok:
            try:
                results = self.client.gather([home for _, home in ok], errors="raise")
            except BaseException:  # one was cancelled or lost meanwhile: each on its own below
                results = None
            if results is None:
                failed.extend(ok)
            else:
                for (batch, _), result in zip(ok, results, strict=True):
                    if self._awaiting.pop(batch.home.key, None) is not None:
                        self._batch_done(batch, True, result)
        for batch, home in failed:
            if self._awaiting.pop(batch.home.key, None) is None:
                continue
            error, result = _error_of(home), None
            if error is None:  # finished after all (raced with the status read)
                try:
                    result = home.result()
                except BaseException as exc:
                    error = exc
            if error is None:
                self._batch_done(batch, True, result)
            else:
                self._batch_done(batch, False, error)


def _error_of(future: Any) -> BaseException | None:
    """The error an ended Dask future holds (None: it finished): the task's own, or why it was
    cancelled or lost."""
    if future.status == "finished":
        return None
    try:
        if future.status == "error":
            return future.exception()
        future.result()  # cancelled: says why (``exception()`` would say None)
    except BaseException as exc:  # cancelled, or the client lost the scheduler
        return exc
    return None  # finished meanwhile


def _worker_resources(dask_scheduler: Any) -> list[dict[str, float]]:
    """On the scheduler: each worker's resources."""
    return [dict(worker.resources) for worker in dask_scheduler.workers.values()]


def dashboard_name(task_name: str) -> str:
    """The task's name as the first word of a Dask key: no ``-``, which splits words there."""
    name = task_name.replace("-", "_").strip() or "task"
    return name if name[0].isalpha() else f"task_{name}"


def _truncate_topic(dask_scheduler: Any, topic: str) -> None:
    dask_scheduler._broker.truncate(topic)
