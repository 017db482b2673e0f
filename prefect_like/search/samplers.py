"""Samplers: which point a search tries next, told how each earlier one did.

A sampler is any object with two methods (the ask/tell interface Optuna and Ray Tune's
searchers share):

- ``ask() -> dict | None``: the parameters of the next trial; None when it has no more (a grid
  run through). Called on the flow's thread, as often as ``max_concurrent`` trials allow, so a
  model-based sampler may be asked again before it is told: parallel trials.
- ``tell(params, value, state)``: a trial ended. ``params`` is the very dict ``ask`` returned;
  ``value`` the search's metric (a list of them for several metrics), None if the trial failed;
  ``state`` its state name (``Completed``, ``Pruned``, ``Failed``, ...).

An optional ``restore(trials)`` is called once, before the first ``ask``, when a search resumes:
``trials`` is what the sweep's earlier runs stored, as ``(params, value, state)``, so the sampler
continues from them instead of starting over.

Built in: ``RandomSampler`` (a ``Space``, seeded: the same seed draws the same points as
``Space.sample``), ``GridSampler`` (a ``Grid``, point by point), and ``OptunaSampler`` (any of
Optuna's samplers, or a study, through its ask-and-tell interface; ``pip install
"prefect-like[optuna]"``). ``make_sampler`` turns the names ``random``, ``grid``, ``tpe``,
``cmaes``, ``gp``, ``nsga2``, ``qmc`` into one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prefect_like.errors import MissingEngineError

if TYPE_CHECKING:
    from prefect_like.sweep import Grid, Space

StoredTrial = tuple[dict[str, Any], Any, str]

OPTUNA_SAMPLERS = {
    "tpe": "TPESampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "nsga2": "NSGAIISampler",
    "qmc": "QMCSampler",
}
NAMES = ("random", "grid", *OPTUNA_SAMPLERS)


class RandomSampler:
    """Random search over a ``Space``; ``seed`` makes the points repeatable."""

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.seed = random.SystemRandom().randrange(2**32) if seed is None else seed
        self._rng = random.Random(self.seed)
        self._dimensions = list(space.dimensions.items())

    def ask(self) -> dict[str, Any]:
        return {name: dimension.draw(self._rng) for name, dimension in self._dimensions}

    def tell(self, params: dict[str, Any], value: Any, state: str) -> None:
        pass

    def restore(self, trials: Sequence[StoredTrial]) -> None:
        for _ in trials:  # continue the seed's sequence where the earlier runs left it
            self.ask()


class GridSampler:
    """Every point of a ``Grid`` once, in the grid's order; then no more."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._points: Iterator[dict[str, Any]] = iter(grid)
        self._done: list[dict[str, Any]] = []

    def ask(self) -> dict[str, Any] | None:
        for point in self._points:
            if point not in self._done:
                return point
        return None

    def tell(self, params: dict[str, Any], value: Any, state: str) -> None:
        pass

    def restore(self, trials: Sequence[StoredTrial]) -> None:
        self._done = [params for params, _, _ in trials]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingEngineError("optuna", "optuna") from exc
    return optuna


def distributions(space: Space) -> dict[str, Any]:
    """A ``Space``'s dimensions as Optuna distributions."""
    from prefect_like import sweep

    optuna = _optuna()
    dist = optuna.distributions
    out: dict[str, Any] = {}
    for name, dimension in space.dimensions.items():
        if isinstance(dimension, sweep._LogUniform):
            out[name] = dist.FloatDistribution(dimension.lo, dimension.hi, log=True)
        elif isinstance(dimension, sweep._Uniform):
            out[name] = dist.FloatDistribution(dimension.lo, dimension.hi)
        elif isinstance(dimension, sweep._Integer):
            out[name] = dist.IntDistribution(dimension.lo, dimension.hi)
        elif isinstance(dimension, sweep._Choice):
            out[name] = dist.CategoricalDistribution(list(dimension.options))
        else:
            raise TypeError(f"dimension {name!r} ({dimension!r}) has no Optuna distribution")
    return out


class OptunaSampler:
    """An Optuna sampler (or a whole study) driven by ask and tell, parallel trials included.

    ``sampler``: an ``optuna.samplers.BaseSampler``, one of the names in ``OPTUNA_SAMPLERS``,
    or an ``optuna.Study`` to continue. ``directions``: ``"minimize"``/``"maximize"`` per
    metric. ``study`` is the study, for Optuna's own analysis (``optuna.visualization``)."""

    def __init__(self, space: Space, sampler: Any = "tpe", directions: Sequence[str] = ("minimize",),
                 seed: int | None = None) -> None:
        optuna = _optuna()
        self.distributions = distributions(space)
        if isinstance(sampler, optuna.Study):
            self.study = sampler
        else:
            if isinstance(sampler, str):
                cls = getattr(optuna.samplers, OPTUNA_SAMPLERS[sampler])
                sampler = cls(seed=seed)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.study = optuna.create_study(sampler=sampler, directions=list(directions))
        self._asked: dict[int, Any] = {}

    def ask(self) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        params = dict(trial.params)
        self._asked[id(params)] = (trial, params)
        return params

    def enqueue(self, params: dict[str, Any]) -> dict[str, Any]:
        """Ask for a trial with these parameters (a stored trial run again on resume), so its
        end is told to the study like any other's."""
        self.study.enqueue_trial({name: params[name] for name in self.distributions if name in params})
        return self.ask()

    def tell(self, params: dict[str, Any], value: Any, state: str) -> None:
        from optuna.trial import TrialState

        trial, _ = self._asked.pop(id(params), (None, None))
        if trial is None:
            return
        if state == "Pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        elif value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def restore(self, trials: Sequence[StoredTrial]) -> None:
        optuna = _optuna()
        from optuna.trial import TrialState

        for params, value, state in trials:
            if state not in ("Completed", "Cached", "Pruned") or any(name not in params for name in self.distributions):
                continue  # the trials to run again are asked for again as they run
            kept = {name: params[name] for name in self.distributions}
            if state != "Pruned" and value is None:
                continue
            try:
                if state == "Pruned":
                    trial = optuna.trial.create_trial(params=kept, distributions=self.distributions,
                                                      state=TrialState.PRUNED)
                else:
                    values = list(value) if isinstance(value, (list, tuple)) else [value]
                    trial = optuna.trial.create_trial(params=kept, distributions=self.distributions, values=values)
                self.study.add_trial(trial)
            except ValueError:  # a stored point outside this run's space (the space changed): not told
                continue


def make_sampler(sampler: Any, space: Space | Grid, directions: Sequence[str], seed: int | None) -> Any:
    """The sampler ``optimize`` was given: a name, an Optuna sampler or study, or any ask/tell object."""
    from prefect_like.sweep import Grid, Space

    if isinstance(sampler, str):
        name = sampler.strip().lower()
        if name == "grid":
            if not isinstance(space, Grid):
                raise TypeError("sampler='grid' runs a sweep.grid(...); for a Space use 'random' or an Optuna sampler")
            return GridSampler(space)
        if isinstance(space, Grid):
            raise TypeError(f"a sweep.grid(...) is searched with sampler='grid', not {sampler!r}")
        if name == "random":
            return RandomSampler(space, seed)
        if name in OPTUNA_SAMPLERS:
            return OptunaSampler(space, name, directions, seed)
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(NAMES)}, or an object with ask() and tell()")
    if hasattr(sampler, "ask") and hasattr(sampler, "tell") and not _is_optuna(sampler):
        return sampler
    if _is_optuna(sampler):
        if not isinstance(space, Space):
            raise TypeError("an Optuna sampler searches a sweep.Space, not a grid")
        return OptunaSampler(space, sampler, directions, seed)
    raise TypeError(f"sampler must be a name ({', '.join(NAMES)}) or an object with ask() and tell(), got {sampler!r}")


def _is_optuna(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("optuna.")


__all__ = ["GridSampler", "NAMES", "OptunaSampler", "RandomSampler", "distributions", "make_sampler"]
