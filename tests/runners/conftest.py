"""The runner tests share one Dask cluster and one Ray per session, closed when the session ends.

The conformance suite itself ships in ``prefect_like.testing``; ``test_conformance.py`` runs it
on every runner here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import engines


@pytest.fixture(scope="session", autouse=True)
def _session_resources() -> Iterator[None]:
    yield
    engines.end_session()
