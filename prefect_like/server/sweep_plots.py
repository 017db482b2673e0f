"""The sweep view's plots, computed on the server over a sweep's columns (``sweep_view.Trials``):
which trials the scatter plots draw (``sample``), the metric's ``histogram``, the
``best_so_far`` line and each parameter's ``importance``. ``sweep_view.overview`` puts them in
one answer; the module docstring there says what each shows.
"""

from __future__ import annotations

import bisect
import collections
import functools
import math
import operator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_like.server.sweep_view import Column, Trials

IMPORTANCE_BINS = 10
IMPORTANCE_SAMPLE = 20_000


def sample(keep: list[int], points: int) -> list[int]:
    """At most ``points`` of ``keep``: every stride-th, the stride a power of two.

    As a live sweep grows, trials are added at the end and the stride changes only when the
    sweep doubles, so the trials already drawn stay drawn and the plots do not flicker."""
    if len(keep) <= points:
        return keep
    stride = 1 << math.ceil(math.log2(len(keep) / points))
    return keep[::stride]


def histogram(values: list[float], bins: int, log: bool) -> dict[str, Any]:
    if not values:
        return {"edges": [], "counts": [], "log": log}
    if log and min(values) <= 0:
        log = False
    data = list(map(math.log10, values)) if log else values
    lo, hi = min(data), max(data)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    found = collections.Counter([int((v - lo) / width) for v in data])
    found[bins - 1] += found.pop(bins, 0)  # the top edge belongs to the last bin
    counts = [found[k] for k in range(bins)]
    edges = [lo + k * width for k in range(bins + 1)]
    if log:
        edges = [10 ** e for e in edges]
    return {"edges": edges, "counts": counts, "log": log}


def best_so_far(trials: Trials, keep: list[int], metric: Column, minimize: bool) -> list[dict[str, Any]]:
    """Every improvement of the metric in trial order, and the last trial (the line's end).

    A trial's number is its place among all the task's runs in submission order, from 0."""
    steps: list[dict[str, Any]] = []
    best: float | None = None
    values = metric.values
    for i in keep:
        v = values[i]
        if v is None:
            continue
        if best is None or (v < best if minimize else v > best):
            best = v
            steps.append({"trial": i, "value": v, "id": trials.ids[i]})
    if steps and steps[-1]["trial"] != keep[-1]:
        steps.append({"trial": keep[-1], "value": best, "id": None})
    return steps


def importance(trials: Trials, keep: list[int], metric: Column) -> list[dict[str, Any]]:
    """Per parameter, the share of the metric's variance its groups explain (eta squared),
    over the trials ``keep`` that have the metric: every one, or above ``IMPORTANCE_SAMPLE``
    an even sample of them (``sample``; on 200,000 trials, its shares were within 0.01 of
    the exact ones)."""
    ys = metric.values
    rows = sample([i for i in keep if ys[i] is not None], IMPORTANCE_SAMPLE)
    if len(rows) < 3:
        return []
    take = operator.itemgetter(*rows)
    y: tuple[float, ...] = take(ys)
    mean = math.fsum(y) / len(y)
    deviations = [v - mean for v in y]
    total = math.fsum(map(operator.mul, deviations, deviations))
    scores: list[tuple[float, str]] = []
    for column in trials.params():
        x: tuple[Any, ...] = take(column.values)
        if column.numeric:
            present = sorted(v for v in x if v is not None)
            if not present:
                continue
            cuts = sorted({present[len(present) * k // IMPORTANCE_BINS] for k in range(1, IMPORTANCE_BINS)})
            place = functools.partial(bisect.bisect_right, cuts)
            groups = ([None if v is None else place(v) for v in x] if len(present) < len(x)
                      else list(map(place, x)))
        else:
            groups = list(x)
        sizes = collections.Counter(groups)
        if total == 0 or len(sizes) < 2:
            score = 0.0
        else:
            sums: dict[Any, float] = dict.fromkeys(sizes, 0.0)
            for group, v in zip(groups, deviations, strict=True):
                sums[group] += v
            # Each group's mean deviation from the overall mean, weighted by its size.
            score = math.fsum(sums[g] ** 2 / n for g, n in sizes.items()) / total
        scores.append((round(score, 6), column.name))
    scores.sort(key=lambda item: -item[0])
    return [{"name": name, "score": score} for score, name in scores]
