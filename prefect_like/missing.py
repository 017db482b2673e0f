"""What Prefect 3 has and prefect-like does not: an ImportError that says what to use instead.

A Prefect file with ``prefect`` renamed to ``prefect_like`` should fail, if it fails, at the
import that names a missing feature, with one line saying what to do, not with
``No module named ...`` or ``cannot import name ...``. Two places give that line:

- ``Finder``, last on ``sys.meta_path``: asked only for a ``prefect_like.*`` module no other
  finder found, so a module that exists always wins, and a module added later needs no edit
  here. For a name in ``MODULES`` it raises the hint; for any other it finds nothing.
- ``missing_name(module, name)``, from a module's ``__getattr__``
  (``from prefect_like import serve``): the hint for a name in ``NAMES``, else the usual
  AttributeError. Python passes an ImportError raised there through ``from ... import``.

Installing the finder is one list append; nothing here runs until an import fails.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

NO_PLATFORM = "prefect-like is a library, not an orchestration platform"

# Prefect 3 modules with no counterpart here, and what to do instead.
MODULES: dict[str, str] = {
    "prefect_like.automations": f"there are no automations ({NO_PLATFORM}); react to a run's end with state "
    "hooks: @flow(on_failure=[...]) or @task(on_completion=[...])",
    "prefect_like.blocks": f"there are no blocks ({NO_PLATFORM}); pass paths, URLs and secrets as parameters or "
    "environment variables",
    "prefect_like.blocks.system": f"there are no blocks ({NO_PLATFORM}); read a secret from an environment variable",
    "prefect_like.docker": "there are no Docker images or work pools here; run the flow script where it should run",
    "prefect_like.events": "there are no events or automations; read runs with prefect_like.client.connect() or "
    "the tracking API, or use state hooks",
    "prefect_like.filesystems": "there are no filesystem blocks; give result_storage a folder path "
    "(@task(result_storage='/data/results')) or a prefect_like.results.ResultStorage",
    "prefect_like.serializers": "results are always cloudpickle files; result_serializer= is accepted and has no effect",
    "prefect_like.transactions": "there are no transactions; a task's cache policy (cache_policy=INPUTS, "
    "isolation_level='SERIALIZABLE') gives the idempotency, and on_commit/on_rollback are accepted and never called",
    "prefect_like.variables": f"there are no variables ({NO_PLATFORM}); use environment variables or flow parameters",
    "prefect_like.input": "there is no pausing for input: a flow run cannot pause or suspend",
    "prefect_like.assets": "there are no assets; return metrics as a dict and read them with prefect_like.sweep.results()",
    "prefect_like.task_worker": "there are no background task workers or task.delay(); submit tasks from a flow",
    "prefect_like.schedules": "a schedule is given to flow.deploy()/flow.serve() as cron=, interval=, timezone= or "
    "at= (docs/guide/deployments.md)",
    "prefect_like.workers": "a worker is `prefect-like worker start --pool P` (prefect_like.worker); there are no "
    "worker classes to import",
    "prefect_like.plugins": "there is no plugin system; runners are found by the entry-point group "
    "prefect_like.task_runners",
    "prefect_like.utilities.asyncutils": "use asyncio directly: async flows and tasks are awaited as they are",
}

_PAUSE = "a flow run cannot pause or suspend here; split the work into two flow runs"
_SERVE = ("serve and deploy are flow methods here: my_flow.serve(name, cron=...), my_flow.deploy(name, "
          "work_pool=...), or prefect_like.deployments.serve/deploy/run_deployment; there is no async form")

# Names Prefect 3 modules have and ours do not: module -> name -> what to do instead.
NAMES: dict[str, dict[str, str]] = {
    "prefect_like": {
        "serve": _SERVE,
        "aserve": _SERVE,
        "deploy": _SERVE,
        "get_client": "read runs with prefect_like.client.connect() (the embedded store or PREFECT_LIKE_API_URL)",
        "pause_flow_run": _PAUSE,
        "resume_flow_run": _PAUSE,
        "suspend_flow_run": _PAUSE,
        "apause_flow_run": _PAUSE,
        "aresume_flow_run": _PAUSE,
        "asuspend_flow_run": _PAUSE,
        "Transaction": MODULES["prefect_like.transactions"],
    },
    "prefect_like.exceptions": {
        "PausedRun": _PAUSE,
        "Pause": _PAUSE,
        "NotPausedError": _PAUSE,
        "FlowPauseTimeout": _PAUSE,
        "Abort": "a run is ended by raising or by returning a State (return Failed(message=...))",
        "MissingResult": "a result not persisted is simply not cached: the task runs again",
        "BlockMissingCapabilities": MODULES["prefect_like.blocks"],
        "ProtectedBlockError": MODULES["prefect_like.blocks"],
        "ObjectAlreadyExists": "the store is written by events; nothing is created twice",
        "InfrastructureError": "there is no infrastructure layer here",
        "InfrastructureNotFound": "there is no infrastructure layer here",
        "InfrastructureNotAvailable": "there is no infrastructure layer here",
        "PrefectHTTPStatusError": "the tracker's HTTP errors are prefect_like.errors.TrackingError",
        "ScriptError": "a flow script that fails to load raises its own error from `prefect-like run`",
        "MissingFlowError": "`prefect-like run flow.py:FLOW` names the flow; a missing one is a one-line error",
        "SignatureMismatchError": "a bad call raises TypeError naming the parameter",
        "FlowRunWaitTimeout": "a flow call returns when the run ends; use timeout_seconds= on the flow",
        "ConfigurationError": "settings are environment variables (PREFECT_LIKE_*); a bad one is a one-line error",
    },
}


class MissingFromPrefect(ImportError):
    """A Prefect 3 module or name prefect-like does not have; the message says what to use."""


def _error(what: str, hint: str) -> MissingFromPrefect:
    return MissingFromPrefect(f"{what} is Prefect's, not prefect-like's: {hint}")


def missing_name(module: str, name: str) -> Exception:
    """What ``module.__getattr__(name)`` raises: the hint for a Prefect name, else AttributeError."""
    hint = NAMES.get(module, {}).get(name)
    if hint is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    error = _error(f"{module}.{name}", hint)
    error.name, error.path = module, None
    return error


class Finder:
    """Last on ``sys.meta_path``: the hint for a Prefect module that exists nowhere here."""

    @classmethod
    def find_spec(cls, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        hint = MODULES.get(fullname)
        if hint is not None:
            raise _error(fullname, hint)
        return None

    @classmethod
    def invalidate_caches(cls) -> None:
        pass


def install() -> None:
    """Put ``Finder`` last on ``sys.meta_path`` (once)."""
    if Finder not in sys.meta_path:
        sys.meta_path.append(Finder)


def table() -> list[tuple[str, str]]:
    """Every Prefect path named here with its hint, for the docs."""
    rows = [(name.replace("prefect_like", "prefect", 1), hint) for name, hint in MODULES.items()]
    for module, names in NAMES.items():
        prefect = module.replace("prefect_like", "prefect", 1)
        rows.extend((f"{prefect}.{name}" if module != "prefect_like" else f"prefect.{name}", hint)
                    for name, hint in names.items())
    return sorted(rows)


__all__: list[str] = ["MODULES", "NAMES", "Finder", "MissingFromPrefect", "install", "missing_name", "table"]
