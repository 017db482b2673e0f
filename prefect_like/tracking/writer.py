"""The embedded store's writer process: big batches are folded and written off the flow's GIL.

Folding a batch into rows and binding them to SQLite is Python work; done by the Recorder thread
it competes for the GIL with the very threads running the tasks. So when a batch is large (a big
sweep is under way), the sink starts one child process, ``python -m prefect_like.tracking.writer
PATH``, and from then on hands it every batch: the flow process pays only for packing the batch
with msgpack (C code), and the fold and the SQLite work run on another core.

Small batches (a few task runs, the usual test or notebook flow) are written in-process and no
child is ever started. There is still one writer at a time, batches are stored in order, and the
Recorder's ``flush`` calls ``StoreWriter.flush``, which returns when every batch is acknowledged.
A child that dies or fails a batch does not lose it: the batch is written again in-process, and
the next big batch starts a new child. The child ignores Ctrl-C (it belongs to the flow's process group):
it writes what it was given and exits when the flow process closes its pipe, or dies.

Wire: each batch is a 4-byte big-endian length and a msgpack array of events; the child answers
one line, ``ok`` or ``error <message>``.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from prefect_like import settings
from prefect_like.tracking.events import Event

_HEADER = struct.Struct(">I")


class StoreWriter:
    """A sink for the embedded store: in-process for small batches, a writer process for big ones.

    With the writer process, one batch may be in flight: ``write`` sends a batch and returns, and
    the next ``write`` (or ``flush``) first waits for the previous batch's acknowledgement, so the
    Recorder prepares batch k+1 while the child stores batch k. A batch stays here until it is
    acknowledged; if the child fails, it is written again (by a new child, or in-process), so a
    batch handed to ``write`` is never lost while this process lives.
    """

    def __init__(self, path: str | Path, threshold: int | None = None) -> None:
        self.path = Path(path)
        enabled = settings.int_setting("WRITER_PROCESS", 1) != 0
        self.threshold = (threshold or settings.int_setting("WRITER_PROCESS_THRESHOLD", 10_000)) if enabled else None
        self._store: Any = None
        self._child: subprocess.Popen[bytes] | None = None
        self._unacked: Sequence[Event] | None = None
        self._lock = threading.Lock()
        # Open (and if need be create) the database now, on the thread starting the flow run,
        # before task threads compete with the Recorder for the GIL.
        self._local()

    def write(self, events: Sequence[Event]) -> None:
        with self._lock:
            if not events:
                self._settle()
                return
            if self._child is None and (self.threshold is None or len(events) < self.threshold):
                self._local().write(events)
                return
            self._settle()
            self._send(events)

    def flush(self) -> None:
        """Return once every batch handed to ``write`` is stored."""
        with self._lock:
            self._settle()

    def _local(self) -> Any:
        if self._store is None:
            from prefect_like.tracking.store import Store

            self._store = Store(self.path)
        return self._store

    def _settle(self) -> None:
        """Wait for the batch in flight; if the child failed it, store it another way."""
        batch, self._unacked = self._unacked, None
        if batch is None:
            return
        problem = self._acknowledgement()
        if problem is None:
            return
        self._forget_child()
        try:
            self._local().write(batch)  # the store itself says what is wrong, if it still fails
        except Exception:
            self._unacked = batch  # kept for the next write or flush
            raise

    def _acknowledgement(self) -> str | None:
        child = self._child
        if child is None or child.stdout is None:
            return "the writer process is gone"
        try:
            answer = child.stdout.readline().decode(errors="replace").strip()
        except OSError as exc:
            return str(exc)
        if answer == "ok":
            return None
        return answer.removeprefix("error ").strip() or "the writer process stopped"

    def _send(self, events: Sequence[Event]) -> None:
        import msgpack

        payload = msgpack.packb(events, use_bin_type=True, default=str)
        self._unacked = events
        child = self._child or self._start()
        assert child.stdin is not None
        with contextlib.suppress(OSError):  # noticed when no acknowledgement comes; the batch is still here
            _write_all(child.stdin, _HEADER.pack(len(payload)) + payload)

    def _start(self) -> subprocess.Popen[bytes]:
        if self._store is not None:  # one writer: the child takes over from here
            self._store.close()
            self._store = None
        self._child = subprocess.Popen(
            [sys.executable, "-m", "prefect_like.tracking.writer", str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        return self._child

    def _forget_child(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def close(self) -> None:
        with self._lock:
            try:
                self._settle()
            finally:
                child, self._child = self._child, None
                if self._store is not None:
                    self._store.close()
                    self._store = None
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()  # the child has stored everything (settled above) and exits
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


def _write_all(stream: IO[bytes], data: bytes) -> None:
    """Write all of ``data`` to an unbuffered pipe: a raw write may take only part of it (a
    signal arriving mid-write, e.g. SIGTERM or a profiler attaching), and a batch cut short
    would leave the child waiting for bytes that never come."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        view = view[written or 0 :]


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(path: str) -> None:
    """The child: read batches from stdin, store each, answer on stdout, until stdin closes."""
    import msgpack

    from prefect_like.tracking.store import Store

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    with Store(path) as store:
        while (header := _read_exactly(stdin, _HEADER.size)) is not None:
            payload = _read_exactly(stdin, _HEADER.unpack(header)[0])
            if payload is None:
                return
            try:
                store.write(msgpack.unpackb(payload, use_list=False, raw=False, strict_map_key=False))
                answer = b"ok\n"
            except Exception as exc:  # told to the flow process, which keeps the batch
                answer = f"error {type(exc).__name__}: {exc}".replace("\n", " ").encode() + b"\n"
            try:
                stdout.write(answer)
                stdout.flush()
            except BrokenPipeError:  # the flow process is gone: what it sent is stored
                return


if __name__ == "__main__":
    serve(sys.argv[1])
