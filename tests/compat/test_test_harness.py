"""``prefect_test_harness``: a flow's runs tracked in a store of their own for the block.

Sources: Prefect's docs/v3/how-to-guides/workflows/test-workflows.mdx (the session fixture with
``prefect_test_harness()``, ``assert my_favorite_flow() == 42``) and
tests/testing/test_utilities.py::test_prefect_test_harness (the settings are put back after).
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect_like import flow, settings
from prefect_like.testing.utilities import prefect_test_harness
from prefect_like.tracking.store import Store


@flow
def my_favorite_flow():
    return 42


def test_runs_go_to_a_temporary_store_and_the_settings_come_back(prefect_like_home, monkeypatch):
    monkeypatch.setenv("PREFECT_LIKE_API_URL", "http://127.0.0.1:9/never-used")
    with prefect_test_harness():
        home = settings.home()
        assert home != prefect_like_home and os.environ.get("PREFECT_LIKE_API_URL") is None
        state = my_favorite_flow(return_state=True)
        assert state.result() == 42
        with Store(settings.database_path()) as store:
            assert store.get_flow_run(state.run_id)["state_name"] == "Completed"
    assert not Path(home).exists()  # thrown away with its runs
    assert settings.home() == prefect_like_home
    assert os.environ["PREFECT_LIKE_API_URL"] == "http://127.0.0.1:9/never-used"
