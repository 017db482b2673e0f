"""The sweep view in real headless Chromium against a real server process and a real sweep.

The sweep runs in this process into a PREFECT_LIKE_HOME that the server reads. Without chromium
these tests skip, except on CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import pytest

from prefect_like import flow, task
from prefect_like.tracking.store import Store

from ._live import running_server

pytestmark = pytest.mark.slow

RNG = random.Random(11)
POINTS = [
    {"lr": 10 ** RNG.uniform(-3, 0), "kernel": RNG.choice(["rbf", "linear"]), "depth": RNG.randint(0, 5)}
    for _ in range(30)
]


@task
def fit(lr: float, kernel: str, depth: int) -> dict[str, float]:
    if depth == 0:
        raise ValueError("depth must be positive")
    return {"loss": round(abs(math.log10(lr) + 1.5) + (0.3 if kernel == "linear" else 0) + depth / 100, 6)}


@flow(name="grid-search", task_runner="thread")
def grid_search(points: list[dict[str, Any]]) -> None:
    for future in [fit.submit(**p) for p in points]:
        future.wait()


@task
def gated_fit(lr: float, gate_file: str) -> dict[str, float]:
    if lr == 0.5:  # the last trial waits until the test releases it
        gate = Path(gate_file)
        for _ in range(600):
            if gate.exists():
                break
            threading.Event().wait(0.05)
        else:
            raise TimeoutError("the test never released the gate")
    return {"loss": lr}


@flow(name="live-search", task_runner="thread")
def live_search(gate_file: str) -> None:
    for future in [gated_fit.submit(lr, gate_file) for lr in (0.1, 0.2, 0.3, 0.4, 0.5)]:
        future.wait()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("sweep-e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(home))
        mp.delenv("PREFECT_LIKE_API_URL", raising=False)
        grid_search(POINTS)
    yield home


@pytest.fixture(scope="module")
def trials(home: Path) -> list[dict[str, Any]]:
    with Store(home / "prefect_like.db") as store:
        (run,) = store.list_flow_runs(flow_name="grid-search")
        return list(store.iter_task_runs(run["id"]))


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    with running_server(home) as url:
        yield url



@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"the page raised: {errors}"


def completed(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t["state"] == "COMPLETED"]


def open_sweep(page: Any, trials: list[dict[str, Any]], query: str = "") -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{trials[0]['flow_run_id']}/sweep{query}")
    expect(page.get_by_test_id("trial-total")).to_contain_text("trials match")


def table_rows(page: Any) -> Any:
    return page.locator("[data-testid=trials] tbody tr[data-id]")


def test_the_flow_run_page_links_to_its_sweep_view(page: Any, trials: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    page.goto(f"/#/flow-runs/{trials[0]['flow_run_id']}")
    expect(page.locator("#task-runs .filters")).to_contain_text("All tasks")
    expect(page.locator("#task-runs .filters")).not_to_contain_text("null")  # once a stray "null" showed
    page.get_by_test_id("sweep-link").click()
    expect(page.locator("h1")).to_contain_text("Sweep:")
    expect(page.get_by_test_id("sweep-summary")).to_contain_text(f"{len(trials)} of {len(trials)} trials of fit")
    card = page.get_by_test_id("sweep-controls").locator("..")
    expect(card).not_to_contain_text("null")


def test_each_plot_draws_one_mark_per_trial_it_shows(page: Any, trials: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    open_sweep(page, trials)
    done = completed(trials)
    assert 0 < len(done) < len(trials)
    scatter = page.get_by_test_id("plot-scatter")
    expect(scatter.locator("figure")).to_have_count(3)  # depth, kernel, lr
    for k in range(3):
        expect(scatter.locator("figure").nth(k).locator("circle.mark")).to_have_count(len(done))
    # A failed trial has parameters but no loss: its line stops at the last parameter axis.
    expect(page.get_by_test_id("plot-parallel").locator("path.pc-line")).to_have_count(len(trials))
    expect(page.get_by_test_id("plot-histogram").locator("rect.hist-bar")).to_have_count(30)
    improvements, best = 0, math.inf
    for t in trials:
        if t["state"] == "COMPLETED" and t["result"]["loss"] < best:
            best, improvements = t["result"]["loss"], improvements + 1
    expect(page.get_by_test_id("plot-best").locator("circle.best-mark")).to_have_count(improvements)
    expect(page.get_by_test_id("plot-importance").locator("rect.imp-bar")).to_have_count(3)
    expect(table_rows(page)).to_have_count(len(trials))


def test_brushing_an_axis_filters_the_table(page: Any, trials: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    open_sweep(page, trials)
    axis = page.locator('.pc-hit[data-column="param.lr"]')
    box = axis.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.6, steps=4)
    page.mouse.up()
    expect(page.get_by_test_id("sweep-filters").locator(".chip")).to_have_count(1)
    query = parse_qs(unquote(page.evaluate("location.hash")).split("?", 1)[1])
    (spec,) = json.loads(query["filters"][0])
    expected = [t["id"] for t in trials if spec["min"] <= t["parameters"]["lr"] <= spec["max"]]
    assert 0 < len(expected) < len(trials)
    expect(page.get_by_test_id("trial-total")).to_have_text(f"{len(expected)} of {len(trials)} trials match")
    expect(table_rows(page)).to_have_count(len(expected))
    assert sorted(table_rows(page).evaluate_all("rows => rows.map(r => r.dataset.id)")) == sorted(expected)
    expect(page.get_by_test_id("plot-parallel").locator("path.pc-line")).to_have_count(len(expected))
    # Removing the chip brings every trial back.
    page.get_by_role("button", name="remove the filter on param.lr").click()
    expect(table_rows(page)).to_have_count(len(trials))


def test_sorting_and_filtering_by_a_parameter(page: Any, trials: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    open_sweep(page, trials)
    page.locator("[data-testid=trials] thead").get_by_role("button", name="lr", exact=True).click()
    lowest = min(trials, key=lambda t: t["parameters"]["lr"])
    expect(table_rows(page).first).to_have_attribute("data-id", lowest["id"])
    page.locator("[data-testid=trials] thead").get_by_role("button", name="lr ▲").click()
    highest = max(trials, key=lambda t: t["parameters"]["lr"])
    expect(table_rows(page).first).to_have_attribute("data-id", highest["id"])

    form = page.get_by_test_id("filter-form")
    form.get_by_label("filter column").select_option("param.kernel")
    form.get_by_label("categories, comma-separated").fill("rbf")
    form.get_by_role("button", name="Add").click()
    rbf = [t for t in trials if t["parameters"]["kernel"] == "rbf"]
    expect(table_rows(page)).to_have_count(len(rbf))
    kernels = page.locator('[data-testid=trials] td[data-column="param.kernel"]').all_inner_texts()
    assert kernels == ["rbf"] * len(rbf)


def test_the_column_chooser_hides_a_column_and_a_reload_keeps_it_hidden(
    page: Any, trials: list[dict[str, Any]]
) -> None:
    # The hidden columns are part of the page's address, so a reload or a shared link shows
    # the same table.
    from playwright.sync_api import expect

    open_sweep(page, trials)
    depth = page.locator('[data-testid=trials] td[data-column="param.depth"]')
    expect(depth.first).to_be_visible()
    chooser = page.locator("details.column-chooser")
    chooser.locator("summary").click()
    chooser.get_by_label("depth").uncheck()
    expect(depth).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("trial-total")).to_contain_text("trials match")
    expect(page.locator('[data-testid=trials] td[data-column="param.lr"]').first).to_be_visible()
    expect(depth).to_have_count(0)


def test_a_column_is_sorted_from_the_keyboard(page: Any, trials: list[dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    open_sweep(page, trials)
    page.locator("[data-testid=trials] thead").get_by_role("button", name="lr", exact=True).focus()
    page.keyboard.press("Enter")
    lowest = min(trials, key=lambda t: t["parameters"]["lr"])
    expect(table_rows(page).first).to_have_attribute("data-id", lowest["id"])
    page.locator("[data-testid=trials] thead").get_by_role("button", name="lr ▲").focus()
    page.keyboard.press("Space")
    highest = max(trials, key=lambda t: t["parameters"]["lr"])
    expect(table_rows(page).first).to_have_attribute("data-id", highest["id"])


def test_a_trials_parameters_can_be_copied_as_json(page: Any, trials: list[dict[str, Any]]) -> None:
    open_sweep(page, trials, "?order=trial")
    first = table_rows(page).first
    copied = json.loads(first.get_by_role("button", name="copy parameters").get_attribute("data-parameters"))
    assert copied == trials[0]["parameters"]


@pytest.mark.backends("sqlite", reason="the flow writes the embedded store while the server reads the same file")
def test_the_plots_update_live_while_the_sweep_runs(
    page: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
    gate = home / "release-the-last-trial"
    worker = threading.Thread(target=live_search, args=(str(gate),))
    worker.start()
    try:
        with Store(home / "prefect_like.db") as store:
            for _ in range(600):  # the flow run exists once its first batch is stored
                runs = store.list_flow_runs(flow_name="live-search")
                if runs and store.task_run_counts(runs[0]["id"]).get("Completed", 0) == 4:
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the live sweep never stored its first four trials")
        page.goto(f"/#/flow-runs/{runs[0]['id']}/sweep")
        lr_plot = page.get_by_test_id("plot-scatter").locator("figure", has_text="against lr")
        marks = lr_plot.locator("circle.mark")
        expect(marks).to_have_count(4)
        expect(page.get_by_test_id("sweep-summary")).to_contain_text("live")
        gate.touch()
        expect(marks).to_have_count(5, timeout=20_000)  # no reload: the view polls
        expect(page.get_by_test_id("sweep-summary")).not_to_contain_text("live", timeout=20_000)
    finally:
        gate.touch()
        worker.join(30)


def test_the_server_says_where_its_dashboard_is(page: Any, server: str, home: Path) -> None:
    from playwright.sync_api import expect

    printed = (home / "server.log").read_text()
    assert f"dashboard: {server}" in printed, printed
    page.goto(printed.split("dashboard: ", 1)[1].split()[0])
    expect(page.locator("[data-testid=flow-runs] tbody tr", has_text="grid-search")).to_have_count(1)


def test_a_keyed_server_asks_for_its_key_in_the_page_once(browser: Any, tmp_path: Path) -> None:
    # One documented behaviour (docs/guide/dashboard.md): a form in the page, never a browser
    # prompt; a refused key is asked for again; the key is kept for this site.
    from playwright.sync_api import expect

    key = "a-key-of-at-least-sixteen-characters"
    with running_server(tmp_path, api_key=key) as url:
        context = browser.new_context(base_url=url)
        context.set_default_timeout(10_000)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto("/")
        form = page.get_by_role("dialog", name="API key needed")
        expect(form).to_be_visible()
        form.get_by_label("API key").fill("not-the-key")
        form.get_by_role("button", name="Use this key").click()
        expect(form).to_contain_text("The server refused that key")
        form.get_by_label("API key").fill(key)
        form.get_by_role("button", name="Use this key").click()
        expect(form).to_have_count(0)
        expect(page.get_by_test_id("flow-runs")).to_be_visible()
        page.reload()
        expect(page.get_by_test_id("flow-runs")).to_be_visible()
        expect(page.get_by_role("dialog", name="API key needed")).to_have_count(0)
        assert dialogs == []
        context.close()


@pytest.mark.backends("sqlite", reason="the flow writes the embedded store while the server reads the same file")
def test_learning_curves_are_drawn_with_the_pruned_trials_marked(
    page: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    from tests.server.test_sweep_view import run_pruned_search

    monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
    search = run_pruned_search()
    pruned = sum(t.state == "Pruned" for t in search.trials)
    assert 0 < pruned < len(search.trials)
    page.goto(f"/#/flow-runs/{search.trials[0].flow_run_id}/sweep")
    curves = page.get_by_test_id("plot-curves")
    expect(curves.locator("path.curve")).to_have_count(len(search.trials))
    expect(curves.locator("path.curve-pruned")).to_have_count(pruned)
    expect(curves.locator("path.pruned-mark")).to_have_count(pruned)
    curves.get_by_label("Reported metric").select_option("lr_seen")
    expect(curves.locator("svg")).to_have_attribute("aria-label", "learning curves of lr_seen")


@pytest.mark.backends("sqlite", reason="the flow writes the embedded store while the server reads the same file")
def test_a_stored_sweep_is_one_view_over_its_first_run_and_its_resume(
    page: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    from prefect_like import sweep
    from tests.server.test_sweep_view import distance

    monkeypatch.setenv("PREFECT_LIKE_HOME", str(home))
    space = sweep.Space(lr=sweep.uniform(0, 1))
    sweep.optimize(distance, space, n_trials=5, name="e2e-search", seed=2, task_runner="sequential")
    sweep.optimize(distance, space, n_trials=8, name="e2e-search", seed=2, task_runner="sequential", resume=True)
    page.goto("/")
    page.get_by_role("link", name="Sweeps").click()
    page.locator("[data-testid=sweeps] tbody tr", has_text="e2e-search").get_by_role("link").click()
    expect(page.get_by_test_id("sweep-runs")).to_contain_text("first run")
    expect(page.get_by_test_id("sweep-runs")).to_contain_text("resume 1")
    expect(page.get_by_test_id("trial-total")).to_have_text("8 of 8 trials match")
    expect(page.get_by_test_id("plot-scatter").locator("circle.mark")).to_have_count(8)


CANCELLABLE = '''
import threading
from prefect_like import flow, task

@task
def slow(i: int) -> dict:
    threading.Event().wait(0.2 if i < 3 else 120)  # three quick trials, then one that waits
    return {"loss": i}

@flow(name="cancellable-search", task_runner="thread")
def search() -> None:
    for future in [slow.submit(i) for i in range(4)]:
        future.wait()

search()
'''


@pytest.mark.backends("sqlite", reason="cancellation requests are kept by the SQLite store only so far")
def test_a_running_sweep_is_cancelled_from_the_page(page: Any, server: str, tmp_path: Path) -> None:
    # The flow runs in its own process and sends its events to this server, as a flow started
    # from a terminal with PREFECT_LIKE_API_URL does; the page's button makes the same request
    # as `prefect-like runs cancel ID`.
    from playwright.sync_api import expect

    script = tmp_path / "cancellable.py"
    script.write_text(CANCELLABLE)
    env = {**os.environ, "PREFECT_LIKE_API_URL": f"{server}api", "PREFECT_LIKE_HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        run = None
        while run is None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the flow run never reached the server"
            runs = httpx.get(f"{server}api/flow-runs", params={"flow_name": "cancellable-search"}).json()["items"]
            if runs and runs[0]["task_runs"].get("Completed", 0) == 3:
                run = runs[0]
            else:
                threading.Event().wait(0.1)
        page.goto(f"/#/flow-runs/{run['id']}/sweep")
        expect(page.get_by_test_id("plot-scatter").locator("circle.mark")).to_have_count(3)
        button = page.get_by_test_id("cancel-run")
        button.click()
        expect(button).to_have_text("Cancel it? (click again)")
        button.click()
        expect(page.get_by_test_id("cancel-status")).to_contain_text("Cancelling")
        expect(page.locator(".page-head .badge")).to_have_text("Cancelled", timeout=30_000)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0, output
        final = httpx.get(f"{server}api/flow-runs/{run['id']}").json()
        assert (final["state"], final["task_runs"].get("Completed")) == ("CANCELLED", 3), final
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
