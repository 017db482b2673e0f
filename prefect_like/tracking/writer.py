"""The embedded store's writer process: big batches are folded and written off the flow's GIL.

Folding a batch into rows and binding them to SQLite is Python work; done by the Recorder thread
it competes for the GIL with the very threads running the tasks. So when a batch is large (a big
sweep is under way), the sink starts one child process, ``python -m prefect_like.tracking.writer
PATH``, and from then on hands it every batch: the flow process pays only for packing the batch
with msgpack (C code), and the fold and the SQLite work run on another core.

Small batches (a few task runs, the usual test or notebook flow) are written in-process and no
child is ever started. There is still one writer at a time: ``write`` returns only when the
batch is stored (the child acknowledges it), so the Recorder's flush and ordering guarantees hold.
A child that dies makes ``write`` raise; the Recorder keeps the batch and retries it, and the next
``write`` starts a new child. The child ignores Ctrl-C (it belongs to the flow's process group):
it writes what it was given and exits when the flow process closes its pipe, or dies.

Wire: each batch is a 4-byte big-endian length and a msgpack array of events; the child answers
one line, ``ok`` or ``error <message>``.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from prefect_like import settings
from prefect_like.errors import TrackingError
from prefect_like.tracking.events import Event

_HEADER = struct.Struct(">I")


class StoreWriter:
    """A sink for the embedded store: in-process for small batches, a writer process for big ones."""

    def __init__(self, path: str | Path, threshold: int | None = None) -> None:
        self.path = Path(path)
        enabled = settings.int_setting("WRITER_PROCESS", 1) != 0
        self.threshold = (threshold or settings.int_setting("WRITER_PROCESS_THRESHOLD", 10_000)) if enabled else None
        self._store: Any = None
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def write(self, events: Sequence[Event]) -> None:
        with self._lock:
            if self._child is None and (self.threshold is None or len(events) < self.threshold):
                self._local().write(events)
                return
            self._send(events)

    def _local(self) -> Any:
        if self._store is None:
            from prefect_like.tracking.store import Store

            self._store = Store(self.path)
        return self._store

    def _send(self, events: Sequence[Event]) -> None:
        import msgpack

        child = self._child or self._start()
        payload = msgpack.packb(events, use_bin_type=True, default=str)
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(_HEADER.pack(len(payload)))
            child.stdin.write(payload)
            child.stdin.flush()
            answer = child.stdout.readline().decode(errors="replace").strip()
        except (BrokenPipeError, OSError) as exc:
            self._forget_child()
            raise TrackingError(f"the store's writer process stopped: {exc}") from exc
        if answer == "ok":
            return
        if not answer:
            self._forget_child()
            raise TrackingError("the store's writer process stopped before storing a batch")
        raise TrackingError(answer.removeprefix("error ").strip() or "the writer process failed")

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
            if self._store is not None:
                self._store.close()
                self._store = None
            child, self._child = self._child, None
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()  # the child finishes what it has and exits
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


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
            stdout.write(answer)
            stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
