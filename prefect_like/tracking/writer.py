"""The embedded store's writer process: big batches are folded and written off the flow's GIL.

Folding a batch into rows and binding them to SQLite is Python work; done in the flow process
it competes for the GIL with the very threads running the tasks. So when a batch is large (a big
sweep is under way), the sink starts one child process, ``python -m prefect_like.tracking.writer
PATH``, and from then on hands it every batch: the flow process pays only for packing the batch
with msgpack (C code), and the fold and the SQLite work run on another core.

Small batches (a few task runs, the usual test or notebook flow) are written in-process and no
child is ever started. There is one writer at a time, and ``write`` returns once its batch is
stored, or raises: the Recorder's sender thread calls it, so a wait for the child (or for a
locked database) holds that thread, never the Recorder. A child that dies or fails a batch does
not lose it: the batch is written again in-process, and the next big batch starts a new child
(after a batch the store itself failed, only once a write succeeds again: a full disk is no
reason to start a process per retry). The child ignores Ctrl-C (it belongs to the flow's
process group): it writes what it was given and exits when the flow process closes its pipe, or
dies.

A store that cannot write says why: SQLite reports a full disk as "database or disk is full"
and a file size limit (``RLIMIT_FSIZE``, ``ulimit -f``) as "disk I/O error", so the error
names the likely cause it finds (``cause``): the limit and the file at it, or the free space.

Wire: each batch is a 4-byte big-endian length and a msgpack array of events; the child answers
one line, ``ok`` or ``error <message>``.
"""

from __future__ import annotations

import gc
import shutil
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
from prefect_like.tracking.events import Event, rows

_HEADER = struct.Struct(">I")
_IO_WORDS = ("disk", "I/O", "full", "open")  # SQLite's words for errors the OS caused


class StoreWriter:
    """A sink for the embedded store: in-process for small batches, a writer process for big ones."""

    def __init__(self, path: str | Path, threshold: int | None = None) -> None:
        self.path = Path(path)
        enabled = settings.int_setting("WRITER_PROCESS", 1) != 0
        self.threshold = (
            (threshold or settings.int_setting("WRITER_PROCESS_THRESHOLD", 10_000))
            if enabled
            else None
        )
        self._store: Any = None
        self._child: subprocess.Popen[bytes] | None = None
        self._failing = False  # the store failed the last batch: no child until one is stored
        self._lock = threading.Lock()
        # Open (and if need be create) the database now, on the thread starting the flow run,
        # before task threads compete with the Recorder for the GIL.
        self._local()

    def write(self, events: Sequence[Event]) -> None:
        """Store a batch, or raise ``TrackingError`` saying why not."""
        if not events:
            return
        with self._lock:
            try:
                small = self.threshold is None or (
                    len(events) < self.threshold and rows(events) < self.threshold
                )
                if (
                    (self._child is None and small)
                    or self._failing
                    or not self._through_child(events)
                ):
                    self._local().write(events)
            except TrackingError as exc:
                self._failing = True
                found = cause(self.path) if any(word in str(exc) for word in _IO_WORDS) else None
                if found is None:
                    raise
                raise TrackingError(f"{exc} ({found})") from exc
            self._failing = False

    def _local(self) -> Any:
        if self._store is None:
            self._forget_child()  # one writer: this process from here on
            from prefect_like.tracking.store import Store

            self._store = Store(self.path)
        return self._store

    def _through_child(self, events: Sequence[Event]) -> bool:
        """Store a batch through the writer process; False if it did not (it is gone then)."""
        import msgpack

        payload = msgpack.packb(events, use_bin_type=True, default=str)
        child = self._child or self._start()
        assert child.stdin is not None and child.stdout is not None
        try:
            _write_all(child.stdin, _HEADER.pack(len(payload)) + payload)
            answer = child.stdout.readline().decode(errors="replace").strip()
        except OSError:
            answer = ""
        if answer == "ok":
            return True
        self._forget_child()  # it died, or failed the batch: the store says why, in-process
        return False

    def _start(self) -> subprocess.Popen[bytes]:
        if self._store is not None:  # one writer: the child takes over from here
            self._store.close()
            self._store = None
        self._child = subprocess.Popen(
            [sys.executable, "-m", "prefect_like.tracking.writer", str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        return self._child

    def _forget_child(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
            if self._store is not None:
                self._store.close()
                self._store = None
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()  # every batch it took is acknowledged, so stored: it exits
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


def cause(path: Path) -> str | None:
    """The likely OS cause of the store at ``path`` failing to write: a file at this process's
    file size limit, or a full disk. None when neither is so."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        unlimited = limit == resource.RLIM_INFINITY
    except (ImportError, ValueError, OSError):  # no such limit on this platform
        unlimited = True
        limit = 0
    if not unlimited:
        sizes = {
            p.name: p.stat().st_size
            for p in (path, path.with_name(path.name + "-wal"))
            if p.exists()
        }
        name, size = max(sizes.items(), key=lambda item: item[1], default=("", 0))
        # A transaction writes many pages at once: it fails well before the file reaches the limit.
        if size * 2 >= limit:
            return (
                f"file size limit: {name} is {size:,} bytes and this process may not write a file past "
                f"{limit:,} bytes (RLIMIT_FSIZE, `ulimit -f`)"
            )
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    if free < 16 * 2**20:
        return f"disk full: {free:,} bytes free on the disk holding {path.parent}"
    return None


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
    # A batch's events and rows are freed by reference counting the moment it is stored, and
    # make no cycles; the cyclic collector would only rescan them, a third of this process's
    # time on a search reporting metrics. An error's traceback does make cycles: collected then.
    gc.disable()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    with Store(path) as store:
        while (header := _read_exactly(stdin, _HEADER.size)) is not None:
            payload = _read_exactly(stdin, _HEADER.unpack(header)[0])
            if payload is None:
                return
            try:
                store.write(
                    msgpack.unpackb(payload, use_list=False, raw=False, strict_map_key=False)
                )
                answer = b"ok\n"
            except Exception as exc:  # told to the flow process, which keeps the batch
                answer = f"error {type(exc).__name__}: {exc}".replace("\n", " ").encode() + b"\n"
            if not answer.startswith(b"ok"):
                gc.collect()
            try:
                stdout.write(answer)
                stdout.flush()
            except BrokenPipeError:  # the flow process is gone: what it sent is stored
                return


if __name__ == "__main__":
    serve(sys.argv[1])
