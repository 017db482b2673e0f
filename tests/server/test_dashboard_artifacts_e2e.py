"""The dashboard's artifacts and tag filter end to end: a real server process (on SQLite and on
PostgreSQL), real headless Chromium, a real flow run sent to it over HTTP that publishes every
kind of artifact (hostile text included) and tags some of its task runs.

Without chromium these tests skip, except on CI (CI=true), where they fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_like import flow, task
from prefect_like.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ._live import running_server

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=alert(1)>"
MARKDOWN = f"""# Sweep report

**best** loss was `0.25`, see [the docs](https://docs.example.com/a?b=1) or
[this](javascript:alert(2)).

- first {XSS}
- second

| lr | loss |
|----|------|
| 0.1 | 0.25 |
"""


@task(tags=["gpu"])
def train(lr: float) -> float:
    create_table_artifact([{"lr": lr, "loss": round(lr * 2.5, 4)}], key="trial-table",
                          description="one **trial**")
    return lr


@task
def prepare(n: int) -> int:
    return n


@flow(name="e2e-artifacts", task_runner="thread")
def sweep() -> None:
    progress = create_progress_artifact(10, key="sweep-progress")
    prepare.map(range(3)).wait()
    train.map([0.1, 0.2, 0.3, 0.4]).wait()
    create_markdown_artifact(MARKDOWN, key="report")
    create_link_artifact("https://example.com/results", link_text="all results", key="results-link")
    create_link_artifact("javascript:alert(3)", link_text="not a link", key="bad-link")
    update_progress_artifact(progress, 75)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[str]:
    """The server, and the flow run sent to it over HTTP (so it is stored in the server's
    database, SQLite or PostgreSQL)."""
    home = tmp_path_factory.mktemp("artifacts-dashboard")
    with running_server(home) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(home / "client"))
        mp.setenv("PREFECT_LIKE_API_URL", url + "api")
        sweep()
        yield url


@pytest.fixture(scope="module")
def run(server: str) -> dict[str, Any]:
    api = server + "api"
    (run,) = httpx.get(f"{api}/flow-runs", params={"flow_name": "e2e-artifacts"}).json()["items"]
    tagged = httpx.get(f"{api}/flow-runs/{run['id']}/task-runs", params={"tags": "gpu"}).json()["items"]
    run["tagged"] = [t["id"] for t in tagged]
    return run


@pytest.fixture(scope="module")
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


def artifact(page: Any, key: str) -> Any:
    return page.locator(f"[data-testid=artifacts] article[data-key={key}]")


def test_the_flow_run_page_shows_each_kind_of_artifact(page: Any, run: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{run['id']}")
    expect(page.locator("[data-testid=artifacts] article")).to_have_count(8)  # 4 tables, a progress bar, markdown, 2 links

    table = artifact(page, "trial-table").first
    expect(table.locator("th")).to_have_text(["lr", "loss"])
    expect(table.locator(".artifact-description strong")).to_have_text("trial")
    cells = artifact(page, "trial-table").locator("td").all_inner_texts()
    assert sorted(cells[1::2]) == ["0.25", "0.5", "0.75", "1"]

    report = artifact(page, "report").locator(".markdown")
    expect(report.locator("h3")).to_have_text("Sweep report")
    expect(report.locator("strong")).to_have_text("best")
    expect(report.locator("code")).to_have_text("0.25")
    expect(report.locator("table td").nth(1)).to_have_text("0.25")
    docs = report.get_by_role("link", name="the docs")
    expect(docs).to_have_attribute("href", "https://docs.example.com/a?b=1")
    expect(report.get_by_role("link")).to_have_count(1)  # the javascript: one is text
    expect(report).to_contain_text("or this")
    expect(report.locator("li").first).to_have_text(f"first {XSS}")  # text, not an image
    expect(page.locator("img")).to_have_count(0)

    good = artifact(page, "results-link").get_by_role("link", name="all results")
    expect(good).to_have_attribute("href", "https://example.com/results")
    expect(good).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(artifact(page, "bad-link").get_by_role("link")).to_have_count(0)
    expect(artifact(page, "bad-link")).to_contain_text("not a link")

    bar = artifact(page, "sweep-progress").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "75")
    expect(artifact(page, "sweep-progress")).to_contain_text("75%")


def test_the_task_run_page_shows_its_own_artifact_only(page: Any, run: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/task-runs/{run['tagged'][0]}")
    expect(page.locator("[data-testid=artifacts] article")).to_have_count(1)
    expect(artifact(page, "trial-table").locator("th")).to_have_text(["lr", "loss"])


def test_the_tag_filter_shows_only_the_tagged_task_runs(page: Any, run: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    rows = page.locator("[data-testid=task-runs] tbody tr")
    page.goto(f"/#/flow-runs/{run['id']}")
    expect(rows).to_have_count(7)
    page.get_by_label("Tag", exact=True).select_option("gpu")
    expect(rows).to_have_count(4)
    expect(page.get_by_test_id("task-total")).to_have_text("4 task runs match")
    shown = rows.evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert sorted(shown) == sorted(run["tagged"])
    assert "tag=gpu" in page.url
    page.get_by_label("Tag", exact=True).select_option("")
    expect(rows).to_have_count(7)


def _wait_for(gate: Path) -> None:
    for _ in range(1200):  # polling a file with a deadline, released by the test
        if gate.exists():
            return
        threading.Event().wait(0.05)
    raise TimeoutError(f"the test never made {gate}")


@flow(name="e2e-live-progress")
def live_progress(folder: str) -> None:
    progress = create_progress_artifact(10, key="live-progress")
    _wait_for(Path(folder) / "one")
    update_progress_artifact(progress, 90)
    _wait_for(Path(folder) / "two")


def test_a_live_flow_runs_progress_bar_moves_on_the_page(page: Any, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    done: list[Any] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(tmp_path / "client"))
        mp.setenv("PREFECT_LIKE_API_URL", server + "api")
        worker = threading.Thread(target=lambda: done.append(live_progress(str(tmp_path))), daemon=True)
        worker.start()
        try:
            api = server + "api"
            for _ in range(600):  # until the server has the flow run
                found = httpx.get(f"{api}/flow-runs", params={"flow_name": "e2e-live-progress"}).json()["items"]
                if found:
                    break
                threading.Event().wait(0.05)
            page.goto(f"/#/flow-runs/{found[0]['id']}")
            bar = artifact(page, "live-progress").get_by_role("progressbar")
            expect(bar).to_have_attribute("aria-valuenow", "10", timeout=20_000)
            (tmp_path / "one").write_text("go")
            expect(bar).to_have_attribute("aria-valuenow", "90", timeout=20_000)  # the page polls
        finally:
            (tmp_path / "one").write_text("go")
            (tmp_path / "two").write_text("go")
            worker.join(60)
    assert done == [None]
