"""Every server test runs twice: on the SQLite store (the default) and on PostgreSQL.

``database`` (module-scoped, parametrized ``sqlite``/``postgres``, autouse) sets
``PREFECT_LIKE_DATABASE_URL`` for the PostgreSQL variant: a fresh schema of the session's
throwaway cluster (``tests.pg``) for the module's own fixtures, and another for each test. A
server process or app made then (``ServerProcess``, ``running_server``, ``create_app``) uses
it; ``ServerProcess.store()`` opens the store a server uses, whichever it is.

A module-scoped fixture that makes a server or its data must take ``database`` as an argument,
so each backend gets its own (pytest otherwise keeps the first one for both).

A test marked ``@pytest.mark.backends("sqlite")`` runs on SQLite only; its marker says why
(it is about the SQLite file itself, or about flows writing the embedded store while a server
reads the same file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests import pg

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names, reason=...): the store backends a server test runs on"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = marker.args if marker is not None else BACKENDS
    metafunc.parametrize("database", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module's dashboard tests. Without chromium they skip,
    except on CI (CI=true), where they fail. Not wider: Playwright's sync API keeps an event
    loop running on the main thread while it is open, and tests elsewhere call asyncio.run."""
    from tests.server._live import chromium, chromium_path

    if chromium_path() is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; browser tests must run on CI")
        pytest.skip(reason)
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Cluster]:
    yield pg.cluster()
    pg.stop()


@pytest.fixture(scope="module", autouse=True)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend's name; with PostgreSQL, the module's URL is set for module fixtures."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("PREFECT_LIKE_DATABASE_URL", raising=False)
            yield name
        return
    cluster = request.getfixturevalue("postgres")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_DATABASE_URL", cluster.fresh())
        yield name


@pytest.fixture(autouse=True)
def database_per_test(database: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test's own PostgreSQL schema, as each has its own SQLite home."""
    if database == "postgres":
        monkeypatch.setenv("PREFECT_LIKE_DATABASE_URL", request.getfixturevalue("postgres").fresh())
    return database
