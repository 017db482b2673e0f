"""The task-run filter language (tracking.where): what it matches in a real store, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_like import flow, task
from prefect_like.tracking import where
from prefect_like.tracking.store import Store


@task
def fit(kernel: str, C: float, scaled: bool = False) -> dict[str, float | bool]:
    if C == 100.0:
        raise ValueError("did not converge")
    return {"accuracy": 0.9 + C / 1000, "converged": C > 1}


@flow
def svm_grid() -> None:
    for kernel in ("rbf", "linear"):
        for C in (0.1, 1.0, 10.0, 100.0):
            fit.submit(kernel, C, scaled=kernel == "rbf")


@pytest.fixture
def runs(prefect_like_home: Path) -> tuple[Store, str]:
    state = svm_grid(return_state=True)
    store = Store(prefect_like_home / "prefect_like.db")
    yield store, state.run_id
    store.close()


def matching(store: Store, run_id: str, text: str, order_by: str | None = None) -> list[tuple[str, float]]:
    rows = store.list_task_runs(run_id, where_text=text, order_by=order_by)
    assert store.count_task_runs(run_id, where_text=text) == len(rows)
    return [(r["parameters"]["kernel"], r["parameters"]["C"]) for r in rows]


# -- what it matches ----------------------------------------------------------------------------


def test_the_issue_example_selects_by_parameter_and_result(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, 'param.kernel == "rbf" and result.accuracy > 0.905') == [("rbf", 10.0)]


def test_comparisons_or_not_and_parentheses(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, "param.C >= 10 and not (param.kernel == 'rbf')") == [
        ("linear", 10.0), ("linear", 100.0)]
    assert matching(store, run_id, "param.C < 0.5 or param.C > 50") == [
        ("rbf", 0.1), ("rbf", 100.0), ("linear", 0.1), ("linear", 100.0)]
    assert matching(store, run_id, 'param.kernel != "rbf" and param.C <= 1') == [("linear", 0.1), ("linear", 1.0)]


def test_in_lists_booleans_and_missing_results(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, "param.C in (0.1, 10) and param.scaled") == [("rbf", 0.1), ("rbf", 10.0)]
    assert matching(store, run_id, "param.C not in (0.1, 1, 10) ") == [("rbf", 100.0), ("linear", 100.0)]
    # A failed run has no result: it matches "is null" and no comparison.
    assert matching(store, run_id, "result.accuracy is null") == [("rbf", 100.0), ("linear", 100.0)]
    assert matching(store, run_id, "result.converged == true and param.kernel == 'linear'") == [("linear", 10.0)]
    assert matching(store, run_id, "state == 'FAILED'") == [("rbf", 100.0), ("linear", 100.0)]


def test_order_by_a_parameter(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, "param.kernel == 'linear'", order_by="-param.C") == [
        ("linear", 100.0), ("linear", 10.0), ("linear", 1.0), ("linear", 0.1)]


def test_a_text_is_never_compared_with_a_number(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, "param.kernel > 5") == []  # SQLite alone would order text above numbers
    assert matching(store, run_id, "param.C == 'rbf'") == []


def test_unicode_text_is_a_value_like_any_other(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    assert matching(store, run_id, "param.kernel == 'rbf\u00e9\u6f22'") == []


# -- what it refuses, in one line, changing nothing ----------------------------------------------


def test_an_unknown_parameter_or_result_key_lists_the_known_ones(runs: tuple[Store, str]) -> None:
    store, run_id = runs
    with pytest.raises(ValueError, match=r"unknown result key 'result.acuracy'; the known ones are result.accuracy, result.converged"):
        store.list_task_runs(run_id, where_text="result.acuracy > 0.95")
    with pytest.raises(ValueError, match=r"unknown parameter 'param.gamma'; the known ones are param.C, param.kernel, param.scaled"):
        store.count_task_runs(run_id, where_text="param.gamma == 1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("param.C = 1", "unexpected character '=' at position 9 of the where expression (use == for equality)"),
        ("param.C == 1 UNION SELECT * FROM flow_runs", "unexpected character '*' at position 27"),
        ("1; DROP TABLE task_runs", "unexpected character ';' at position 2"),
        ("param.C == 1 OR 1=1 --", "unexpected character '='"),
        ("param.kernel == 'rbf' UNION SELECT id FROM flow_runs", "expected 'and', 'or' or the end at position 23, found 'UNION'"),
        ("param.C == 1 and", "expected a field (param.NAME, result.KEY, state, ...) or a value at position 17, found the end"),
        ("param.C ==", "found the end"),
        ("param.kernel == 'rbf", "unexpected character \"'\""),
        ("result.accuracy == null", "compare with null as 'is null' or 'is not null'"),
        ("1 == 1", "a comparison needs a field on one side"),
        ("password == 'x'", "unknown field 'password' at position 1; use param.NAME, result.KEY or one of state"),
        ("param", "expected '.NAME' after 'param'"),
        ("param.1x > 0", "expected '.NAME' after 'param' at position 6, found '.1'"),
        ("param.C. > 0", "expected a key after '.'"),
        ("param.C in ()", "expected a value"),
        ("param.k\u00e9rnel == 1", "unexpected character '\u00e9'"),
        ("", "where expression is empty"),
        ("   ", "where expression is empty"),
        ("param.C == 1 and and", "expected a field"),
    ],
)
def test_hostile_and_malformed_input_is_a_clear_error(runs: tuple[Store, str], text: str, says: str) -> None:
    store, run_id = runs
    before = store.count_task_runs(run_id)
    with pytest.raises(ValueError) as raised:
        store.list_task_runs(run_id, where_text=text)
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)
    assert store.count_task_runs(run_id) == before == 8


def test_nesting_and_length_are_bounded() -> None:
    deep = "(" * 5000 + "param.C == 1" + ")" * 5000
    with pytest.raises(ValueError, match="too long"):
        where.compile_where(deep)
    nested = "(" * 40 + "param.C == 1" + ")" * 40
    with pytest.raises(ValueError, match="nested too deeply"):
        where.compile_where(nested)
    with pytest.raises(ValueError, match="nested too deeply"):
        where.compile_where("not " * 40 + "param.C == 1")
    with pytest.raises(ValueError, match="more than 1000 values"):
        where.compile_where("param.C in (" + ", ".join("1" for _ in range(1001)) + ")")


def test_values_and_paths_are_bound_parameters_never_sql() -> None:
    compiled = where.compile_where("param.kernel == \"x'); DROP TABLE t; --\" and result.a.b > 1e3")
    assert "DROP" not in compiled.sql
    assert compiled.params == ('$.kernel', '$.kernel', "x'); DROP TABLE t; --", '$.a.b', '$.a.b', 1000.0)
    assert [f.text for f in compiled.fields] == ["param.kernel", "result.a.b"]


def test_runs_tasks_where_on_the_cli(runs: tuple[Store, str]) -> None:
    import json

    from click.testing import CliRunner

    from prefect_like.cli import cli

    _, run_id = runs
    shown = CliRunner().invoke(cli, ["runs", "tasks", run_id, "--where", "param.C > 5 and param.kernel == 'rbf'",
                                     "--order-by=-param.C", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["parameters"]["C"] for r in json.loads(shown.output)] == [100.0, 10.0]
    typo = CliRunner().invoke(cli, ["runs", "tasks", run_id, "--where", "param.c > 5"])
    assert typo.exit_code == 1
    assert typo.output.strip() == ("Error: unknown parameter 'param.c'; the known ones are param.C, param.kernel, "
                                   "param.scaled")
