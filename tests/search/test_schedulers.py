"""Schedulers decide as Ray Tune's and Optuna's do, on the cases their own test suites use.

The ASHA cases are Ray's ``AsyncHyperBandSuite`` (python/ray/tune/tests/test_trial_scheduler.py,
``basicSetup``, ``testAsyncHBGracePeriod``, ``testAsyncHBUsesPercentile``,
``testAsyncHBNanPercentile``, ``testAsyncHBOnComplete``, ``testAsyncHBSaveRestore``); the median
cases are Optuna's (tests/pruners_tests/test_median.py). Values here are "higher is better", as
the board hands them over (it negates a metric to minimise).
"""

from __future__ import annotations

import math

import pytest

from prefect_like.search.schedulers import ASHA, Hyperband, MedianStopping, percentile


def basic_setup(scheduler: ASHA) -> None:
    # Ray's basicSetup: t1 climbs to 900 over 10 steps, t2 stays at 450 for 5; neither stops.
    for i in range(10):
        assert scheduler.on_report("t1", i, i * 100) is False
    for i in range(5):
        assert scheduler.on_report("t2", i, 450) is False


def test_asha_grace_period_then_the_rung_percentile_stops_a_poor_trial() -> None:
    scheduler = ASHA(grace_period=2.5, reduction_factor=3, brackets=1)
    basic_setup(scheduler)
    scheduler.on_complete("t1", 10, 1000, pruned=False)
    scheduler.on_complete("t2", 10, 1000, pruned=False)
    assert scheduler.on_report("t3", 1, 10) is False
    assert scheduler.on_report("t3", 2, 10) is False
    assert scheduler.on_report("t3", 3, 10) is True


def test_asha_uses_the_percentile_of_the_rung() -> None:
    scheduler = ASHA(grace_period=1, max_t=10, reduction_factor=2, brackets=1)
    basic_setup(scheduler)
    scheduler.on_complete("t1", 10, 1000, pruned=False)
    scheduler.on_complete("t2", 10, 1000, pruned=False)
    assert scheduler.on_report("t3", 1, 260) is True
    assert scheduler.on_report("t3", 2, 260) is True


def test_asha_ignores_nan_in_the_percentile() -> None:
    scheduler = ASHA(grace_period=1, max_t=10, reduction_factor=2, brackets=1)
    for i in range(10):
        assert scheduler.on_report("t1", i, 450) is False
    for i in range(10):
        assert scheduler.on_report("t2", i, math.nan) is False
    scheduler.on_complete("t1", 10, 450, pruned=False)
    scheduler.on_complete("t2", 10, math.nan, pruned=False)
    assert scheduler.on_report("t3", 1, 260) is True
    assert scheduler.on_report("t3", 2, 260) is True


@pytest.mark.parametrize(("completed", "stopped"), [(False, False), (True, True)])
def test_asha_a_completed_trial_counts_at_its_rung(completed: bool, stopped: bool) -> None:
    # After Ray's testAsyncHBOnComplete (whose STOP there comes from max_t, which here ends a
    # trial as done rather than stopping it): rungs at 1 and 4 hold t1's 400 and t2's 450.
    scheduler = ASHA(max_t=10, brackets=1)
    basic_setup(scheduler)
    if completed:
        scheduler.on_complete("t3", 10, 1000, pruned=False)  # recorded at rung 4
    assert scheduler.on_report("t4", 4, 440) is stopped


def test_asha_a_worse_result_at_the_first_rung_stops_without_waiting_for_the_rung_to_fill() -> None:
    scheduler = ASHA(grace_period=1, max_t=10, reduction_factor=2, brackets=1)
    for trial in range(5):
        assert scheduler.on_report(f"t{trial}", 1, 10) is False
    assert scheduler.on_report("t5", 1, 5) is True
    assert scheduler.on_report("t6", 1, 4) is True


def test_asha_never_stops_at_or_past_max_t() -> None:
    scheduler = ASHA(grace_period=1, max_t=10, reduction_factor=2)
    for trial in range(4):
        scheduler.on_report(f"t{trial}", 8, 100)
    assert scheduler.on_report("late", 10, -1) is False


def test_hyperband_spreads_trials_over_every_bracket() -> None:
    scheduler = Hyperband(max_t=81, grace_period=1, reduction_factor=3)
    assert [len(b.rungs) for b in scheduler.brackets] == [5, 4, 3, 2]
    for i in range(200):
        scheduler.on_report(f"t{i}", 1, float(i))
    used = {id(b) for b in scheduler._assigned.values()}
    assert len(used) > 1


@pytest.mark.parametrize(("args", "says"), [
    ({"max_t": 0}, "max_t must be a positive number"),
    ({"reduction_factor": 1}, "reduction_factor must be a number above 1"),
    ({"grace_period": 200, "max_t": 100}, "grace_period (200) must not exceed max_t (100)"),
    ({"brackets": 1.5}, "brackets must be a whole number"),
])
def test_asha_bad_arguments_are_clear_errors(args: dict[str, float], says: str) -> None:
    with pytest.raises(ValueError, match=__import__("re").escape(says)):
        ASHA(**args)


# -- Optuna's MedianPruner (its values are "lower is better" there: negated here) -------------


def test_median_not_activated_on_the_first_trial() -> None:
    scheduler = MedianStopping(0, 0)
    assert scheduler.on_report("a", 1, -1) is False


def test_median_prunes_a_trial_worse_than_the_completed_ones() -> None:
    scheduler = MedianStopping(0, 0)
    scheduler.on_report("a", 1, -1)
    scheduler.on_complete("a", 1, -1, pruned=False)
    assert scheduler.on_report("b", 1, -2) is True


def test_median_waits_for_startup_trials() -> None:
    scheduler = MedianStopping(2, 0)
    scheduler.on_report("a", 1, -1)
    scheduler.on_complete("a", 1, -1, pruned=False)
    assert scheduler.on_report("b", 1, -2) is False
    scheduler.on_complete("b", 1, -2, pruned=False)
    assert scheduler.on_report("c", 1, -3) is True


def test_median_waits_for_warmup_steps() -> None:
    scheduler = MedianStopping(0, 1)
    scheduler.on_report("a", 0, -1)
    scheduler.on_report("a", 1, -1)
    scheduler.on_complete("a", 1, -1, pruned=False)
    assert scheduler.on_report("b", 0, -2) is False
    assert scheduler.on_report("b", 1, -2) is True


def test_median_pruned_trials_are_not_its_reference() -> None:
    scheduler = MedianStopping(1, 0)
    scheduler.on_report("a", 1, 5)
    scheduler.on_complete("a", 1, 5, pruned=True)
    assert scheduler.on_report("b", 1, -100) is False  # no completed trial yet


def test_percentile_interpolates_as_numpy_does() -> None:
    assert percentile([100, 450], 50) == 275
    assert percentile([1, 2, 3, 4], 75) == pytest.approx(3.25)
    assert percentile([math.nan, 450], 50) == 450
    assert percentile([math.nan], 50) is None
