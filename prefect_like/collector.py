"""The garbage collector, given a longer first generation while flow runs are live.

Every task run leaves objects the cyclic collector tracks: its future and final state (kept by
the caller), its call (until it runs) and its events (until the Recorder has written them,
a fraction of a second later). With CPython's default threshold of 700 new objects, a
200,000-task map triggers thousands of young collections, and the events that live just long
enough to be promoted make the collector re-scan the whole heap, the user's data included, a
dozen times. That was half of a trivial map's wall time.

So while at least one flow run is live, the first-generation threshold is raised to
``PREFECT_LIKE_GC_THRESHOLD`` (default 100,000; the other two are kept), and put back when the
last live flow run ends, unless something else changed it meanwhile. It is only ever raised:
a process that already collects less often keeps its own setting. ``0`` leaves the collector
alone. Reference counting still frees every object without cycles at once; only cyclic
garbage waits a little longer to be found.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

from prefect_like import settings

DEFAULT_THRESHOLD = 100_000

_lock = threading.Lock()
_live = 0
_saved: tuple[int, ...] | None = None  # the thresholds before the first live flow run
_ours: tuple[int, ...] | None = None  # what we set, to tell whether someone changed it since


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """Raise the first-generation threshold for the duration of a flow run (nestable)."""
    _enter()
    try:
        yield
    finally:
        _exit()


def _enter() -> None:
    global _live, _saved, _ours
    with _lock:
        _live += 1
        if _live > 1:
            return
        wanted = settings.int_setting("GC_THRESHOLD", DEFAULT_THRESHOLD)
        current = gc.get_threshold()
        if wanted <= 0 or current[0] == 0 or current[0] >= wanted:  # 0: automatic collection is off
            _saved = _ours = None
            return
        _saved = current
        _ours = (wanted, *current[1:])
        gc.set_threshold(*_ours)


def _exit() -> None:
    global _live, _saved, _ours
    with _lock:
        _live -= 1
        if _live > 0:
            return
        if _saved is not None and gc.get_threshold() == _ours:
            gc.set_threshold(*_saved)
        _saved = _ours = None
