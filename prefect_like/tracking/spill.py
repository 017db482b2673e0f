"""Spill files: events the tracker could not take yet, kept on disk, and how they reach it later.

A Recorder's sender spills what it cannot deliver past its memory bound, what is still
undelivered when a flow's end stops waiting (``PREFECT_LIKE_FLUSH_TIMEOUT``), and what is left
when it stops. A ``SpillFile`` writes them under ``PREFECT_LIKE_HOME/spill/`` as
``events-<pid>-<recorder>-<n>.msgpack``: msgpack arrays of at most ``CHUNK`` events, appended
in the order the events were made and read back in that order. A write that fails (a file size
limit, a full disk) is cut off the file again, so no file ends in half a chunk; the chunk goes to
a new file, and one that fits nowhere is halved, down to one event. Only what no file could take
at all is reported back as not kept: the sender keeps it in memory or counts it lost.

A file whose process has ended is an orphan: the next run's HTTP sink, or ``prefect-like runs
flush``, claims it (an atomic rename to ``sending-<our pid>-...``, so two processes never send
the same file), delivers its batches, and deletes it. Ingestion is idempotent, so a file
delivered twice (a crash between sending and deleting) stores its events once. A file of a live
process is never touched while its SpillFile is open; its own process takes over the files of
SpillFiles it has released (a Recorder it stopped).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from prefect_like import settings
from prefect_like.tracking.events import Event

log = logging.getLogger("prefect_like.tracking")

CHUNK = 1_000  # events per msgpack array: a write that fails part-way loses no more than this
DELIVER_BATCH = 10_000  # events per write when a spill is delivered

_OWNER = re.compile(r"^(?:events|sending)-(\d+)-.*\.msgpack$")
_open: set[str] = set()  # name prefixes of this process's open SpillFiles
_numbers = itertools.count()


class _Writer(Protocol):
    def write(self, events: Sequence[Event]) -> None: ...


def spill_dir() -> Path:
    return settings.home() / "spill"


class _Chunk(NamedTuple):
    path: Path
    offset: int
    size: int
    events: int


class SpillFile:
    """One Recorder's spill: chunks of events appended in order across one or more files.

    Not thread-safe: its owner (the sender) serialises calls. ``append`` returns how many of the
    events (a prefix) were kept; the rest could not be written anywhere (``error`` says why).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or spill_dir()
        self.prefix = f"events-{os.getpid()}-{next(_numbers)}-{os.urandom(4).hex()}-"
        self.error: str | None = None  # why the last write failed, until one succeeds
        self.events = 0  # events kept here and not yet delivered
        self._chunks: list[_Chunk] = []
        self._fd: int | None = None
        self._path: Path | None = None
        self._files = 0
        _open.add(self.prefix)

    def files(self) -> list[Path]:
        """The files holding undelivered events, oldest first."""
        return list(dict.fromkeys(chunk.path for chunk in self._chunks))

    def append(self, events: Sequence[Event]) -> int:
        kept = 0
        for start in range(0, len(events), CHUNK):
            chunk = events[start : start + CHUNK]
            written = self._keep(chunk)
            kept += written
            if written < len(chunk):
                break
        return kept

    def _keep(self, chunk: Sequence[Event]) -> int:
        """Write one chunk, or as much of it as fits; how many of its events were written."""
        too_big = self._try_write(chunk)
        if too_big is None:
            return len(chunk)
        if not too_big or len(chunk) == 1:
            return 0
        half = len(chunk) // 2  # bigger than any file may grow (a file size limit): halves may fit
        head = self._keep(chunk[:half])
        return head if head < half else half + self._keep(chunk[half:])

    def _try_write(self, chunk: Sequence[Event]) -> bool | None:
        """None once written; else whether the chunk was too big for the file size limit."""
        import msgpack

        payload = msgpack.packb([list(e) for e in chunk], use_bin_type=True, default=str)
        for _ in range(2):
            try:
                self._write(payload, len(chunk))
                return None
            except OSError as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                too_big = exc.errno == errno.EFBIG
                if self._fd is None or os.fstat(self._fd).st_size == 0:
                    return too_big
                self._close_file()  # this file is full: the chunk goes to a new one
        return too_big

    def _write(self, payload: bytes, count: int) -> None:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"{self.prefix}{self._files}.msgpack"
            self._files += 1
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        assert self._path is not None
        offset = os.fstat(self._fd).st_size
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            os.ftruncate(self._fd, offset)  # never leave half a chunk behind
            raise
        self._chunks.append(_Chunk(self._path, offset, len(payload), count))
        self.events += count
        self.error = None

    def peek(self, limit: int = DELIVER_BATCH) -> tuple[list[Event], int]:
        """The oldest undelivered events, whole chunks up to ``limit`` events, and how many chunks."""
        import msgpack

        out: list[Event] = []
        taken = 0
        for chunk in self._chunks:
            if out and len(out) + chunk.events > limit:
                break
            with chunk.path.open("rb") as file:
                file.seek(chunk.offset)
                data = file.read(chunk.size)
            out.extend(
                Event(*item) for item in msgpack.unpackb(data, raw=False, strict_map_key=False)
            )
            taken += 1
        return out, taken

    def delivered(self, chunks: int) -> None:
        """The oldest ``chunks`` chunks are delivered: forget them, and delete files left empty."""
        done, self._chunks = self._chunks[:chunks], self._chunks[chunks:]
        self.events -= sum(chunk.events for chunk in done)
        still = {chunk.path for chunk in self._chunks}
        for path in dict.fromkeys(chunk.path for chunk in done):
            if path not in still:
                if path == self._path:
                    self._close_file()
                path.unlink(missing_ok=True)

    def discard(self) -> int:
        """Forget every undelivered event (their files cannot be read back); how many there were."""
        count = self.events
        self.delivered(len(self._chunks))
        return count

    def release(self) -> None:
        """Stop writing; what is undelivered stays on disk for a later run or ``runs flush``."""
        path = self._path
        self._close_file()
        if path is not None and path not in self.files():
            path.unlink(missing_ok=True)  # started, then nothing fit in it
        _open.discard(self.prefix)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._path = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def orphans(directory: Path | None = None) -> list[Path]:
    """Spill files no open SpillFile owns (their process ended, or released them), oldest first."""
    directory = directory or spill_dir()
    if not directory.is_dir():
        return []
    found: list[Path] = []
    me = os.getpid()
    for path in directory.iterdir():
        match = _OWNER.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == me:
            if not any(path.name.startswith(prefix) for prefix in _open):
                found.append(path)
        elif not _alive(pid):
            found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime if p.exists() else 0.0)


def claim(path: Path) -> Path | None:
    """Take a spill file for this process; None if another process took it first."""
    name = path.name
    owner = f"sending-{os.getpid()}-"
    if name.startswith(owner):
        return path
    if name.startswith("sending-"):
        name = name.split("-", 2)[2]  # a dead sender's claim: take it over
    target = path.with_name(owner + name)
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def count_events(paths: Sequence[Path]) -> int:
    """How many events these spill files hold (what a failed ``deliver`` leaves to send)."""
    return sum(len(batch) for path in paths if path.exists() for batch in _read_prefix(path))


def deliver(sink: _Writer, paths: Sequence[Path]) -> tuple[int, int]:
    """Send the batches of these spill files through ``sink``; ``(files, events)`` delivered.

    A file is deleted only once every batch in it was written; a failure raises, leaving the
    file claimed by this process (an orphan again once it ends).
    """
    files = events = 0
    for path in paths:
        claimed = claim(path)
        if claimed is None:
            continue
        try:
            batches = read_spill(claimed)
        except Exception as exc:  # a torn last write (the process was killed mid-spill)
            batches = _read_prefix(claimed)
            log.warning(
                "spill file %s is damaged at the end (%s); sending what is readable", claimed, exc
            )
        batch: list[Event] = []
        for chunk in batches:  # the chunks of a file, merged into fewer, bigger writes
            if batch and len(batch) + len(chunk) > DELIVER_BATCH:
                sink.write(batch)
                events += len(batch)
                batch = []
            batch.extend(chunk)
        if batch:
            sink.write(batch)
            events += len(batch)
        claimed.unlink(missing_ok=True)
        files += 1
    return files, events


def iter_spill(path: Path) -> Iterator[list[Event]]:
    """The batches in a spill file, as events, read one at a time."""
    import msgpack

    with path.open("rb") as file:
        for batch in msgpack.Unpacker(file, raw=False, strict_map_key=False):
            yield [Event(*item) for item in batch]


def read_spill(path: Path) -> list[list[Event]]:
    """The batches in a spill file, as events."""
    return list(iter_spill(path))


def _read_prefix(path: Path) -> list[list[Event]]:
    import msgpack

    batches: list[list[Event]] = []
    unpacker: Any = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(path.read_bytes())
    try:
        for batch in unpacker:
            batches.append([Event(*item) for item in batch])
    except Exception:
        pass
    return batches
