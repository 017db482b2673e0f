"""Adaptive search: ``optimize`` over a ``Space`` with a sampler and a scheduler, trials that
``report`` intermediate metrics and stop when ``should_prune()``, and sweeps that resume.

The names are re-exported by ``prefect_like.sweep``; import them from there
(``from prefect_like import sweep``; ``sweep.optimize(...)``, ``sweep.report(...)``). Nothing
here imports Optuna until an Optuna sampler is asked for.
"""

from prefect_like.errors import TrialPruned
from prefect_like.search.checkpoints import checkpoint_of, get_checkpoint
from prefect_like.search.optimize import Search, Trial, optimize, resume
from prefect_like.search.reporting import report, should_prune
from prefect_like.search.samplers import GridSampler, OptunaSampler, RandomSampler
from prefect_like.search.schedulers import (
    ASHA,
    Hyperband,
    MedianStopping,
    Scheduler,
    SuccessiveHalving,
)

__all__ = [
    "ASHA",
    "GridSampler",
    "Hyperband",
    "MedianStopping",
    "OptunaSampler",
    "RandomSampler",
    "Scheduler",
    "Search",
    "SuccessiveHalving",
    "Trial",
    "TrialPruned",
    "checkpoint_of",
    "get_checkpoint",
    "optimize",
    "report",
    "resume",
    "should_prune",
]
