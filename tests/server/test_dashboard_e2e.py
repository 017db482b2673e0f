"""The dashboard end to end: a real server process, real headless Chromium, real flow runs.

The flows run in this process into a PREFECT_LIKE_HOME that the server reads (embedded mode
writes the SQLite file; the server reads the same file). Without chromium these tests skip,
except on CI (CI=true), where they fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefect_like import flow, get_run_logger, tags, task
from prefect_like.tracking.recorder import shutdown_recorder
from prefect_like.tracking.store import Store

from ._live import running_server

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=alert(1)>"
FLOW_NAME = "e2e-sweep"


@task
def train(lr: float, depth: int) -> dict[str, float]:
    get_run_logger().info("training lr=%s depth=%s", lr, depth)
    if depth == 0:
        raise ValueError(f"depth must be positive, got {depth}")
    return {"loss": round(lr * 10 / depth, 4), "accuracy": round(1 - lr / depth, 4)}


@task(name=XSS)
def evil(text: str) -> dict[str, str]:
    get_run_logger().info("log line %s", text)
    return {"note": text}


@flow(name="e2e-child")
def child(n: int) -> list[dict[str, float]]:
    return [train(0.1, depth) for depth in range(1, n + 1)]


@flow(name=FLOW_NAME, task_runner="thread")
def sweep(lrs: list[float], depths: list[int], note: str) -> list[Any]:
    trainings = train.map(lrs, depths)
    evil.submit(note).wait()
    child(2)
    return trainings  # three of them fail, so the flow run fails


@task
def wait_for(gate_file: str) -> str:
    gate = Path(gate_file)
    for _ in range(600):  # a task polling a file with a deadline, released by the test
        if gate.exists():
            return "released"
        threading.Event().wait(0.05)
    raise TimeoutError("the test never released the gate")


@flow(name="e2e-live")
def live_flow(gate_file: str) -> str:
    return wait_for(gate_file)


LRS = [0.1, 0.05, 0.02, 0.01] * 3
DEPTHS = [0, 2, 4, 8, 1, 0, 3, 6, 2, 5, 0, 7]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(home))
        mp.delenv("PREFECT_LIKE_API_URL", raising=False)
        with tags("lr-grid", XSS):  # the sweep and its subflow carry them
            state = sweep(LRS, DEPTHS, XSS, return_state=True)
    assert state.is_failed(), "three trainings raise, so the sweep fails"
    yield home


@pytest.fixture(scope="module")
def store(home: Path) -> Iterator[Store]:
    with Store(home / "prefect_like.db") as store:
        yield store


@pytest.fixture(scope="module")
def run(store: Store) -> dict[str, Any]:
    (run,) = store.list_flow_runs(flow_name=FLOW_NAME)
    return run


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    with running_server(home) as url:
        yield url



@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert errors == [], f"the page raised: {errors}"


def task_rows(page: Any) -> Any:
    return page.locator("[data-testid=task-runs] tbody tr")


def test_the_flow_runs_page_lists_the_failed_sweep(page: Any, run: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    row = page.locator("[data-testid=flow-runs] tbody tr", has_text=run["name"])
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Failed")
    expect(row).to_contain_text(FLOW_NAME)
    total = sum(run["task_runs"].values())
    expect(row.locator(".progress-text")).to_have_text(f"{total}/{total}")

    page.get_by_label("State", exact=True).select_option("COMPLETED")
    expect(page.locator("[data-testid=flow-runs] tbody tr", has_text=run["name"])).to_have_count(0)
    expect(page.locator("[data-testid=flow-runs] tbody tr", has_text="e2e-child")).to_have_count(1)


def test_flow_runs_show_their_tags_and_the_tag_filter_keeps_only_those_that_have_it(
    page: Any, run: dict[str, Any], store: Store
) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    row = page.locator("[data-testid=flow-runs] tbody tr", has_text=run["name"])
    expect(row.locator("[data-testid=flow-run-tags] .tag")).to_have_text(sorted(["lr-grid", XSS]))  # text, not HTML
    page.get_by_label("Tag", exact=True).select_option("lr-grid")
    rows = page.locator("[data-testid=flow-runs] tbody tr")
    expect(rows).to_have_count(store.count_flow_runs(tags=["lr-grid"]))
    expect(rows.filter(has_text="e2e-child")).to_have_count(1)
    expect(rows.filter(has_text="e2e-live")).to_have_count(0)
    assert "tag=lr-grid" in page.url  # the filter is in the link, to share or reload


def test_the_failed_filter_shows_exactly_the_failed_task_runs(
    page: Any, store: Store, run: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    failed = store.list_task_runs(run["id"], state="failed", limit=1000)
    assert 0 < len(failed) < sum(run["task_runs"].values())

    page.goto(f"/#/flow-runs/{run['id']}")
    expect(task_rows(page)).to_have_count(sum(run["task_runs"].values()))
    page.locator("[data-testid=state-counts] a", has_text="Failed").click()
    expect(task_rows(page)).to_have_count(len(failed))
    expect(page.get_by_test_id("task-total")).to_have_text(f"{len(failed)} task runs match")
    shown = task_rows(page).evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert sorted(shown) == sorted(t["id"] for t in failed)
    expect(task_rows(page).first).to_contain_text("ValueError: depth must be positive")


def test_sorting_by_a_result_field_is_done_by_the_server(
    page: Any, store: Store, run: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{run['id']}")
    expect(task_rows(page).first).to_be_visible()
    page.get_by_role("button", name="loss", exact=True).click()
    best = store.list_task_runs(run["id"], order_by="result.loss", limit=3)
    expect(task_rows(page).first).to_have_attribute("data-id", best[0]["id"])
    page.get_by_role("button", name="loss ▲").click()
    worst = store.list_task_runs(run["id"], order_by="-result.loss", limit=1)
    expect(task_rows(page).first).to_have_attribute("data-id", worst[0]["id"])


def test_a_failed_task_runs_traceback_history_and_logs_are_visible(
    page: Any, run: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{run['id']}?state=failed")
    expect(task_rows(page)).to_have_count(3)
    task_rows(page).first.get_by_role("link").click()
    traceback = page.locator(".traceback")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("ValueError: depth must be positive, got 0")
    expect(page.locator(".error-type")).to_have_text("ValueError")
    history = page.locator("section", has_text="State history")
    for name in ("Pending", "Running", "Failed"):
        expect(history.locator(".badge", has_text=name).first).to_be_visible()
    expect(page.locator("section", has_text="Logs")).to_contain_text("training lr=")


def test_user_text_renders_as_text_never_as_html(page: Any, run: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{run['id']}")
    # The task's name, in the task filter and in the table; the flow's parameter.
    page.get_by_label("Task", exact=True).select_option(XSS)
    expect(task_rows(page)).to_have_count(1)
    expect(task_rows(page).first.locator("td").nth(2)).to_have_text(XSS)  # the Task column
    expect(page.locator("table.kv")).to_contain_text(XSS)
    task_rows(page).first.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text(XSS)
    expect(page.locator("section", has_text="Logs")).to_contain_text(f"log line {XSS}")
    expect(page.locator("section", has_text="Result")).to_contain_text(XSS)
    assert page.locator("main img").count() == 0


def test_the_pages_update_live_while_a_run_is_in_progress(
    page: Any, home: Path, server: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
    if database == "postgres":  # the server's store is not the embedded file: send it the events
        shutdown_recorder()
        monkeypatch.setenv("PREFECT_LIKE_API_URL", server + "api")
    gate = home / "release-the-live-flow"
    worker = threading.Thread(target=live_flow, args=(str(gate),))
    worker.start()
    try:
        page.goto("/")
        row = page.locator("[data-testid=flow-runs] tbody tr", has_text="e2e-live")
        expect(row).to_contain_text("Running")
        row.get_by_role("link").click()
        expect(page.locator(".page-head .badge")).to_have_text("Running")
        gate.touch()
        expect(page.locator(".page-head .badge")).to_have_text("Completed")
        expect(task_rows(page).first).to_contain_text("Completed")
    finally:
        gate.touch()
        worker.join(30)
        shutdown_recorder()
