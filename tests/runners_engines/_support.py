"""Helpers for the engine tests: waiting on conditions (never on the clock) and a flow in a thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect_like import sweep, task
from tests.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(
    dict.fromkeys(
        [
            str(REPO_ROOT),
            str(REPO_ROOT / "runners"),
            *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
        ]
    )
)
ENV = {**os.environ, "PYTHONPATH": PYTHONPATH}


# The engines' tests wait the same way as every other test.
poll = wait_until


def wait_for_file(path: str, timeout: float) -> None:
    """Used inside tasks: return once ``path`` exists (the test creates it)."""
    poll(lambda: os.path.exists(path), timeout, path)


@task
def last_waits(i: int, last: int, release: str) -> int:
    """Run ``last`` waits for the test's file ``release``; the others return at once."""
    if i == last:
        wait_for_file(release, timeout=60)
    return i


def check_a_long_run_holds_no_batch_mates(runner: Any, folder: Path, n: int = 40) -> None:
    """Map ``n`` runs whose last waits until the flow saw every other end; the runs of its batch
    that ended before it must end in the flow while it runs (within the event interval).

    The case is Prefect's own ``wait`` example (https://docs.prefect.io/v3/api-ref/python/prefect-futures,
    ``wait``: ``done, not_done = wait(task.map(range(10)), timeout=5)``): ``done`` holds every
    future that completed before the timeout, on a batching runner as on threads."""
    from prefect_like import flow, wait

    release = str(folder / "release")

    @flow(task_runner=runner)
    def pipeline() -> tuple[int, list[int], bool]:
        futures = last_waits.map(range(n), n - 1, release)
        ended = len(wait(futures[: n - 1], timeout=30).done)
        batch_mates = futures[n - 1]._batch is not None and len(futures[n - 1]._batch.futures) > 1
        Path(release).touch()
        return ended, futures.result(), batch_mates

    ended, results, batch_mates = pipeline()
    assert batch_mates  # the long run shared its batch: else this shows nothing
    assert ended == n - 1
    assert results == list(range(n))


def count_start(log: str, name: str) -> int:
    """Used inside tasks: append ``name`` to ``log``; how many times ``name`` started so far."""
    with open(log, "a") as f:
        f.write(name + "\n")
    return starts(log, name)


def starts(log: str, name: str) -> int:
    """How many times ``name`` was appended to ``log``."""
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return f.read().splitlines().count(name)


def wait_for_task_state(store: Any, task_name: str, state: str, timeout: float) -> dict[str, Any]:
    """The first stored run of ``task_name`` in ``state``, polling the store until it appears."""

    def find() -> dict[str, Any] | None:
        try:
            flows = store.list_flow_runs(limit=5)
        except Exception:  # the database is not created until the first batch is written
            return None
        for flow_run in flows:
            for run in store.list_task_runs(flow_run["id"], task_name=task_name):
                if run["state"] == state:
                    return run
        return None

    return poll(find, timeout, f"a {task_name} task run in state {state}")


class Outcome:
    value: Any = None
    error: BaseException | None = None


@contextmanager
def flow_in_thread(fn: Callable[[], Any], timeout: float = 120) -> Iterator[Outcome]:
    """Run ``fn`` in a thread while the block runs; afterwards its value (or error) is in the outcome."""
    outcome = Outcome()

    def target() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:
            outcome.error = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(timeout)
    assert not thread.is_alive(), "the flow did not finish"
    if outcome.error is not None:
        raise outcome.error


# A worker death with a bystander: ``culprit`` kills its worker once ``bystander`` runs beside it;
# the bystander waits for a file the culprit writes only on its second attempt (so its first
# attempt is still running when the worker dies, wherever the two ran), and the flow releases
# the culprit's second death only once the bystander has ended.


@task
def culprit(log: str, folder: str) -> str:
    n = count_start(log, "culprit")
    Path(folder, f"culprit-{n}").touch()
    wait_for_file(str(Path(folder, "bystander-1" if n == 1 else "release")), timeout=60)
    os._exit(1)


@task
def bystander(log: str, folder: str) -> str:
    n = count_start(log, "bystander")
    Path(folder, f"bystander-{n}").touch()
    wait_for_file(str(Path(folder, "culprit-2")), timeout=60)
    return "done"


def culprit_and_bystander(log: str, folder: str) -> tuple[str, str]:
    """In a flow: run both, release the culprit once the bystander ended; their task run ids."""
    killer = culprit.submit(log, folder)
    other = bystander.submit(log, folder)
    other.wait()
    Path(folder, "release").touch()
    killer.wait()
    return killer.task_run_id, other.task_run_id


@task(retries=1)
def kills_its_worker(log: str) -> None:
    count_start(log, "kills_its_worker")
    os._exit(1)


@task(retries=5)
def kills_its_worker_with_many_retries(log: str) -> None:
    count_start(log, "kills_its_worker_with_many_retries")
    os._exit(1)


def state_names(run: dict[str, Any]) -> list[str]:
    return [s["state_name"] for s in run["states"]]


@task(retries=1, retry_delay_seconds=0)
def resumable(lr: float) -> dict[str, object]:
    """Saves a checkpoint per epoch on the worker; its first attempt dies after epoch 2, and the
    retry goes on from that checkpoint (the Dask and Ray search tests)."""
    saved = sweep.get_checkpoint()
    start = int((saved / "checkpoint.bin").read_bytes()) if saved is not None else 0
    ran = []
    for epoch in range(start + 1, 5):
        if epoch == 3 and saved is None:
            raise RuntimeError("preempted")
        ran.append(epoch)
        sweep.report(step=epoch, loss=lr / epoch, checkpoint=str(epoch).encode())
    return {"loss": lr / 4, "ran": ran, "pid": os.getpid()}
