"""The server's side of deployments (``tracking.control``) over a real SQLite file: schedules,
parameter checks, claims made once, no duplicate scheduled runs, crash retries, cancellation."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from prefect_like.errors import RunNotFoundError
from prefect_like.tracking.control import Control, check_parameters
from prefect_like.tracking.schedules import check_schedule, next_times
from prefect_like.tracking.store import Store

NY = ZoneInfo("America/New_York")
SCHEMA = {
    "properties": {"n": {"type": "integer", "title": "n"}, "lr": {"type": "number", "default": 0.1}},
    "required": ["n"],
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "prefect_like.db"
    Store(path).close()  # made by the store, as a server makes it
    return path


@pytest.fixture
def control(db: Path) -> Any:
    c = Control(db)
    yield c
    c.close()


def _deployment(control: Control, name: str = "nightly", pool: str = "gpu", **extra: Any) -> dict[str, Any]:
    return control.put_deployment({
        "name": name, "flow_name": "train", "entrypoint": "/src/train.py:train", "work_pool": pool,
        "parameters": {"n": 1}, "parameter_schema": SCHEMA, **extra,
    })


# -- schedules: cases from Prefect's tests/server/schemas/test_schedules.py ---------------------


def test_a_daily_cron_keeps_its_local_hour_across_the_end_of_daylight_saving_time() -> None:
    # TestCronScheduleDaylightSavingsTime: "0 9 * * *" in America/New_York from 2018-11-01, when
    # clocks went back on 11/4: 9 am local every day, 13 then 14 UTC.
    schedule = check_schedule({"cron": "0 9 * * *", "timezone": "America/New_York"})
    start = datetime(2018, 11, 1, 8, 59, tzinfo=NY).timestamp()
    times = next_times(schedule, start, start + 10 * 86400, 5)
    assert [datetime.fromtimestamp(t, NY).hour for t in times] == [9, 9, 9, 9, 9]
    assert [datetime.fromtimestamp(t, ZoneInfo("UTC")).hour for t in times] == [13, 13, 13, 14, 14]


def test_a_cron_schedule_started_on_the_day_of_the_switch_before_it_happens() -> None:
    # test_cron_schedule_handles_scheduling_near_dst_boundary: 2023-03-12 05:10:02 UTC, between
    # midnight and the 2 am switch in Montreal; "10 0 * * *" stays 00:10 local, 04:10 UTC.
    schedule = check_schedule({"cron": "10 0 * * *", "timezone": "America/Montreal"})
    start = datetime(2023, 3, 12, 5, 10, 2, tzinfo=ZoneInfo("UTC")).timestamp()
    times = next_times(schedule, start, start + 10 * 86400, 5)
    assert [datetime.fromtimestamp(t, NY).hour for t in times] == [0, 0, 0, 0, 0]
    assert [datetime.fromtimestamp(t, ZoneInfo("UTC")).hour for t in times] == [4, 4, 4, 4, 4]


def test_an_interval_schedule_counts_from_its_anchor() -> None:
    # test_get_dates_from_anchor: a daily interval anchored at 23:35 gives 23:35 every day.
    anchor = datetime(2020, 2, 2, 23, 35, tzinfo=ZoneInfo("UTC")).timestamp()
    schedule = check_schedule({"interval": 86400, "anchor": anchor})
    start = datetime(2021, 7, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    times = next_times(schedule, start, start + 6 * 86400, 5)
    assert [datetime.fromtimestamp(t, ZoneInfo("UTC")).strftime("%d %H:%M") for t in times] == [
        "01 23:35", "02 23:35", "03 23:35", "04 23:35", "05 23:35"]


@pytest.mark.parametrize("spec, says", [
    ({"cron": "invalid cron"}, "not a cron expression"),
    ({"cron": "5 4 * * *", "timezone": "fake"}, "unknown time zone"),
    ({"interval": 0}, "positive number of seconds"),
    ({"interval": -60}, "positive number of seconds"),
    ({"cron": "* * * * *", "interval": 5}, "exactly one of"),
    ({"at": "tomorrow"}, "ISO 8601"),
])
def test_a_bad_schedule_is_refused_saying_why(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_schedule(spec)


def test_parameters_are_checked_against_the_flows_schema() -> None:
    check_parameters(SCHEMA, {"n": 3, "lr": 1}, "train")
    with pytest.raises(ValueError, match=r"n: 'x' is not of type 'integer'"):
        check_parameters(SCHEMA, {"n": "x"}, "train")
    with pytest.raises(ValueError, match="unexpected parameter"):
        check_parameters(SCHEMA, {"n": 3, "epochs": 2}, "train")
    with pytest.raises(ValueError, match="missing required parameter"):
        check_parameters(SCHEMA, {"lr": 0.5}, "train")


# -- deployments, triggers and claims ----------------------------------------------------------


def test_a_required_parameter_may_wait_for_the_trigger_but_not_for_a_schedule(control: Control) -> None:
    # Prefect validates a deployment's own parameters with ignore_required=True and the
    # parameters of each run it makes in full.
    deployment = _deployment(control, parameters={})
    with pytest.raises(ValueError, match="missing required parameter"):
        control.create_run("nightly")
    assert control.create_run("nightly", {"n": 4})["parameters"] == {"n": 4}
    with pytest.raises(ValueError, match=r"schedule's runs .* no value for its required parameter\(s\) n"):
        _deployment(control, name="hourly", parameters={}, schedules=[{"interval": 3600}])
    assert [d["name"] for d in control.list_deployments()] == [deployment["name"]]


def test_deploy_checks_what_it_is_given_and_leaves_required_parameters_to_the_trigger() -> None:
    from prefect_like import flow
    from prefect_like.deployments import deployment_spec

    @flow
    def train(n: int, lr: float = 0.1) -> float:
        return n * lr

    def spec_of(**options: Any) -> dict[str, Any]:
        return deployment_spec(train, "later", work_pool="gpu", entrypoint="/src/train.py:train", **options)

    spec = spec_of(parameters={"lr": 0.5})
    assert spec["parameters"] == {"lr": 0.5} and spec["parameter_schema"]["required"] == ["n"]
    with pytest.raises(TypeError, match="lr: 'fast' is not of type 'number'"):
        spec_of(parameters={"lr": "fast"})
    with pytest.raises(TypeError, match="unexpected parameter"):
        spec_of(parameters={"epochs": 3})
    with pytest.raises(TypeError, match=r"has a schedule but no value for its required parameter\(s\) n"):
        spec_of(cron="0 3 * * *")


def test_a_trigger_with_bad_parameters_makes_no_run(control: Control) -> None:
    _deployment(control)
    with pytest.raises(ValueError, match="not of type 'integer'"):
        control.create_run("nightly", {"n": "many"})
    assert control.list_runs("nightly") == []
    with pytest.raises(RunNotFoundError, match="no deployment named 'nope'"):
        control.create_run("nope", {})


def test_a_triggered_run_is_scheduled_in_the_run_list_and_claimed_once(control: Control, db: Path) -> None:
    _deployment(control)
    run = control.create_run("nightly", {"n": 7})
    assert run["state"] == "SCHEDULED" and run["parameters"] == {"n": 7}
    with Store(db) as store:
        assert store.get_flow_run(run["id"])["state_name"] == "Scheduled"
    assert control.claim("cpu", "w1", 5) == []  # another pool's worker
    claimed = control.claim("gpu", "w1", 5)
    assert [r["id"] for r in claimed] == [run["id"]]
    assert claimed[0]["entrypoint"] == "/src/train.py:train"
    assert control.claim("gpu", "w2", 5) == []


def test_two_workers_racing_over_two_connections_claim_each_run_once(db: Path) -> None:
    setup = Control(db)
    _deployment(setup)
    made = {setup.create_run("nightly", {"n": i})["id"] for i in range(60)}
    got: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    start = threading.Barrier(len(got))

    def work(name: str) -> None:
        mine = Control(db)  # its own connection, as a second server process would have
        start.wait()
        try:
            while True:
                runs = mine.claim("gpu", name, 1)
                if not runs:
                    return
                got[name].extend(r["id"] for r in runs)
        finally:
            mine.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    setup.close()
    assert sorted(got["a"] + got["b"] + got["c"]) == sorted(made)  # every run claimed, none twice


def test_a_pool_limit_caps_the_runs_claimed_at_once(control: Control) -> None:
    _deployment(control)
    for i in range(5):
        control.create_run("nightly", {"n": i})
    control.set_pool_limit("gpu", 2)
    assert len(control.claim("gpu", "w1", 10)) == 2
    assert control.claim("gpu", "w2", 10) == []  # two still running over the pool


def test_schedules_made_by_two_servers_and_after_a_restart_have_no_duplicates_and_no_gaps(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LIKE_SCHEDULER_MAX_RUNS", "2")
    first, second = Control(db), Control(db)
    now = time.time()
    _deployment(first, schedules=[{"interval": 10, "anchor": now}])
    first.tick(now)
    second.tick(now)  # another server process on the same file, at the same moment
    assert len(first.list_runs("nightly", upcoming=True)) == 2  # two ahead, made once
    first.close()
    second.close()
    # The server was down for a minute: the times it missed are made, then two ahead again.
    restarted = Control(db)
    restarted.tick(now + 65)
    restarted.tick(now + 65)
    runs = restarted.list_runs("nightly", limit=1000) + restarted.list_runs("nightly", upcoming=True, limit=1000)
    times = sorted(r["scheduled"] for r in runs)
    assert [round(t - now) for t in times] == [10, 20, 30, 40, 50, 60, 70, 80]
    restarted.close()


def test_pausing_withdraws_future_runs_and_resuming_makes_them_again(control: Control) -> None:
    _deployment(control, schedules=[{"interval": 60}])
    control.tick()
    ahead = len(control.list_runs("nightly", upcoming=True, limit=500))
    assert ahead == 60  # an hour ahead (PREFECT_LIKE_SCHEDULER_HORIZON), one a minute
    paused = control.set_paused("nightly", True)
    assert paused["paused"] and control.list_runs("nightly", upcoming=True) == []
    control.tick()
    assert control.list_runs("nightly", upcoming=True) == []
    control.set_paused("nightly", False)
    control.tick()
    assert len(control.list_runs("nightly", upcoming=True, limit=500)) == ahead


def test_a_run_nobody_claims_is_named_late(control: Control, db: Path) -> None:
    _deployment(control)
    run = control.create_run("nightly", {"n": 1}, scheduled=time.time() - 60)
    control.tick()
    with Store(db) as store:
        row = store.get_flow_run(run["id"])
    assert (row["state"], row["state_name"]) == ("SCHEDULED", "Late")


def test_a_crashed_run_runs_again_while_retries_allow(control: Control) -> None:
    _deployment(control, retries=1)
    first = control.create_run("nightly", {"n": 2})
    control.claim("gpu", "w1", 1)
    assert control.report_crash(first["id"], "Crashed: killed")
    control.tick()
    again = control.claim("gpu", "w1", 1)
    assert len(again) == 1 and again[0]["attempt"] == 2 and again[0]["retry_of"] == first["id"]
    assert again[0]["parameters"] == {"n": 2}
    control.report_crash(again[0]["id"], "Crashed: killed again")
    control.tick()
    control.tick()
    assert control.claim("gpu", "w1", 1) == []  # retries spent


def test_cancelling_a_run_not_started_ends_it_at_once(control: Control, db: Path) -> None:
    _deployment(control)
    run = control.create_run("nightly", {"n": 1})
    answer = control.request_cancel(run["id"], "not needed")
    assert answer == {"id": run["id"], "state": "CANCELLED", "state_name": "Cancelled", "cancelling": False}
    assert control.claim("gpu", "w1", 5) == []
    with Store(db) as store:
        assert store.get_flow_run(run["id"])["message"] == "Cancelled before it started: not needed"


def test_a_late_run_is_notified_once_and_only_to_the_notifications_it_matches(control: Control) -> None:
    _deployment(control, tags=["nightly"])
    _deployment(control, name="other", pool="cpu")
    run = control.create_run("nightly", {"n": 1}, scheduled=time.time() - 60)
    control.create_run("other", {"n": 1}, scheduled=time.time() - 60)
    hook = "https://hooks.example.com/services/T0KEN?key=s3cret"
    made = control.create_notification({"states": ["late"], "webhook": hook, "tag": "nightly"})
    assert made["webhook"] == "https://hooks.example.com/***"  # its secrets are never shown
    control.create_notification({"states": ["failed"], "webhook": "http://127.0.0.1:9/x"})
    due = control.tick()
    assert [(url, body["flow_run_id"], body["state_name"]) for url, body in due] == [(hook, run["id"], "Late")]
    assert due[0][1]["deployment"] == "nightly" and due[0][1]["tags"] == ["nightly"]
    assert control.tick() == []  # once


def test_a_notification_by_tag_matches_the_tags_a_flow_was_called_with() -> None:
    # Prefect's automations match a flow run's own tags, deployment or not.
    from prefect_like import flow, tags
    from prefect_like.settings import database_path

    @flow
    def nightly_check(fail: bool) -> None:
        if fail:
            raise RuntimeError("bad data")

    Store(database_path()).close()
    control = Control(database_path())
    try:
        control.create_notification({"states": ["failed"], "webhook": "https://hooks.example.com/a", "tag": "etl"})
        with tags("etl", "nightly"):
            nightly_check(True, return_state=True)
        with tags("adhoc"):
            nightly_check(True, return_state=True)
        due = control.tick()
    finally:
        control.close()
    assert [(body["flow_name"], body["state_name"], body["tags"]) for _, body in due] == [
        ("nightly-check", "Failed", ["etl", "nightly"])]


@pytest.mark.parametrize("spec, says", [
    ({"states": ["exploded"], "webhook": "https://x.example"}, "--on takes one or more of"),
    ({"states": ["failed"], "webhook": "ftp://x.example"}, "http:// or https://"),
    ({"states": ["failed"], "webhook": "https://x.example", "deployment": "nope"}, "no deployment named"),
])
def test_a_bad_notification_is_refused_saying_why(control: Control, spec: dict[str, Any], says: str) -> None:
    with pytest.raises((ValueError, RunNotFoundError), match=says):
        control.create_notification(spec)
    assert control.list_notifications() == []


def test_a_deployment_with_parameters_its_flow_does_not_take_is_refused_before_the_server_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_like import flow
    from prefect_like.errors import TrackingError

    @flow
    def train(n: int, lr: float = 0.1) -> None:
        pass

    globals()["train"] = train  # a top-level flow, as a worker finds one
    with pytest.raises(TypeError, match="n: Input should be a valid integer"):
        train.deploy("nightly", work_pool="gpu", parameters={"n": "many"})
    with pytest.raises(TypeError, match="unexpected parameter.*epochs"):
        train.deploy("nightly", work_pool="gpu", parameters={"epochs": 3})
    with pytest.raises(TrackingError, match="deployments need a tracking server"):
        train.deploy("nightly", work_pool="gpu", parameters={"n": 3}, cron="0 3 * * *")


def test_the_same_deployment_life_on_a_postgresql_store() -> None:
    """Trigger, Late, notification, claim, crash and retry, cancel, pause and delete on the
    PostgreSQL store a server with PREFECT_LIKE_DATABASE_URL uses: the same code, the same
    answers."""
    from prefect_like.tracking import databases, postgres
    from tests import pg

    ours = pg._cluster is None  # started here: stopped here, not another module's
    url = pg.cluster().fresh()
    databases.open_store(url, migrate=True).close()
    control = postgres.control(url)
    try:
        _deployment(control, tags=["nightly"], retries=1, schedules=[{"interval": 60}])
        control.tick()
        assert len(control.list_runs("nightly", upcoming=True, limit=500)) == 60
        late = control.create_run("nightly", {"n": 2}, scheduled=time.time() - 60)
        control.create_notification({"states": ["late", "crashed"], "webhook": "https://h.example/x",
                                     "tag": "nightly", "flow_name": "train"})
        assert [b["state_name"] for _, b in control.tick()] == ["Late"]
        (claimed,) = control.claim("gpu", "w1", 5)
        assert claimed["id"] == late["id"]
        assert control.report_crash(late["id"], "Crashed: killed")
        assert [b["state_name"] for _, b in control.tick()] == ["Crashed"]
        assert [r["attempt"] for r in control.claim("gpu", "w1", 5)] == [2]
        queued = control.create_run("nightly", {"n": 3})
        assert control.request_cancel(queued["id"][:8])["state"] == "CANCELLED"
        assert control.set_paused("nightly", True)["paused"]
        assert control.list_runs("nightly", upcoming=True) == []
        assert control.delete_deployment("nightly")["name"] == "nightly"
    finally:
        control.close()
        if ours:
            pg.stop()


def test_the_scheduler_benchmark_runs_at_a_tiny_size() -> None:
    from benchmarks.deployments import scheduler

    result = scheduler(5)
    assert result["runs_made"] in (5 * 60, 5 * 61)  # an hour of one-minute schedules (a minute may turn)
    assert result["longest_tick_s"] < 30
