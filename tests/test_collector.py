"""The collector's first-generation threshold is raised while flow runs are live, then put back."""

from __future__ import annotations

import gc

import pytest

from prefect_like import flow
from prefect_like.collector import DEFAULT_THRESHOLD


@pytest.fixture(autouse=True)
def default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@flow
def inner() -> tuple[int, ...]:
    return gc.get_threshold()


@flow
def outer() -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    before = gc.get_threshold()
    during_subflow = inner()
    return before, during_subflow, gc.get_threshold()


def test_a_flow_run_collects_less_often_and_puts_the_setting_back():
    assert outer() == ((DEFAULT_THRESHOLD, 10, 10),) * 3  # a subflow's end does not restore early
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_is_a_setting_and_zero_leaves_the_collector_alone(monkeypatch):
    monkeypatch.setenv("PREFECT_LIKE_GC_THRESHOLD", "5000")
    assert inner() == (5000, 10, 10)
    monkeypatch.setenv("PREFECT_LIKE_GC_THRESHOLD", "0")
    assert inner() == (700, 10, 10)


def test_a_process_that_already_collects_less_often_keeps_its_setting():
    gc.set_threshold(500_000, 20, 20)
    assert inner() == (500_000, 20, 20)
    assert gc.get_threshold() == (500_000, 20, 20)


def test_a_change_made_during_the_run_is_not_undone():
    @flow
    def retunes() -> None:
        gc.set_threshold(1234, 5, 5)

    retunes()
    assert gc.get_threshold() == (1234, 5, 5)


def test_a_failing_flow_run_puts_the_setting_back_too():
    @flow
    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails()
    assert gc.get_threshold() == (700, 10, 10)


def test_an_async_flow_run_is_tuned_the_same_way():
    import asyncio

    @flow
    async def async_inner() -> tuple[int, ...]:
        return gc.get_threshold()

    assert asyncio.run(async_inner()) == (DEFAULT_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
