"""Every test gets its own PREFECT_LIKE_HOME, so runs, results and caches never leak between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def prefect_like_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
    monkeypatch.delenv("PREFECT_LIKE_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_LIKE_API_KEY", raising=False)
    return home


def pytest_report_header() -> str:
    return f"CI={os.environ.get('CI', '')!r}"
