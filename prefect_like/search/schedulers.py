"""Schedulers: which trials of a search stop early, decided from what they report.

A scheduler sees, for each trial (an opaque key: its task run id), the search's metric at each
reported step, where higher is better (the board negates a metric to minimise), and each trial's
end. It answers one question per report: stop this trial now? It never starts trials; the
sampler does (``samplers``).

- ``ASHA``: asynchronous successive halving (Li et al., 2018), as Ray Tune's
  ``AsyncHyperBandScheduler``: rungs at ``grace_period * reduction_factor**k`` steps below
  ``max_t``; a trial reaching a rung is stopped unless its value is in the top
  ``1 / reduction_factor`` of the values recorded at that rung so far. Never waits for a rung to
  fill, so workers stay busy. ``brackets > 1`` runs several grace periods at once.
- ``SuccessiveHalving``: the same, under Optuna's name.
- ``Hyperband``: ASHA over every bracket the budget allows (the asynchronous Hyperband of the
  same paper); each trial is assigned a bracket at its first report.
- ``MedianStopping``: Optuna's ``MedianPruner``: after ``n_startup_trials`` completed trials
  and ``n_warmup_steps``, a trial whose best value so far is below the median of the completed
  trials' values at the same step is stopped.

Values that are NaN are ignored where percentiles are taken, as numpy's ``nanpercentile`` (which
Ray uses) ignores them.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import Any


class Scheduler:
    """The interface: ``on_report`` answers whether to stop; ``on_complete`` learns of an end."""

    def on_report(self, trial: str, step: float, value: float) -> bool:
        raise NotImplementedError

    def on_complete(self, trial: str, step: float | None, value: float | None, pruned: bool) -> None:
        """A trial ended: ``value`` (higher is better) at ``step`` is its last, if it had one."""

    def describe(self) -> dict[str, Any]:
        """What rebuilds this scheduler (stored with the sweep, for ``sweeps resume``)."""
        return {"kind": type(self).__name__}


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation (numpy's default), NaN left out."""
    kept = sorted(v for v in values if not math.isnan(v))
    if not kept:
        return None
    position = (len(kept) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(kept) - 1)
    low_value, high_value = kept[low], kept[high]
    if math.isinf(low_value) or math.isinf(high_value) or low == high:
        return low_value if position - low < 0.5 or low == high else high_value
    return low_value + (high_value - low_value) * (position - low)


def _positive(name: str, value: Any, *, whole: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if whole and int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")


class _Bracket:
    """One bracket of ASHA: its rungs, largest first, each the values recorded at it."""

    def __init__(self, grace_period: float, max_t: float, reduction_factor: float, s: int) -> None:
        self.rf = reduction_factor
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor) - s + 1)
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (grace_period * reduction_factor ** (k + s), {}) for k in reversed(range(max(count, 0)))
        ]

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        return percentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_result(self, trial: str, step: float, value: float) -> bool:
        stop = False
        for milestone, recorded in self.rungs:
            if step < milestone or trial in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and value < cutoff:
                stop = True
            recorded[trial] = value
            break
        return stop


class ASHA(Scheduler):
    """Asynchronous successive halving (Ray Tune's ``AsyncHyperBandScheduler``, its defaults).

    ``max_t``: the most steps a trial runs (reports at or past it stop nothing: the trial is
    done). ``grace_period``: the steps every trial gets before it can be stopped.
    ``reduction_factor``: a rung keeps the top ``1 / reduction_factor``. ``brackets``: how many
    grace periods run at once (1 is plain ASHA)."""

    def __init__(self, max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4,
                 brackets: int = 1, seed: int = 0) -> None:
        _positive("max_t", max_t)
        _positive("grace_period", grace_period)
        _positive("brackets", brackets, whole=True)
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float)) or reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be a number above 1, got {reduction_factor!r}")
        if grace_period > max_t:
            raise ValueError(f"grace_period ({grace_period}) must not exceed max_t ({max_t})")
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        self.seed = seed
        self.brackets = [_Bracket(grace_period, max_t, reduction_factor, s) for s in range(int(brackets))]
        self._assigned: dict[str, _Bracket] = {}

    def _bracket(self, trial: str) -> _Bracket:
        bracket = self._assigned.get(trial)
        if bracket is None:
            if len(self.brackets) == 1:
                bracket = self.brackets[0]
            else:
                # Ray's weights: a bracket with more rungs gets more trials (e ** rung count).
                sizes = [len(b.rungs) for b in self.brackets]
                weights = [math.e ** (size - max(sizes)) for size in sizes]
                rng = random.Random(zlib.crc32(trial.encode()) ^ self.seed)
                bracket = rng.choices(self.brackets, weights)[0]
            self._assigned[trial] = bracket
        return bracket

    def on_report(self, trial: str, step: float, value: float) -> bool:
        if step >= self.max_t:
            return False
        return self._bracket(trial).on_result(trial, step, value)

    def on_complete(self, trial: str, step: float | None, value: float | None, pruned: bool) -> None:
        bracket = self._bracket(trial)
        del self._assigned[trial]
        if step is not None and value is not None and not pruned:
            bracket.on_result(trial, step, value)

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "max_t": self.max_t, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "brackets": len(self.brackets)}


class SuccessiveHalving(ASHA):
    """ASHA with one bracket, under Optuna's name (``SuccessiveHalvingPruner``)."""

    def __init__(self, max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4) -> None:
        super().__init__(max_t, grace_period, reduction_factor, brackets=1)


class Hyperband(ASHA):
    """Asynchronous Hyperband: ASHA over every bracket ``max_t / grace_period`` allows, so some
    trials get a short grace period and some a long one, hedging on how early a curve tells."""

    def __init__(self, max_t: float = 81, grace_period: float = 1, reduction_factor: float = 3) -> None:
        _positive("max_t", max_t)
        _positive("grace_period", grace_period)
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float)) or reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be a number above 1, got {reduction_factor!r}")
        count = max(1, int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1e-9))
        super().__init__(max_t, grace_period, reduction_factor, brackets=count)


class MedianStopping(Scheduler):
    """Optuna's ``MedianPruner``: stop a trial whose best value so far is below the median of the
    completed trials' values at the same step, once ``n_startup_trials`` trials completed and
    past ``n_warmup_steps``, checking every ``interval_steps``."""

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: float = 0, interval_steps: float = 1) -> None:
        for name, value in (("n_startup_trials", n_startup_trials), ("n_warmup_steps", n_warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be 0 or more, got {value!r}")
        _positive("interval_steps", interval_steps)
        self.n_startup_trials, self.n_warmup_steps, self.interval_steps = n_startup_trials, n_warmup_steps, interval_steps
        self._values: dict[str, dict[float, float]] = {}
        self._completed: list[dict[float, float]] = []

    def on_report(self, trial: str, step: float, value: float) -> bool:
        values = self._values.setdefault(trial, {})
        earlier = max((s for s in values if s < step), default=-1.0)
        values[step] = value
        if len(self._completed) < self.n_startup_trials or step < self.n_warmup_steps:
            return False
        # Optuna's "first report in this interval" rule: check once per interval of steps.
        lower = (step - self.n_warmup_steps) // self.interval_steps * self.interval_steps + self.n_warmup_steps
        if earlier >= lower:
            return False
        best = max((v for v in values.values() if not math.isnan(v)), default=math.nan)
        if math.isnan(best):
            return True
        median = percentile([c[step] for c in self._completed if step in c], 50)
        return median is not None and best < median

    def on_complete(self, trial: str, step: float | None, value: float | None, pruned: bool) -> None:
        values = self._values.pop(trial, {})
        if not pruned:
            self._completed.append(values)

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "n_startup_trials": self.n_startup_trials,
                "n_warmup_steps": self.n_warmup_steps, "interval_steps": self.interval_steps}


KINDS = {cls.__name__: cls for cls in (ASHA, SuccessiveHalving, Hyperband, MedianStopping)}


def from_description(description: dict[str, Any] | None) -> Scheduler | None:
    """The scheduler ``describe()`` described (None for none)."""
    if not description:
        return None
    args = dict(description)
    kind = args.pop("kind", None)
    cls = KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"cannot rebuild the scheduler {kind!r}; known: {', '.join(KINDS)}")
    if cls is ASHA:
        return ASHA(**args)
    args.pop("brackets", None)
    return cls(**args)


__all__ = ["ASHA", "Hyperband", "MedianStopping", "Scheduler", "SuccessiveHalving", "from_description", "percentile"]
