"""Spill files left behind, and how they reach the tracker later.

The Recorder spills batches it could not deliver to ``PREFECT_LIKE_HOME/spill/events-<pid>-...``
(and, when it stops with batches still undelivered, writes those there too). A file whose
process has ended is an orphan: the next run's HTTP sink, or ``prefect-like runs flush``,
claims it (an atomic rename to ``sending-<our pid>-...``, so two processes never send the same
file), delivers its batches, and deletes it. Ingestion is idempotent, so a file delivered twice
(a crash between sending and deleting) stores its events once.

A file whose process is still running is never touched: its Recorder still owns it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from prefect_like import settings
from prefect_like.tracking.events import Event
from prefect_like.tracking.recorder import read_spill

log = logging.getLogger("prefect_like.tracking")

_OWNER = re.compile(r"^(?:events|sending)-(\d+)-.*\.msgpack$")


class _Writer(Protocol):
    def write(self, events: Sequence[Event]) -> None: ...


def spill_dir() -> Path:
    return settings.home() / "spill"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def orphans(directory: Path | None = None, *, own_except: Path | None = None) -> list[Path]:
    """Spill files whose process has ended, oldest first.

    ``own_except``: also take this process's own files (those of Recorders it has stopped),
    except the live Recorder's file, given here.
    """
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
            if own_except is not None and path != own_except:
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
            log.warning("spill file %s is damaged at the end (%s); sending what is readable", claimed, exc)
        for batch in batches:
            if batch:
                sink.write(batch)
                events += len(batch)
        claimed.unlink(missing_ok=True)
        files += 1
    return files, events


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
