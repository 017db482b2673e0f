"""The sweep view's API: a real sweep run by the framework, read back as columns and aggregates.

The flow runs in this process into a fresh PREFECT_LIKE_HOME (the embedded store); the app
reads the same file, in-process. The browser side is in ``test_sweep_view_e2e.py``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from prefect_like import flow, sweep, task
from prefect_like.server import create_app, sweep_plots, sweep_view
from prefect_like.tracking.store import Store
from tests.server._procs import adopt_embedded_store

RNG = random.Random(3)
POINTS = [
    {"lr": 10 ** RNG.uniform(-3, 0), "kernel": RNG.choice(["rbf", "linear", "poly"]), "depth": RNG.randint(0, 6)}
    for _ in range(40)
]


@task
def trial(lr: float, kernel: str, depth: int) -> dict[str, float]:
    if depth == 0:
        raise ValueError("depth must be positive")
    loss = abs(math.log10(lr) + 1.5) + (0.5 if kernel == "poly" else 0.0) + 0.01 * depth
    return {"loss": round(loss, 6), "accuracy": round(1 / (1 + loss), 6)}


@flow(task_runner="thread")
def search(points: list[dict[str, Any]]) -> int:
    futures = [trial.submit(**p) for p in points]
    for future in futures:
        future.wait()
    return sum(future.state.is_completed() for future in futures)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, database: str) -> Path:
    home = tmp_path_factory.mktemp("sweep-view")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(home))
        mp.delenv("PREFECT_LIKE_API_URL", raising=False)
        completed = search(POINTS)
    assert completed == sum(p["depth"] > 0 for p in POINTS)
    return home


@pytest.fixture(scope="module")
def trials(home: Path) -> list[dict[str, Any]]:
    """The trials as the store holds them, in submission order."""
    with Store(home / "prefect_like.db") as store:
        (run,) = store.list_flow_runs(flow_name="search")
        return list(store.iter_task_runs(run["id"]))


def app_over(home: Path) -> Any:
    """The app over what the flows wrote into ``home`` (copied first into PostgreSQL, on the
    PostgreSQL variant of the server tests)."""
    adopt_embedded_store(home, os.environ.get("PREFECT_LIKE_DATABASE_URL"))
    return create_app(home)


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(app_over(home)) as c:
        yield c


@pytest.fixture(scope="module")
def base(trials: list[dict[str, Any]]) -> str:
    return f"/api/dashboard/flow-runs/{trials[0]['flow_run_id']}/sweep"


def losses(trials: list[dict[str, Any]]) -> list[float]:
    return [t["result"]["loss"] for t in trials if t["state"] == "COMPLETED"]


def test_one_column_per_parameter_and_result_field_with_its_type(client: TestClient, base: str) -> None:
    body = client.get(base).json()
    columns = {c["name"]: c for c in body["columns"]}
    assert list(columns) == ["param.depth", "param.kernel", "param.lr", "result.accuracy", "result.loss"]
    assert columns["param.kernel"]["type"] == "category"
    assert columns["param.kernel"]["categories"] == sorted({p["kernel"] for p in POINTS})
    assert columns["param.lr"]["type"] == "number"
    assert columns["param.lr"]["log"] is True  # 0.001 to 1: a log-uniform dimension
    assert columns["param.depth"]["log"] is False
    assert (body["total"], body["matching"]) == (len(POINTS), len(POINTS))
    assert body["task"] == "trial" and body["tasks"] == {"trial": len(POINTS)}
    assert body["live"] is False


def test_the_loss_is_minimized_and_accuracy_maximized_unless_told(client: TestClient, base: str) -> None:
    assert (client.get(base).json()["metric"], client.get(base).json()["mode"]) == ("result.loss", "min")
    accuracy = client.get(base, params={"metric": "result.accuracy"}).json()
    assert accuracy["mode"] == "max"
    assert client.get(base, params={"metric": "result.accuracy", "mode": "min"}).json()["mode"] == "min"


def test_the_aggregates_agree_with_the_stored_trials(
    client: TestClient, base: str, trials: list[dict[str, Any]]
) -> None:
    body = client.get(base, params={"bins": 8}).json()
    # Every trial is a point (40 < the sample size); failed ones have no loss.
    assert body["points"]["ids"] == [t["id"] for t in trials]
    assert body["points"]["values"]["result.loss"] == [
        t["result"]["loss"] if t["result"] else None for t in trials
    ]
    assert sum(body["histogram"]["counts"]) == len(losses(trials))
    assert len(body["histogram"]["counts"]) == 8
    # Best so far: strictly improving, ending at the best loss, at the last trial.
    steps = body["best"]
    values = [s["value"] for s in steps]
    assert values == sorted(values, reverse=True) and values[-1] == min(losses(trials))
    assert steps[-1]["trial"] == len(trials) - 1
    first = next(t for t in trials if t["state"] == "COMPLETED")
    assert steps[0]["id"] == first["id"]
    # The loss is made from lr and kernel; depth adds almost nothing.
    scores = {i["name"]: i["score"] for i in body["importance"]}
    assert set(scores) == {"param.depth", "param.kernel", "param.lr"}
    assert scores["param.lr"] > scores["param.depth"]
    assert scores["param.kernel"] > scores["param.depth"]


def test_filters_narrow_the_plots_and_the_table_alike(
    client: TestClient, base: str, trials: list[dict[str, Any]]
) -> None:
    filters = [{"column": "param.lr", "min": 0.01, "max": 0.3}, {"column": "param.kernel", "in": ["rbf", "poly"]}]
    expected = [
        t["id"] for t in trials
        if 0.01 <= t["parameters"]["lr"] <= 0.3 and t["parameters"]["kernel"] in ("rbf", "poly")
    ]
    assert 0 < len(expected) < len(trials)
    text = orjson.dumps(filters).decode()
    body = client.get(base, params={"filters": text}).json()
    assert body["matching"] == len(expected) and body["points"]["ids"] == expected
    page = client.get(f"{base}/trials", params={"filters": text, "limit": 100}).json()
    assert (page["total"], page["matching"]) == (len(trials), len(expected))
    assert [r["id"] for r in page["rows"]] == expected


def test_a_where_expression_narrows_the_trials_before_the_filters(
    client: TestClient, base: str, trials: list[dict[str, Any]]
) -> None:
    where = 'param.kernel == "rbf" and result.loss < 1'
    expected = [
        t["id"] for t in trials
        if t["parameters"]["kernel"] == "rbf" and t["result"] and t["result"]["loss"] < 1
    ]
    assert 0 < len(expected) < len(trials)
    body = client.get(base, params={"where": where}).json()
    assert body["points"]["ids"] == expected
    page = client.get(f"{base}/trials", params={"where": where, "limit": 100}).json()
    assert [r["id"] for r in page["rows"]] == expected
    both = {"where": where, "filters": '[{"column": "param.depth", "min": 3}]'}
    narrowed = client.get(f"{base}/trials", params={**both, "limit": 100}).json()
    assert [r["id"] for r in narrowed["rows"]] == [
        t["id"] for t in trials if t["id"] in expected and t["parameters"]["depth"] >= 3
    ]


def test_the_table_sorts_by_a_parameter_or_a_result_with_missing_values_last(
    client: TestClient, base: str, trials: list[dict[str, Any]]
) -> None:
    page = client.get(f"{base}/trials", params={"order_by": "param.lr", "limit": 100}).json()
    assert [r["values"]["param.lr"] for r in page["rows"]] == sorted(t["parameters"]["lr"] for t in trials)
    worst = client.get(f"{base}/trials", params={"order_by": "-result.loss", "limit": 100}).json()["rows"]
    shown = [r["values"]["result.loss"] for r in worst]
    assert shown[: len(losses(trials))] == sorted(losses(trials), reverse=True)
    assert shown[len(losses(trials)):] == [None] * (len(trials) - len(losses(trials)))
    second = client.get(f"{base}/trials", params={"order_by": "param.lr", "limit": 5, "offset": 5}).json()
    assert [r["id"] for r in second["rows"]] == [r["id"] for r in page["rows"][5:10]]


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("", {"metric": "result.acuracy"}, "unknown column 'result.acuracy'; the columns are param.depth"),
        ("", {"metric": "param.kernel"}, "param.kernel is not numeric"),
        ("", {"task": "nope"}, "has no runs of task 'nope'; its tasks are trial"),
        ("", {"filters": "{not json"}, "filters must be a JSON list"),
        ("", {"filters": '[{"column": "param.kernel", "min": 1}]'}, "holds categories"),
        ("", {"filters": '[{"column": "param.lr", "min": "0.1"}]'}, "min must be a finite number"),
        ("", {"filters": '[{"column": "param.lr"}]'}, "give min, max or in"),
        ("", {"filters": '[{"column": "param.lr", "max": 1, "where": "1=1"}]'}, "unknown filter field(s) where"),
        ("/trials", {"order_by": "param.nope"}, "unknown column 'param.nope'"),
        ("", {"where": "param.kernal == 1"}, "the known ones are param.depth, param.kernel, param.lr"),
        ("/trials", {"where": "1; DROP TABLE task_runs"}, ""),
    ],
)
def test_a_bad_query_is_a_422_that_says_what_is_wrong(
    client: TestClient, base: str, path: str, params: dict[str, Any], says: str
) -> None:
    response = client.get(base + path, params=params)
    assert response.status_code == 422, response.text
    assert says in response.text


def test_an_unknown_flow_run_is_a_404(client: TestClient) -> None:
    assert client.get("/api/dashboard/flow-runs/0123456789abcdef/sweep").status_code == 404


# -- the pieces, on their own --------------------------------------------------------------------


def rows(values: list[tuple[dict[str, Any], Any]], first: int = 0) -> list[tuple[Any, ...]]:
    return [
        (f"id{i}", "COMPLETED", "Completed", 1.0, orjson.dumps(p).decode(), orjson.dumps(r).decode(),
         float(i), float(i), float(i) + 1)
        for i, (p, r) in enumerate(values, start=first)
    ]


def test_a_live_sweep_is_updated_from_the_rows_that_changed_only() -> None:
    before = sweep_view.Trials(rows([({"x": 1}, {"loss": 0.5}), ({"x": 2}, None)]))
    running = before.ids[1]
    changed = [
        (running, "COMPLETED", "Completed", 2.0, '{"x": 2}', '{"loss": 0.25, "note": "late"}', 1.0, 1.0, 3.0),
        *rows([({"x": 3, "y": "new"}, {"loss": 0.75})], first=2),
    ]
    after = before.updated(changed)
    assert after.ids == ["id0", "id1", "id2"] and after.state_names[1] == "Completed"
    assert after.columns["result.loss"].values == [0.5, 0.25, 0.75]
    assert after.columns["result.note"].values == [None, "late", None]
    assert after.columns["param.y"].values == [None, None, "new"]
    assert (after.created, after.touched) == (2.0, 3.0)
    # The trials a request was reading are left as they were.
    assert before.ids == ["id0", "id1"] and before.columns["result.loss"].values == [0.5, None]
    assert "result.note" not in before.columns


def test_a_growing_sweep_keeps_its_sampled_trials() -> None:
    # Plots of a live sweep must not flicker: the trials drawn at 5,000 are drawn at 7,000 too.
    before = set(sweep_plots.sample(list(range(5000)), 2000))
    after = set(sweep_plots.sample(list(range(7000)), 2000))
    assert len(before) <= 2000 and len(after) <= 2000 and len(before) >= 1000
    assert {i for i in after if i < 5000} <= before


def test_mixed_and_nested_results_become_columns_that_read_back() -> None:
    trials = sweep_view.Trials(rows([
        ({"x": 1, "opt": "adam"}, {"metrics": {"loss": 0.5}, "tag": [1, 2]}),
        ({"x": 2.5, "opt": True}, {"metrics": {"loss": 0.25}, "tag": "b"}),
        ({"x": None}, 7),  # a scalar result from another shape of trial
    ]))
    c = trials.columns
    assert list(c) == ["param.opt", "param.x", "result", "result.metrics.loss", "result.tag"]
    assert c["param.x"].numeric and c["param.x"].values == [1, 2.5, None]
    assert not c["param.opt"].numeric and c["param.opt"].values == ["adam", "true", None]
    assert c["result.tag"].values == ["[1,2]", "b", None]
    assert c["result"].values == [None, None, 7]
    assert c["result.metrics.loss"].values == [0.5, 0.25, None]


def test_importance_finds_the_parameter_the_metric_depends_on() -> None:
    rng = random.Random(0)
    values = []
    for _ in range(400):
        a, b = rng.uniform(0, 1), rng.uniform(0, 1)
        values.append(({"a": a, "b": b, "c": rng.choice(["x", "y"])}, {"loss": a * a + 0.01 * rng.random()}))
    trials = sweep_view.Trials(rows(values))
    scores = {i["name"]: i["score"] for i in sweep_plots.importance(trials, list(range(400)), trials.columns["result.loss"])}
    assert scores["param.a"] > 0.9
    assert scores["param.b"] < 0.1 and scores["param.c"] < 0.1


def test_a_log_metric_gets_log_bins() -> None:
    hist = sweep_plots.histogram([10.0 ** k for k in range(-4, 2)], 6, log=True)
    assert hist["log"] is True and hist["counts"] == [1] * 6
    assert math.isclose(hist["edges"][0], 1e-4) and math.isclose(hist["edges"][-1], 10.0)


# -- learning curves, from a real search that prunes ----------------------------------------


def objective(lr: float) -> dict[str, float]:
    loss = 1.0
    for step in range(8):
        loss = abs(lr - 0.3) + 1.0 / (step + 1)
        sweep.report(step=step, loss=loss, lr_seen=lr)
        if sweep.should_prune():
            raise sweep.TrialPruned()
    return {"loss": loss}


def run_pruned_search() -> Any:
    # Optuna's MedianPruner case: after three complete trials, a trial worse than their median
    # at the same step is stopped (optuna/optuna tests/pruners_tests/test_median.py).
    return sweep.optimize(
        objective, sweep.Space(lr=sweep.uniform(0, 1)), metric="loss", mode="min", n_trials=12,
        scheduler=sweep.MedianStopping(n_startup_trials=3), max_concurrent=1, seed=4,
        task_runner="sequential",
    )


@pytest.fixture(scope="module")
def search_home(tmp_path_factory: pytest.TempPathFactory, database: str) -> tuple[Path, Any]:
    home = tmp_path_factory.mktemp("sweep-view-search")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_LIKE_HOME", str(home))
        mp.delenv("PREFECT_LIKE_API_URL", raising=False)
        search = run_pruned_search()
    return home, search


def test_learning_curves_show_the_best_trials_and_every_pruned_one(search_home: tuple[Path, Any]) -> None:
    home, search = search_home
    pruned = [t for t in search.trials if t.state == "Pruned"]
    assert pruned, "the median rule stops some trials"
    with TestClient(app_over(home)) as client:
        body = client.get(
            f"/api/dashboard/flow-runs/{search.trials[0].flow_run_id}/sweep/curves", params={"limit": 50}
        ).json()
    assert body["name"] == "loss" and body["names"] == ["loss", "lr_seen"]
    curves = {c["id"]: c for c in body["curves"]}
    assert set(curves) == {t.task_run_id for t in search.trials}  # 12 < limit: every trial
    for trial in search.trials:
        curve = curves[trial.task_run_id]
        assert curve["pruned"] is (trial.state == "Pruned")
        steps = [p[0] for p in curve["points"]]
        assert steps == list(range(len(steps)))
        if trial.state == "Completed":
            assert len(steps) == 8 and curve["points"][-1][1] == pytest.approx(trial.value)
        else:
            assert len(steps) < 8  # stopped early


def test_with_few_curves_the_best_and_the_pruned_come_first(search_home: tuple[Path, Any]) -> None:
    home, search = search_home
    with TestClient(app_over(home)) as client:
        base = f"/api/dashboard/flow-runs/{search.trials[0].flow_run_id}/sweep/curves"
        body = client.get(base, params={"limit": 4}).json()
        bad = client.get(base, params={"name": "acuracy"})
    shown = {c["id"] for c in body["curves"]}
    best = sorted((t for t in search.trials if t.state == "Completed"), key=lambda t: t.value)
    assert len(shown) == 4
    assert {t.task_run_id for t in best[:2]} <= shown  # half the curves go to the best
    assert any(c["pruned"] for c in body["curves"])
    assert bad.status_code == 422 and "they reported loss, lr_seen" in bad.text


# -- a stored sweep: its first flow run and every resume ------------------------------------------


def distance(lr: float) -> dict[str, float]:
    return {"loss": abs(lr - 0.3)}


def test_a_stored_sweep_shows_the_trials_of_every_flow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LIKE_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_LIKE_API_URL", raising=False)
    space = sweep.Space(lr=sweep.uniform(0, 1))
    first = sweep.optimize(distance, space, n_trials=6, name="lr-search", seed=1, task_runner="sequential")
    resumed = sweep.optimize(distance, space, n_trials=10, name="lr-search", seed=1, task_runner="sequential",
                             resume=True)
    runs = {t.flow_run_id for t in resumed.trials}
    assert len(runs) == 2 and len(first.trials) == 6
    with TestClient(app_over(tmp_path)) as client:
        body = client.get("/api/dashboard/sweeps/lr-search/sweep").json()
        page = client.get("/api/dashboard/sweeps/lr-search/sweep/trials", params={"order_by": "result.loss"}).json()
        missing = client.get("/api/dashboard/sweeps/no-such-search/sweep")
    assert body["total"] == 10 and set(body["flow_run_ids"]) == runs
    assert body["flow_run_ids"][0] == first.trials[0].flow_run_id  # the first run, then the resume
    assert body["best"][-1]["value"] == pytest.approx(resumed.best.value)
    assert page["rows"][0]["id"] == resumed.best.task_run_id
    assert missing.status_code == 404 and "no sweep with id or name 'no-such-search'" in missing.text


class CountingReader:
    """A real store, counting the rows the sweep view reads from it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.read = 0

    def trial_rows(self, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        for row in self.store.trial_rows(*args, **kwargs):
            self.read += 1
            yield row

    def trial_columns(self, *args: Any, **kwargs: Any) -> Any:
        states, values = self.store.trial_columns(*args, **kwargs)
        self.read += values.size
        return states, values

    def sibling(self) -> None:
        return None  # every read through the counting methods above


def _picture(trials: sweep_view.Trials) -> dict[str, Any]:
    return {
        "ids": trials.ids, "states": list(zip(trials.state_types, trials.state_names, strict=True)),
        "durations": [None if d is None else round(d, 9) for d in trials.durations],
        "columns": {name: (c.numeric, c.values) for name, c in trials.columns.items()},
        "latest": (trials.created, trials.touched),
    }


def test_the_column_read_builds_the_trials_the_row_read_does(tmp_path: Path) -> None:
    # A big sweep's first read is one row of aggregates (``trial_columns``); what it builds
    # must be what reading row by row builds, on either backend, odd values included.
    from prefect_like.tracking import databases
    from tests.server._procs import sweep_events

    flow_id, events = sweep_events(40, fail=(3, 17))
    finals = {e.run_id: k for k, e in enumerate(events) if e.kind == "task" and e.seq == 2}
    odd = {5: {"parameters": {"lr": "adaptive", "depth": None}}, 8: {"result": {"m": {"loss": 1}}},
           9: {"result": "a text, with a comma"}, 11: {"parameters": None}, 12: {"result": None}}
    for i, change in odd.items():
        k = finals[f"{flow_id[:12]}-{i:07x}"]
        events[k] = events[k]._replace(data={**events[k].data, **change})
    k = finals[f"{flow_id[:12]}-{13:07x}"]
    events[k] = events[k]._replace(state_name="Completed, late")
    url = databases.resolve(os.environ.get("PREFECT_LIKE_DATABASE_URL"), tmp_path)
    with databases.open_store(url) as store:
        store.write(events)
        states, values = store.trial_columns(flow_id, "train")
        assert states is not None and len(states.ids) == values.size == 40
        assert (states, values) == (store.trial_states(flow_id, "train"), store.trial_values(flow_id, "train"))
        by_columns = sweep_view.Trials.from_columns([values], lambda: [states])
        by_rows = sweep_view.Trials(store.trial_rows(flow_id, "train"))
        assert by_columns is not None and _picture(by_columns) == _picture(by_rows)
        assert by_columns.columns["param.lr"].values[5] == "adaptive"
        assert by_columns.columns["result.m.loss"].values[8] == 1
        assert by_columns.columns["result"].values[9] == "a text, with a comma"
        assert by_columns.state_names[13] == "Completed, late"
        # The flow run has ended: the cache reads it as the store can best (on SQLite, the
        # states on a second connection beside the values), and builds the same trials.
        cached = sweep_view.TrialsCache().get(store, [store.get_flow_run(flow_id)], "train")
        assert _picture(cached) == _picture(by_rows)
        # A state name holding the separator the columns are joined by: read row by row.
        store.write([events[k]._replace(seq=3, state_name="Completed\x1flate")])
        assert store.trial_states(flow_id, "train") is None
        cached = sweep_view.TrialsCache().get(store, [store.get_flow_run(flow_id)], "train")
        assert cached.state_names[13] == "Completed\x1flate" and cached.size == 40


def test_a_live_flow_runs_columns_are_brought_up_to_date_by_an_incremental_query(tmp_path: Path) -> None:
    from tests.server._procs import sweep_events

    flow_id, events = sweep_events(200)
    final = events.pop()  # the flow run's COMPLETED: until it comes, the run is live
    tasks = [e for e in events if e[0] == "task"]
    # One trial a second (as a slow sweep makes them), each made, started and ended.
    tasks = [e._replace(timestamp=e.timestamp + j // 3) for j, e in enumerate(tasks)]
    cache = sweep_view.TrialsCache()
    with Store(tmp_path / "prefect_like.db") as store:
        store.write([e for e in events if e[0] != "task"] + tasks[: 3 * 150])
        reader = CountingReader(store)
        first = cache.get(reader, [store.get_flow_run(flow_id)], "train")
        assert (first.size, reader.read) == (150, 150)
        store.write(tasks[3 * 150:])  # 50 more trials, each made, started and ended
        reader.read = 0
        second = cache.get(reader, [store.get_flow_run(flow_id)], "train")
        assert second.size == 200 and reader.read < 60  # the new ones, not all 200 again
        assert second.columns["result.loss"].values == [
            e[8]["result"]["loss"] if "result" in e[8] else None for e in tasks if e[5] in ("COMPLETED", "FAILED")
        ]
        store.write([final])
        reader.read = 0
        third = cache.get(reader, [store.get_flow_run(flow_id)], "train")
        assert reader.read == 200 and third.size == 200  # ended: read whole once, to be exact
        reader.read = 0
        assert cache.get(reader, [store.get_flow_run(flow_id)], "train") is third and reader.read == 0


def test_an_answer_is_kept_for_its_question_until_the_sweep_changes(tmp_path: Path) -> None:
    # Answers are memoized per set of trials: asked again, a view is served as computed, but a
    # different question (filters, order) gets its own answer, and new trials a fresh one.
    from tests.server._procs import sweep_events

    flow_id, events = sweep_events(100)
    events.pop()  # no final event: the sweep is live
    tasks = [e for e in events if e[0] == "task"]
    base = f"/api/dashboard/flow-runs/{flow_id}/sweep"
    narrow = orjson.dumps([{"column": "param.depth", "max": 1}]).decode()

    def post(batch: list[Any]) -> None:
        body = orjson.dumps({"events": [list(e) for e in batch]})
        response = client.post("/api/events", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text

    with TestClient(create_app(tmp_path)) as client:
        post([e for e in events if e[0] != "task"] + tasks[: 3 * 60])
        first = client.get(base).json()
        assert first == client.get(base).json() and first["total"] == 60
        assert client.get(base, params={"filters": narrow}).json()["matching"] == 24
        by_loss = client.get(f"{base}/trials", params={"order_by": "result.loss", "limit": 1}).json()
        by_depth = client.get(f"{base}/trials", params={"order_by": "-param.depth", "limit": 1}).json()
        assert by_loss["rows"][0]["values"]["result.loss"] == min(
            e[8]["result"]["loss"] for e in tasks[: 3 * 60] if e[5] == "COMPLETED"
        )
        assert by_depth["rows"][0]["values"]["param.depth"] == 4
        post(tasks[3 * 60:])
        again = client.get(base).json()
        assert again["total"] == 100 and again["matching"] == 100
        assert client.get(base, params={"filters": narrow}).json()["matching"] == 40
        assert client.get(f"{base}/trials", params={"limit": 1}).json()["total"] == 100
