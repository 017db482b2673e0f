"""The suite's workloads, each written once for the tracked runners and once as a raw baseline.

Every workload registers in ``benchmarks.harness.WORKLOADS`` (the one registry): a factory
``(runner, n) -> run`` that does its setup (cluster start, warm-up, the first run of a cache
test) before it returns, so only ``run()`` is timed. ``runner`` is a prefect-like runner name
(``sequential``, ``thread``, ``asyncio``, ``dask``, ``ray``) or the raw engine a user would pick
instead: ``raw-loop``, ``raw-thread`` (``ThreadPoolExecutor``), ``raw-asyncio``
(``asyncio.gather``), ``raw-dask`` (``client.map``/``submit``), ``raw-ray`` (``.remote``).

Dask and Ray get a local cluster of ``WORKERS`` worker processes started in setup, used by both
sides alike (the runner by address); it is closed after the measurement (``harness.CLEANUP``).

    workload        tasks in the flow   what it shows
    trivial-map     n                   per-task overhead: ``x + 1`` mapped, results summed
    chain           n                   a dependent chain, each task takes the previous result
    diamond         n + 2               one root, n parallel tasks on it, one fan-in of all
    sleep-10ms      n                   parallel efficiency on I/O-like tasks
    cpu-10ms        n                   parallel efficiency on 10 ms of CPU (thread CPU time)
    big-results     n                   memory with 1 MB results kept by the caller
    retries         n                   every task fails once and succeeds on its retry
    cache-hits      n                   a second run of a cached map: every task a cache hit
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.harness import CLEANUP, workload

WORKERS = 2  # Dask / Ray worker processes: the machine's cores
RAW = ("raw-loop", "raw-thread", "raw-asyncio", "raw-dask", "raw-ray")
BASELINE = {"sequential": "raw-loop", "thread": "raw-thread", "asyncio": "raw-asyncio",
            "dask": "raw-dask", "ray": "raw-ray"}
EXPECTED_TASK_RUNS = {"diamond": lambda n: n + 2}


# -- the work, as plain functions (workers import them from this module) ------------------

def inc(x: int) -> int:
    return x + 1


def add(x: int, y: int) -> int:
    return x + y


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def total_star(*xs: int) -> int:
    return sum(xs)


def nap(x: int) -> int:
    time.sleep(0.01)
    return x


def spin(x: int) -> int:
    """10 ms of this thread's CPU time: threads share the GIL, so it does not overlap in threads."""
    end = time.thread_time() + 0.01
    while time.thread_time() < end:
        x += 1
    return x


def megabyte(x: int) -> bytes:
    return bytes([x % 256]) * 2**20


_failed_once: set[int] = set()


def flaky(x: int) -> int:
    """Fails on its first call for each ``x`` in this process, succeeds on the next."""
    if x not in _failed_once:
        _failed_once.add(x)
        raise RuntimeError(f"first attempt of {x} fails")
    return x + 1


def with_one_retry(x: int) -> int:
    try:
        return flaky(x)
    except RuntimeError:
        return flaky(x)


_memo: dict[int, int] = {}


def memo_inc(x: int) -> int:
    """``inc`` memoised in this process: the raw baseline's cache."""
    if x not in _memo:
        _memo[x] = x + 1
    return _memo[x]


async def ainc(x: int) -> int:
    return x + 1


async def anap(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


def cache_key(_context: Any, parameters: dict[str, Any]) -> str:
    return f"bench-inc-{parameters['x']}"


# -- engines -------------------------------------------------------------------------------

@functools.cache
def dask_client() -> Any:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    client = Client(cluster)
    CLEANUP.callback(cluster.close)
    CLEANUP.callback(client.close)
    client.gather(client.map(inc, range(200), pure=False))
    return client


@functools.cache
def ray_module() -> Any:
    import ray

    ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    CLEANUP.callback(ray.shutdown)
    ray.get([ray.remote(inc).remote(i) for i in range(200)])
    return ray


def task_runner(runner: str) -> Any:
    """The runner a flow gets: a name, or for Dask/Ray a runner on the cluster set up here."""
    if runner == "dask":
        from prefect_like_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_client().scheduler.address)
    if runner == "ray":
        from prefect_like_ray import RayTaskRunner

        ray_module()
        return RayTaskRunner()
    return runner


class Raw:
    """What a user writes without a framework, on one engine: submit (upstreams as arguments), map,
    results. The loop and the thread pool resolve upstreams by waiting, as user code would."""

    def __init__(self, runner: str) -> None:
        self.runner = runner
        if runner == "raw-thread":
            self.pool = ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4))
            CLEANUP.callback(self.pool.shutdown)
        elif runner == "raw-dask":
            self.client = dask_client()
        elif runner == "raw-ray":
            self.ray = ray_module()

    def _value(self, arg: Any) -> Any:
        if isinstance(arg, list):
            return [self._value(a) for a in arg]
        return arg.result() if hasattr(arg, "result") else arg

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.runner == "raw-loop":
            return fn(*args)
        if self.runner == "raw-thread":
            return self.pool.submit(fn, *(self._value(a) for a in args))
        if self.runner == "raw-dask":
            return self.client.submit(fn, *args, pure=False)
        if fn is total:  # Ray resolves refs only at the top level of the arguments
            return self._remote(total_star).remote(*args[0])
        return self._remote(fn).remote(*args)

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        if self.runner == "raw-dask":
            return self.client.map(fn, list(items), pure=False)  # type: ignore[no-any-return]
        if self.runner == "raw-loop":
            return [fn(i) for i in items]
        return [self.submit(fn, i) for i in items]

    def results(self, handles: list[Any]) -> list[Any]:
        if self.runner == "raw-loop":
            return handles
        if self.runner == "raw-thread":
            return [h.result() for h in handles]
        if self.runner == "raw-dask":
            return self.client.gather(handles)  # type: ignore[no-any-return]
        return self.ray.get(handles)  # type: ignore[no-any-return]

    @functools.cache  # noqa: B019 - one remote function per plain function, for the process
    def _remote(self, fn: Callable[..., Any]) -> Any:
        return self.ray.remote(fn)


class Tracked:
    """The same three verbs on prefect-like tasks, inside a flow."""

    def __init__(self, **options: Any) -> None:
        from prefect_like import task

        self.task = functools.cache(lambda fn: task(fn, **options))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.task(fn).submit(*args)

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> Any:
        return self.task(fn).map(items)

    def results(self, futures: Any) -> list[Any]:
        return [f.result() for f in futures]


def define(name: str, body: Callable[[Any, int, Callable[..., Any]], Any], fn: Callable[..., Any] = inc,
           async_fn: Callable[..., Any] | None = None, raw_fn: Callable[..., Any] | None = None,
           **task_options: Any) -> None:
    """Register workload ``name``: ``body(api, n, fn)`` run on a raw engine or in a tracked flow.

    ``fn`` is the mapped function; ``raw_fn`` what the raw side maps instead (its own retry or
    memo); ``async_fn`` the coroutine version for ``raw-asyncio`` (``asyncio.gather``) and the
    tracked asyncio runner (an async task). Without one, the asyncio baseline is the plain loop.
    """

    @workload(name)
    def factory(runner: str, n: int) -> Callable[[], Any]:
        if runner == "raw-asyncio" and async_fn is not None:
            async def gather() -> list[Any]:
                return await asyncio.gather(*(async_fn(i) for i in range(n)))

            return lambda: asyncio.run(gather())
        if runner in RAW:
            raw = Raw("raw-loop" if runner == "raw-asyncio" else runner)
            if name == "cache-hits":
                body(raw, n, raw_fn or fn)  # the first run fills the memo; the measured run hits it
            return lambda: body(raw, n, raw_fn or fn)

        from prefect_like import flow

        api = Tracked(**task_options)
        mapped = async_fn if runner == "asyncio" and async_fn is not None else fn

        @flow(name=f"bench-{name}", task_runner=task_runner(runner))
        def sweep(n: int) -> Any:
            return body(api, n, mapped)

        if name == "cache-hits":
            sweep(n)  # the first run fills the cache; the measured run hits it
        return lambda: sweep(n)


def _map(api: Any, n: int, fn: Callable[..., Any]) -> list[Any]:
    return api.results(api.map(fn, range(n)))  # type: ignore[no-any-return]


def _chain(api: Any, n: int, _fn: Any) -> int:
    handle = api.submit(inc, 0)
    for _ in range(n - 1):
        handle = api.submit(inc, handle)
    return api.results([handle])[0]  # type: ignore[no-any-return]


def _diamond(api: Any, n: int, _fn: Any) -> int:
    root = api.submit(inc, 0)
    middle = [api.submit(add, root, i) for i in range(n)]
    return api.results([api.submit(total, middle)])[0]  # type: ignore[no-any-return]


define("trivial-map", lambda api, n, fn: sum(_map(api, n, fn)), async_fn=ainc)
define("chain", _chain)
define("diamond", _diamond)
define("sleep-10ms", lambda api, n, fn: len(_map(api, n, fn)), fn=nap, async_fn=anap)
define("cpu-10ms", lambda api, n, fn: len(_map(api, n, fn)), fn=spin)
define("big-results", lambda api, n, fn: sum(map(len, _map(api, n, fn))), fn=megabyte)
define("retries", lambda api, n, fn: sum(_map(api, n, fn)), fn=flaky, raw_fn=with_one_retry,
       retries=1, retry_delay_seconds=0)
define("cache-hits", lambda api, n, fn: sum(_map(api, n, fn)), raw_fn=memo_inc, cache_key_fn=cache_key)
