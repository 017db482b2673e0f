"""The Ray side of the Ray runner: the remote batch function and the event sink actor.

Imported only once Ray is (the runner imports it in ``start``), and on Ray workers, which import
it by name to run batches and to host the sink.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import Any

import ray

from prefect_like.task_runners.worker import Channel, run_batch

# Ray must not re-run a batch by itself: a worker death is reported, and retries are prefect-like's.
# Its two return values are two objects: the flow process gets the first (events, states with small
# results), the second (every result) stays in the object store for downstream tasks.
run_batch_remote = ray.remote(max_retries=0, num_returns=2)(run_batch)


@ray.remote(num_cpus=0, max_restarts=0)
class EventSink:
    """Holds event batches that workers stream, until each runner's flow process takes its own."""

    def __init__(self) -> None:
        self.inbox: defaultdict[str, list[bytes]] = defaultdict(list)

    def put(self, key: str, blob: bytes) -> None:
        self.inbox[key].append(blob)

    def take(self, key: str) -> list[bytes]:
        return self.inbox.pop(key, [])


class RayChannel(Channel):
    """Events to the flow process through the driver's ``EventSink`` actor."""

    def __init__(self, key: str, sink: Any) -> None:
        self.key = key
        self.sink = sink
        self._last: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key, "sink": self.sink, "home": self.home}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key, self.sink, self.home, self._last = state["key"], state["sink"], state["home"], None

    def send(self, blob: bytes) -> None:
        self._last = self.sink.put.remote(self.key, blob)

    def early_key(self) -> str | None:
        return str(ray.get_runtime_context().get_task_id())

    def deliver_early(self, key: str, ended_blob: bytes) -> None:
        # Through the sink too, after the events of those runs (a caller's actor calls keep
        # their order): the flow process tells it from an event batch by its form.
        self._last = self.sink.put.remote(self.key, pickle.dumps(("ended", key, ended_blob)))

    def ack(self) -> None:
        if self._last is not None:
            ray.get(self._last)
            self._last = None
