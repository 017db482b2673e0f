"""``prefect-like worker start --pool P``: run the flow runs the tracking server hands out.

A worker, every ``PREFECT_LIKE_WORKER_POLL_SECONDS`` (1 s):

1. Reaps the subprocesses of its runs that ended. One that exited without its flow run having
   a final state (it could not import the flow, or was killed) is reported, and the server ends
   the run CRASHED with the last line the process wrote.
2. Sends a heartbeat naming the runs it has; the answer holds the cancellation requests among
   them. The flow's own process sees the same request in the answer to its events and ends the
   run CANCELLED (``engine.signals.cancel``); one still running ``CANCEL_GRACE`` seconds later
   gets SIGTERM, which ends it the same way.
3. Claims due runs of its pool, up to ``--limit`` running at once (and the pool's own limit,
   which the server applies), and starts each in a process of its own, forked from the worker
   (its imports already made, so a run starts in a fraction of a second; on a system without
   fork, or with ``PREFECT_LIKE_WORKER_START=spawn``, ``python -m prefect_like.worker SPEC``),
   which imports the flow from the deployment's
   entrypoint, puts it on the chosen runner (``--runner dask --address tcp://...``: the flow's
   driver runs here, its tasks on the cluster) and runs it under the flow run id the server made
   (``engine.flow_engine.run_as``), so the run claimed is the run recorded. Its output goes to
   ``PREFECT_LIKE_HOME/worker-logs/<flow run id>.log``.

The server going away is not the worker's end: runs in progress go on (their events wait in
their Recorder, as for any flow), the worker says once that it cannot reach the server, and
claims again when it is back. The subprocesses die with the worker (``PR_SET_PDEATHSIG`` on
Linux): a worker killed mid-run leaves its runs silent, the server's heartbeat check ends them
CRASHED, and a deployment with ``retries`` runs them again. Ctrl-C or SIGTERM stops the
worker: it claims nothing more, sends each run SIGTERM (each ends CANCELLED and flushes its
events), waits for them, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prefect_like import settings
from prefect_like.errors import RunNotFoundError, TrackingError


@dataclass
class _Child:
    run: dict[str, Any]
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    cancel_asked: float | None = None
    signalled: bool = False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The child gets SIGKILL when the worker dies, however it dies (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


class Worker:
    """Polls one work pool and runs what it claims, each run in a subprocess."""

    def __init__(
        self, pool: str, *, name: str | None = None, limit: int | None = None, runner: str | None = None,
        address: str | None = None, poll_seconds: float | None = None,
    ) -> None:
        from prefect_like.deployments import DeploymentClient
        from prefect_like.tracking.control import check_name

        self.pool = check_name(pool, "a work pool name")
        self.name = check_name(name or f"{socket.gethostname()}-{os.getpid()}", "a worker name")
        if limit is not None and limit < 1:
            raise ValueError(f"--limit must be 1 or more, got {limit}")
        self.limit = limit
        if address and not runner:
            raise ValueError("--address goes with --runner dask or --runner ray")
        if runner:
            from prefect_like.task_runners import load_task_runner_class

            load_task_runner_class(runner.lower())  # an unknown or uninstalled runner fails now
        self.runner = runner.lower() if runner else None
        self.address = address
        self.poll = poll_seconds if poll_seconds is not None else settings.float_setting("WORKER_POLL_SECONDS", 1.0)
        self.cancel_grace = settings.float_setting("WORKER_CANCEL_GRACE", 10.0)
        self.client = DeploymentClient(timeout=10.0)
        self.children: dict[str, _Child] = {}
        self.unreported: dict[str, str] = {}  # crashes the server could not be told of yet
        self.stopping = threading.Event()
        self.server_down = False
        self.logs = settings.home() / "worker-logs"

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Work the pool until Ctrl-C or SIGTERM."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        where = f" on the {self.runner} runner" + (f" at {self.address}" if self.address else "") if self.runner else ""
        _say(f"Worker {self.name!r} started: polling work pool {self.pool!r} at {self.client.url}{where}; "
             f"{'at most ' + str(self.limit) if self.limit else 'any number of'} runs at once")
        try:
            while not self.stopping.is_set():
                self.step()
                self.stopping.wait(self.poll)
        finally:
            self._stop_children()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.client.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping.is_set():  # a second signal: do not wait for the runs
            for child in self.children.values():
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
            raise SystemExit(130 if signum == signal.SIGINT else 143)
        _say(f"Stopping: {len(self.children)} run(s) in progress are cancelled and recorded; "
             "interrupt again to kill them at once")
        self.stopping.set()

    def step(self) -> None:
        """One poll: reap, heartbeat, claim."""
        self._reap()
        try:
            self._report_crashes()
            if self.children:
                answer = self.client.heartbeat(self.pool, self.name, list(self.children), socket.gethostname(), os.getpid())
                self._cancel(answer.get("cancel") or {})
            room = self.limit - len(self.children) if self.limit else 10
            if room > 0 and not self.stopping.is_set():
                for run in self.client.claim(self.pool, self.name, room):
                    self._start(run)
        except TrackingError as exc:
            if not self.server_down:
                _say(f"Cannot reach the tracking server ({exc}); runs in progress go on, "
                     "and claiming resumes when it is back")
            self.server_down = True
            return
        if self.server_down:
            _say("The tracking server is back; claiming again")
            self.server_down = False

    # -- runs ----------------------------------------------------------------------------

    def _start(self, run: dict[str, Any]) -> None:
        spec = {"id": run["id"], "entrypoint": run["entrypoint"], "parameters": run["parameters"],
                "deployment": {"id": run["deployment_id"], "name": run["deployment"], "work_pool": run["work_pool"]},
                "runner": self.runner, "address": self.address}
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{run['id']}.log"
        log = log_path.open("ab")
        env = dict(os.environ)
        # Heartbeats often enough that a cancellation request is seen within seconds.
        env.setdefault(settings.PREFIX + "HEARTBEAT_SECONDS", "2")
        env[settings.PREFIX + "API_URL"] = self.client.url
        process: Any
        if hasattr(os, "fork") and settings._get("WORKER_START", "fork") == "fork":
            process = _fork(spec, env, log)
        else:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect_like.worker", json.dumps(spec)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # the terminal's Ctrl-C reaches the worker, which forwards one SIGTERM
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self.children[run["id"]] = _Child(run, process, log_path, log)
        attempt = f", attempt {run['attempt']}" if run.get("attempt", 1) > 1 else ""
        _say(f"Running flow run {run['id']} of deployment {run['deployment']!r}{attempt} (pid {process.pid}, "
             f"log {log_path})")

    def _reap(self) -> None:
        for flow_run_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[flow_run_id]
            child.log.close()
            _say(f"Flow run {flow_run_id} ended (exit status {code})")
            if code != 0:
                self.unreported[flow_run_id] = (
                    f"Crashed: its process on worker {self.name!r} exited with status {code} without "
                    f"a final state; last output: {_last_line(child.log_path)}"
                )

    def _report_crashes(self) -> None:
        """Tell the server of runs whose process ended without a final state of its own."""
        from prefect_like.states import is_final

        for flow_run_id, message in list(self.unreported.items()):
            try:
                run = self.client.get_flow_run(flow_run_id)
                if not is_final(run.get("state"), run.get("state_name")):
                    self.client.report_crash(flow_run_id, message)
            except RunNotFoundError:
                pass
            del self.unreported[flow_run_id]

    def _cancel(self, requests: dict[str, str]) -> None:
        now = time.monotonic()
        for flow_run_id in requests:
            child = self.children.get(flow_run_id)
            if child is None or child.signalled:
                continue
            if child.cancel_asked is None:
                child.cancel_asked = now
                _say(f"Flow run {flow_run_id}: cancellation requested")
            elif now - child.cancel_asked > self.cancel_grace:
                _say(f"Flow run {flow_run_id} did not stop within {self.cancel_grace:g} s; sending SIGTERM")
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                child.signalled = True

    def _stop_children(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.float_setting("FLUSH_TIMEOUT", 30.0) + 5.0
        for child in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(0.1, deadline - time.monotonic()))
        self._reap()
        with contextlib.suppress(TrackingError):
            self._report_crashes()
        _say(f"Worker {self.name!r} stopped")


class _Forked:
    """A run's process forked from the worker, with the part of ``Popen``'s interface the
    worker uses (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"flow run process {self.pid}", timeout or 0)
            time.sleep(0.05)  # polling the child's exit, with the caller's deadline
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _fork(spec: dict[str, Any], env: dict[str, str], log: IO[bytes]) -> _Forked:
    """Start a run's process by forking the worker, whose imports (prefect_like, pydantic, httpx)
    it then need not repeat: a triggered run starts in a fraction of a second, not the seconds a
    fresh interpreter takes (``PREFECT_LIKE_WORKER_START=spawn`` starts one instead). The worker
    has no threads of its own, so forking it is safe."""
    pid = os.fork()
    if pid:
        return _Forked(pid)
    code = 70
    try:  # the child: it never returns into the worker's loop
        os.setsid()  # the terminal's Ctrl-C reaches the worker, which forwards one SIGTERM
        if sys.platform.startswith("linux"):
            _die_with_parent()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        os.environ.clear()
        os.environ.update(env)
        code = execute(spec)
    except BaseException as exc:  # noqa: BLE001 - anything: say it, and end with a status
        print(f"Error: the flow run's process failed: {type(exc).__name__}: {exc}", flush=True)
    finally:
        try:  # what atexit would do in a process that exits normally
            from prefect_like.tracking.recorder import shutdown_recorder

            shutdown_recorder()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1][-500:] if lines else "(no output)"


# -- the subprocess of one run ---------------------------------------------------------------


def load_entrypoint(entrypoint: str) -> Any:
    """The flow at ``/path/file.py:name`` or ``package.module:name``."""
    import importlib

    from prefect_like.flows import Flow

    target, _, name = entrypoint.rpartition(":")
    if target.endswith(".py") or "/" in target or os.sep in target:
        from prefect_like.runfile import load_flow

        return load_flow(entrypoint)
    module = importlib.import_module(target)
    flow = getattr(module, name, None)
    if not isinstance(flow, Flow):
        raise ValueError(f"{entrypoint}: no flow named {name!r} in module {target!r}")
    return flow


def task_runner_for(runner: str | None, address: str | None) -> Any:
    if runner is None:
        return None
    from prefect_like.task_runners import load_task_runner_class

    cls = load_task_runner_class(runner)
    return cls(address=address) if address else cls()  # type: ignore[call-arg]


def execute(spec: dict[str, Any]) -> int:
    """Run one claimed flow run under its id; the exit status says how it ended."""
    from prefect_like.engine.flow_engine import run_as
    from prefect_like.engine.signals import exit_status, one_line

    try:
        flow = load_entrypoint(spec["entrypoint"])
        runner = task_runner_for(spec.get("runner"), spec.get("address"))
        if runner is not None:
            flow = flow.with_options(task_runner=runner)
    except Exception as exc:
        print(f"Error: cannot load the flow {spec['entrypoint']}: {type(exc).__name__}: {exc}", flush=True)
        return 2
    if spec.get("deployment"):
        from prefect_like.runtime import deployment

        deployment.started_by(spec["id"], spec["deployment"], spec["parameters"])
    try:
        with run_as(spec["id"]):
            state = flow(**spec["parameters"], return_state=True)
            if inspect.iscoroutine(state):
                state = asyncio.run(state)
    except KeyboardInterrupt as exc:
        print(one_line(exc) or "Interrupted", flush=True)
        return exit_status(exc)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(execute(json.loads(sys.argv[1])))
