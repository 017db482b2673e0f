"""Flows: what a flow is. Calling one runs it (``engine.run_flow``) and returns its value.

Parameters are validated by pydantic against the function's annotations (unless
``validate_parameters=False``), once per call and off the task hot path: a bad value raises
``ParameterTypeError`` naming the parameter, before any run is recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pydantic

from prefect_like.calls import Definition, decorate_method, reject_reserved, takes_varargs
from prefect_like.errors import ParameterTypeError

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class FlowOptions:
    name: str
    task_runner: Any = "thread"  # a TaskRunner instance, class or registered name
    retries: int = 0
    retry_delay_seconds: float = 0
    timeout_seconds: float | None = None
    validate_parameters: bool = True
    flow_run_name: str | Callable[..., str] | None = None
    log_prints: bool | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")


class Flow(Definition, Generic[P, R], options=FlowOptions):
    """A function whose calls are tracked flow runs of task runs."""

    def __init__(self, fn: Callable[P, R], options: FlowOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.takes_varargs = takes_varargs(self.signature)
        functools.update_wrapper(self, fn)

    def with_options(self, **changes: Any) -> Flow[P, R]:
        return Flow(self.fn, dataclasses.replace(self.options, **changes))

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


def _generated_name() -> str:
    import random

    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randrange(1000):03d}"


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(
    *,
    name: str | None = None,
    task_runner: Any = "thread",
    retries: int = 0,
    retry_delay_seconds: float = 0,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    flow_run_name: str | Callable[..., str] | None = None,
    log_prints: bool | None = None,
    description: str | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(task_runner="dask", retries=1)``."""
    unknown = set(options) - {f.name for f in dataclasses.fields(FlowOptions)}
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
