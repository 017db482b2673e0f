"""The fixtures every conformance mixin needs, as methods of one base class.

A third party's ``class TestMyRunner(RunnerConformance)`` gets them by inheritance, so its only
fixture is ``runner``. Each test runs in a ``PREFECT_LIKE_HOME`` of its own under ``tmp_path``
and never talks to a tracking server, so runs, results and caches never leak between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


class _LazyStore:
    """The embedded tracking store, opened on first use (after the flow under test has run)."""

    def __init__(self) -> None:
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            from prefect_like import settings
            from prefect_like.tracking.store import Store

            self._store = Store(settings.database_path())
        return getattr(self._store, name)

    def close(self) -> None:
        if self._store is not None and hasattr(self._store, "close"):
            self._store.close()


class ConformanceFixtures:
    """``runner`` (to override), ``prefect_like_home`` (autouse), ``store`` and ``call_log``."""

    @pytest.fixture
    def runner(self) -> Callable[[], Any]:
        """A zero-arg factory of fresh instances of the runner under test; override it."""
        pytest.fail(
            f"{type(self).__name__} needs a `runner` fixture returning a zero-arg factory of "
            "fresh runners, e.g. `return lambda: MyTaskRunner(max_workers=2)`"
        )

    @pytest.fixture(autouse=True)
    def prefect_like_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
        monkeypatch.delenv("PREFECT_LIKE_API_URL", raising=False)
        monkeypatch.delenv("PREFECT_LIKE_API_KEY", raising=False)
        return home

    @pytest.fixture
    def store(self, prefect_like_home: Path) -> Iterator[Any]:
        """The tracking store of this test's PREFECT_LIKE_HOME; read it after a flow call returns."""
        lazy = _LazyStore()
        yield lazy
        lazy.close()

    @pytest.fixture
    def call_log(self, tmp_path: Path) -> str:
        """A file a task appends one line to per call (as a str, so it pickles anywhere)."""
        return str(tmp_path / "calls.log")
