"""Prefect 3's ``prefect.testing.utilities.prefect_test_harness``: runs tracked in a store of
their own for the length of a block (a test session, say), then thrown away.

Prefect's harness starts a temporary API server and database; here the embedded store needs
no server, so the harness points ``PREFECT_LIKE_HOME`` at a temporary folder (and the runs
away from any ``PREFECT_LIKE_API_URL``), and puts both back after, the folder deleted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

_VARIABLES = ("PREFECT_LIKE_HOME", "PREFECT_LIKE_API_URL", "PREFECT_LIKE_API_KEY")


@contextlib.contextmanager
def prefect_test_harness(server_startup_timeout: int | None = 30) -> Iterator[None]:
    """Track every flow and task run of the block in a temporary store. Prefect's
    ``server_startup_timeout`` is accepted: there is no server to wait for.

    As a session fixture, as Prefect's docs use it::

        @pytest.fixture(autouse=True, scope="session")
        def prefect_test_fixture():
            with prefect_test_harness():
                yield
    """
    from prefect_like.tracking.recorder import shutdown_recorder

    saved = {name: os.environ.get(name) for name in _VARIABLES}
    with tempfile.TemporaryDirectory(prefix="prefect-like-test-") as home:
        os.environ["PREFECT_LIKE_HOME"] = home
        os.environ.pop("PREFECT_LIKE_API_URL", None)
        os.environ.pop("PREFECT_LIKE_API_KEY", None)
        try:
            yield
        finally:
            shutdown_recorder()  # the temporary store's writer ends before its folder goes
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


__all__ = ["prefect_test_harness"]
