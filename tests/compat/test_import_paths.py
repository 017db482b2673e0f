"""Prefect 3's import paths with ``prefect`` renamed to ``prefect_like``: those we have resolve
to the same things, and those we do not raise an ImportError that says what to use instead.

Sources: Prefect's src/prefect/__init__.py (``__all__``), the modules its docs import from
(docs/v3/api-ref/python: prefect.futures, prefect.exceptions, prefect.utilities.annotations,
prefect.task_runners, prefect.testing.utilities, prefect.runtime, prefect.cache_policies,
prefect.context, prefect.logging), and prefect-dask's docs (prefect_dask.task_runners,
get_dask_client). The same table is docs/coming-from-prefect.md's.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import prefect_like
from prefect_like import missing
from prefect_like.testing.helpers import PYTHON, REPO_ROOT

PRESENT = [
    ("prefect_like", "flow"), ("prefect_like", "Flow"), ("prefect_like", "task"), ("prefect_like", "Task"),
    ("prefect_like", "State"), ("prefect_like", "tags"), ("prefect_like", "unmapped"),
    ("prefect_like", "allow_failure"), ("prefect_like", "get_run_logger"),
    ("prefect_like.futures", "PrefectFuture"), ("prefect_like.futures", "PrefectFutureList"),
    ("prefect_like.futures", "wait"), ("prefect_like.futures", "as_completed"),
    ("prefect_like.states", "State"), ("prefect_like.states", "StateType"), ("prefect_like.states", "Completed"),
    ("prefect_like.states", "Failed"), ("prefect_like.states", "Crashed"), ("prefect_like.states", "Cancelled"),
    ("prefect_like.states", "Pending"), ("prefect_like.states", "Running"), ("prefect_like.states", "Retrying"),
    ("prefect_like.tasks", "task"), ("prefect_like.tasks", "Task"), ("prefect_like.tasks", "exponential_backoff"),
    ("prefect_like.tasks", "task_input_hash"), ("prefect_like.flows", "flow"), ("prefect_like.flows", "Flow"),
    ("prefect_like.task_runners", "ThreadPoolTaskRunner"), ("prefect_like.task_runners", "ProcessPoolTaskRunner"),
    ("prefect_like.task_runners", "TaskRunner"),
    ("prefect_like.context", "get_run_context"), ("prefect_like.context", "FlowRunContext"),
    ("prefect_like.context", "TaskRunContext"), ("prefect_like.context", "tags"),
    ("prefect_like.logging", "get_run_logger"), ("prefect_like.logging", "get_logger"),
    ("prefect_like.logging", "disable_run_logger"),
    ("prefect_like.runtime", "flow_run"), ("prefect_like.runtime", "task_run"), ("prefect_like.runtime", "deployment"),
    ("prefect_like.cache_policies", "INPUTS"), ("prefect_like.cache_policies", "TASK_SOURCE"),
    ("prefect_like.cache_policies", "RUN_ID"), ("prefect_like.cache_policies", "FLOW_PARAMETERS"),
    ("prefect_like.cache_policies", "NO_CACHE"), ("prefect_like.cache_policies", "NONE"),
    ("prefect_like.cache_policies", "DEFAULT"), ("prefect_like.cache_policies", "CachePolicy"),
    ("prefect_like.cache_policies", "CacheKeyFnPolicy"), ("prefect_like.cache_policies", "Inputs"),
    ("prefect_like.exceptions", "PrefectException"), ("prefect_like.exceptions", "FailedRun"),
    ("prefect_like.exceptions", "CrashedRun"), ("prefect_like.exceptions", "CancelledRun"),
    ("prefect_like.exceptions", "UnfinishedRun"), ("prefect_like.exceptions", "UpstreamTaskError"),
    ("prefect_like.exceptions", "ParameterTypeError"), ("prefect_like.exceptions", "ParameterBindError"),
    ("prefect_like.exceptions", "MappingLengthMismatch"), ("prefect_like.exceptions", "MappingMissingIterable"),
    ("prefect_like.exceptions", "ReservedArgumentError"), ("prefect_like.exceptions", "MissingContextError"),
    ("prefect_like.exceptions", "ObjectNotFound"), ("prefect_like.exceptions", "TerminationSignal"),
    ("prefect_like.exceptions", "SerializationError"),
    ("prefect_like.utilities.annotations", "quote"), ("prefect_like.utilities.annotations", "opaque"),
    ("prefect_like.utilities.annotations", "unmapped"), ("prefect_like.utilities.annotations", "allow_failure"),
    ("prefect_like.testing.utilities", "prefect_test_harness"),
    ("prefect_like_dask", "DaskTaskRunner"), ("prefect_like_dask.task_runners", "DaskTaskRunner"),
    ("prefect_like_dask.task_runners", "get_dask_client"), ("prefect_like_dask.utils", "get_dask_client"),
    ("prefect_like_dask", "get_dask_client"), ("prefect_like_dask", "get_async_dask_client"),
    ("prefect_like_dask.task_runners", "get_async_dask_client"), ("prefect_like_dask.utils", "get_async_dask_client"),
    ("prefect_like_ray", "RayTaskRunner"), ("prefect_like_ray.task_runners", "RayTaskRunner"),
]


@pytest.mark.parametrize("module, name", PRESENT)
def test_prefect_paths_we_have_resolve(module, name):
    # Prefect: src/prefect/__init__.py and each module's public names (see the module docstring)
    assert getattr(importlib.import_module(module), name) is not None


def test_aliases_are_the_same_objects():
    # Prefect: src/prefect/futures.py, src/prefect/utilities/annotations.py (the same classes under Prefect's names)
    from prefect_like.exceptions import UpstreamTaskError
    from prefect_like.futures import FutureList, PrefectFuture, PrefectFutureList, TaskFuture
    from prefect_like.utilities.annotations import quote

    assert PrefectFuture is TaskFuture and PrefectFutureList is FutureList
    assert quote is prefect_like.quote
    assert UpstreamTaskError is prefect_like.errors.UpstreamFailedError


@pytest.mark.parametrize("module", sorted(missing.MODULES))
def test_a_prefect_module_we_do_not_have_says_what_to_use(module):
    # Prefect: the modules of src/prefect/ (blocks, variables, transactions, ...) named in docs/coming-from-prefect.md
    with pytest.raises(ImportError, match="is Prefect's, not prefect-like's: .+") as raised:
        importlib.import_module(module)
    named = str(raised.value).split(" ", 1)[0]
    assert module == named or module.startswith(named + ".")  # prefect_like.blocks.system: its parent's line


@pytest.mark.parametrize("module, name", [(m, n) for m, names in missing.NAMES.items() for n in sorted(names)])
def test_a_prefect_name_we_do_not_have_says_what_to_use(module, name):
    # Prefect: src/prefect/__init__.py (serve, deploy, get_client, pause_flow_run...), src/prefect/exceptions.py
    imported = importlib.import_module(module)
    if name in vars(imported):
        pytest.fail(f"{module}.{name} exists now: take it out of prefect_like.missing.NAMES")
    namespace: dict = {}
    with pytest.raises(ImportError, match=f"^{module}.{name} is Prefect's, not prefect-like's: .+"):
        exec(f"from {module} import {name}", namespace)


def test_other_missing_names_still_raise_attribute_errors():
    # Python: hasattr() and getattr(x, name, default) keep working for names Prefect never had
    assert not hasattr(prefect_like, "no_such_thing")
    assert getattr(prefect_like.exceptions, "NoSuchError", None) is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("prefect_like.no_such_module")


def test_importing_the_package_stays_cheap():
    # DESIGN.md: importing prefect_like does no I/O and imports no engine; the finder is only appended
    code = (
        "import sys, prefect_like; from prefect_like import missing; "
        "print(sys.meta_path[-1] is missing.Finder, any(m in sys.modules for m in ('dask', 'ray', 'distributed')))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["True", "False"], done.stderr
    assert sys.modules["prefect_like"] is prefect_like


def test_the_docs_name_every_missing_path_with_its_hint():
    # docs/coming-from-prefect.md's table of what we do not have is the one ImportErrors give
    page = (REPO_ROOT / "docs" / "coming-from-prefect.md").read_text(encoding="utf-8")
    absent = [f"| `{path}` | {hint} |" for path, hint in missing.table() if f"| `{path}` | {hint} |" not in page]
    assert absent == []
