"""Flows: what a flow is. Calling one runs it (``engine.run_flow``) and returns its value.

Parameters are validated by pydantic against the function's annotations (unless
``validate_parameters=False``), once per call and off the task hot path: a bad value raises
``ParameterTypeError`` naming the parameter, before any run is recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pydantic

from prefect_like.calls import Definition, decorate_method, reject_reserved, takes_varargs
from prefect_like.errors import ParameterTypeError
from prefect_like.hooks import Hooks, StateHooks, check_hooks

P = ParamSpec("P")
R = TypeVar("R")


FLOW_HOOK_OPTIONS = ("on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running")


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """Every option of a flow, Prefect 3's names and defaults (docs/guide/tasks-and-flows.md
    says which are accepted with no effect here)."""

    name: str
    version: str | None = None
    flow_run_name: str | Callable[..., str] | None = None
    retries: int = 0
    retry_delay_seconds: float = 0
    task_runner: Any = "thread"  # a TaskRunner instance, class or registered name
    description: str | None = None
    timeout_seconds: float | None = None
    validate_parameters: bool = True
    # Accepted, no effect: a flow's value is returned to its caller, never persisted; a task's
    # own options say whether its result is.
    persist_result: bool | None = None
    result_storage: Any = None
    result_serializer: Any = None
    cache_result_in_memory: bool = True
    log_prints: bool | None = None
    on_completion: Hooks = ()
    on_failure: Hooks = ()
    on_cancellation: Hooks = ()
    on_crashed: Hooks = ()
    on_running: Hooks = ()

    def __post_init__(self) -> None:
        if self.retries is None:
            object.__setattr__(self, "retries", 0)
        if self.retry_delay_seconds is None:
            object.__setattr__(self, "retry_delay_seconds", 0)
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.timeout_seconds == 0:  # Prefect's way to unset a timeout (``with_options(timeout_seconds=0)``)
            object.__setattr__(self, "timeout_seconds", None)
        if self.timeout_seconds is not None and self.timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be positive (or 0 for none), got {self.timeout_seconds}")
        if self.flow_run_name is not None and not isinstance(self.flow_run_name, str) and not callable(self.flow_run_name):
            raise TypeError(
                f"Expected string or callable for 'flow_run_name'; got {type(self.flow_run_name).__name__} instead."
            )
        for name in FLOW_HOOK_OPTIONS:
            object.__setattr__(self, name, check_hooks("flow", name, getattr(self, name)))


class Flow(StateHooks, Definition, Generic[P, R], options=FlowOptions):
    """A function whose calls are tracked flow runs of task runs."""

    def __init__(self, fn: Callable[P, R], options: FlowOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.takes_varargs = takes_varargs(self.signature)
        functools.update_wrapper(self, fn)
        self.description = options.description or inspect.getdoc(fn)

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A new flow with these options changed (the same names as ``@flow``); the rest kept."""
        unknown = set(changes) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"with_options() got unknown options: {', '.join(sorted(unknown))}")
        flow: Flow[P, R] = Flow(self.fn, dataclasses.replace(self.options, **changes))
        flow.method_kind = self.method_kind
        return flow

    @functools.cached_property
    def version(self) -> str | None:
        """The given version, or as in Prefect a hash of the file the flow is defined in."""
        if self.options.version is not None:
            return self.options.version
        try:
            path = inspect.getsourcefile(self.fn)
            if path is None:
                return None
            with open(path, "rb") as source:
                return hashlib.md5(source.read(), usedforsecurity=False).hexdigest()
        except (OSError, TypeError):
            return None  # defined in a REPL or from a string: no file to hash

    @property
    def should_validate_parameters(self) -> bool:
        return self.options.validate_parameters

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Parameters (by name) validated and coerced against the flow's annotations, defaults
        not added (Prefect's ``Flow.validate_parameters``); ``ParameterTypeError`` names the
        parameter that failed, ``TypeError`` a parameter the flow does not take."""
        unknown = set(parameters) - set(self.signature.parameters)
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values()):
            raise TypeError(f"flow {self.name!r} got unexpected parameters: {', '.join(sorted(unknown))}")
        validated = self.validate((), dict(parameters)) if self.options.validate_parameters else self.bind((), dict(parameters))
        return {name: validated[name] for name in parameters}

    @property
    def parameters(self) -> ParameterSchema:
        """The flow's parameters as a JSON schema (Prefect's ``ParameterSchema``)."""
        return parameter_schema(self)

    # -- state hooks (Prefect's decorators: ``@my_flow.on_failure``) ---------------------------

    def _add_hook(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.options = dataclasses.replace(self.options, **{name: (*getattr(self.options, name), fn)})
        return fn

    def on_cancellation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook called as ``fn(flow, flow_run, state)`` when a run is cancelled (Ctrl-C, SIGTERM)."""
        return self._add_hook("on_cancellation", fn)

    def on_crashed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook called as ``fn(flow, flow_run, state)`` when a run crashes, or is killed by
        a signal it can catch."""
        return self._add_hook("on_crashed", fn)

    @property
    def on_cancellation_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_cancellation)

    @property
    def on_crashed_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_crashed)

    # -- deployments (``prefect_like.deployments``: they need a tracking server) ---------------

    def deploy(self, name: str, *, work_pool: str, **options: Any) -> dict[str, Any]:
        """Store this flow on the tracking server as deployment ``name``, run by the workers of
        ``work_pool`` (options: ``parameters``, ``cron``/``timezone``, ``interval``, ``at``,
        ``tags``, ``retries``)."""
        from prefect_like.deployments import deploy

        return deploy(self, name, work_pool=work_pool, **options)

    def serve(self, name: str, **options: Any) -> None:
        """Run this flow on its schedule (``cron``, ``interval``) and whenever deployment
        ``name`` is triggered, in this process, until Ctrl-C."""
        from prefect_like.deployments import serve

        serve(self, name, **options)

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow; returns its value, or its final State with ``return_state=True``."""
        from prefect_like import engine

        return_state = kwargs.pop("return_state", False)
        if self.is_async:
            return engine.run_flow_async(self, args, kwargs, return_state)
        return engine.run_flow(self, args, kwargs, return_state)

    # -- parameters --------------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied (a method's instance first)."""
        if self.bound_to is not None:
            args = (self.bound_to, *args)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"flow {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def validate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        parameters = self.bind(args, kwargs)
        if not self.options.validate_parameters or self._model is None:
            return parameters
        plain = {
            name: value
            for name, value in parameters.items()
            if self.signature.parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        try:
            model = self._model.model_validate(plain)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']} (got {error.get('input')!r})"
                for error in exc.errors()
            )
            raise ParameterTypeError(f"flow {self.name!r} got invalid parameters: {problems}") from None
        return {**parameters, **{name: getattr(model, name) for name in plain}}

    @functools.cached_property
    def _model(self) -> type[pydantic.BaseModel] | None:
        fields: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[name] = (annotation, default)
        if not fields:
            return None
        try:
            return pydantic.create_model(
                f"{self.name}_parameters",
                __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
                **fields,
            )
        except Exception:
            return None  # annotations pydantic cannot use: run unvalidated rather than refuse

    def run_name(self, parameters: dict[str, Any]) -> str:
        template = self.options.flow_run_name
        if template is None:
            return _generated_name()
        try:
            if callable(template):
                wants = bool(inspect.signature(template).parameters)
                return str(template(**parameters) if wants else template())
            return template.format(**parameters)
        except Exception as exc:
            raise ValueError(f"flow_run_name {template!r} of flow {self.name!r} failed: {exc}") from exc


_ADJECTIVES = ["amber", "brisk", "calm", "daring", "eager", "fuzzy", "gentle", "hardy", "jolly", "keen", "lucid", "mellow", "nimble", "plucky", "quiet", "rapid", "sunny", "tidy", "vivid", "witty"]
_ANIMALS = ["badger", "bison", "crane", "dingo", "egret", "ferret", "gecko", "heron", "ibis", "jackal", "koala", "lemur", "marten", "newt", "otter", "puffin", "quail", "raven", "stoat", "tapir"]


class ParameterSchema(pydantic.BaseModel):
    """A flow's parameters as JSON schema, in the fields Prefect's ``ParameterSchema`` has."""

    title: str = "Parameters"
    type: str = "object"
    properties: dict[str, Any] = pydantic.Field(default_factory=dict)
    required: list[str] = pydantic.Field(default_factory=list)
    definitions: dict[str, Any] = pydantic.Field(default_factory=dict)


def parameter_schema(flow: Flow[..., Any]) -> ParameterSchema:
    """The JSON schema of a flow's parameters, each at its position (``position``), as Prefect
    builds it; a parameter pydantic cannot describe is shown without a type."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    definitions: dict[str, Any] = {}
    for position, (name, parameter) in enumerate(flow.signature.parameters.items()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
        try:
            schema = pydantic.TypeAdapter(annotation).json_schema(ref_template="#/definitions/{model}")
        except Exception:
            schema = {}
        definitions.update(schema.pop("$defs", {}))
        schema["title"] = name
        schema["position"] = position
        if parameter.default is parameter.empty:
            required.append(name)
        else:
            try:
                schema["default"] = pydantic.TypeAdapter(Any).dump_python(parameter.default, mode="json")
            except Exception:
                schema["default"] = repr(parameter.default)
        properties[name] = schema
    return ParameterSchema(properties=properties, required=required, definitions=definitions)


def _generated_name() -> str:
    import random

    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randrange(1000):03d}"


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(FlowOptions))


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(
    *,
    name: str | None = None,
    version: str | None = None,
    flow_run_name: str | Callable[..., str] | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    task_runner: Any = "thread",
    description: str | None = None,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Any = None,
    cache_result_in_memory: bool = True,
    log_prints: bool | None = None,
    on_completion: Iterable[Callable[..., Any]] | None = None,
    on_failure: Iterable[Callable[..., Any]] | None = None,
    on_cancellation: Iterable[Callable[..., Any]] | None = None,
    on_crashed: Iterable[Callable[..., Any]] | None = None,
    on_running: Iterable[Callable[..., Any]] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(task_runner="dask", retries=1)``; every
    option of Prefect 3's ``@flow`` is taken (see ``FlowOptions``)."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"flow() got unknown options: {', '.join(sorted(unknown))}")

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        method = decorate_method(fn, decorate)
        if method is not None:
            return method
        if not callable(fn):
            raise TypeError(f"@flow decorates a function, got {type(fn).__name__}")
        reject_reserved(fn, ("return_state",))
        values = dict(options)
        values["name"] = values.get("name") or getattr(fn, "__name__", "flow").replace("_", "-")
        return Flow(fn, FlowOptions(**values))

    return decorate(__fn) if __fn is not None else decorate
