"""Where futures hide in what a task is given: the one walker over call arguments.

Every place that looks for futures in a task's arguments, or in a flow's return value, walks
with ``walk``: a task call collecting its upstream futures, the engine replacing them with
their results, a distributed runner swapping them for placeholders before shipping a call (and
back on the worker), a flow resolving what its body returned. So all of them agree on where a
future can be (as Prefect's ``visit_collection`` does):

- lists, tuples (named tuples too), sets, frozensets and dicts, and their subclasses; a
  ``FutureList`` is rebuilt as a plain list;
- dataclass instances and pydantic models, field by field (rebuilt as copies, the original is
  never changed);
- inside ``allow_failure(...)`` and ``unmapped(...)``.

Anything else is a leaf. ``quote(x)`` (and its alias ``opaque``) stops the walk: ``x`` reaches
the task whole and unvisited, which also saves walking a big collection that holds no future.

A walk only rebuilds what holds a target: an argument with no future in it comes back as the
very same object, and the common case (a scalar) costs one set lookup.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pydantic

from prefect_like.futures import FutureList

T = TypeVar("T")

# Types that never hold a future: checked first, so a scalar argument costs one lookup.
LEAVES = frozenset({int, float, str, bool, type(None), bytes, complex})
MAX_DEPTH = 64  # deeper than this is taken for a leaf (and a self-referencing list ends)


class Annotation(Generic[T]):
    """A wrapper around one argument that tells prefect-like how to treat it."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def rewrap(self, value: Any) -> Annotation[Any]:
        return type(self)(value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.value == self.value

    def __hash__(self) -> int:
        try:
            return hash((type(self), self.value))
        except TypeError:
            return hash((type(self), id(self.value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value,))


class unmapped(Annotation[T]):  # noqa: N801 - the name Prefect users know
    """Wrap a ``Task.map`` argument to pass it whole to every call instead of iterating it."""


class allow_failure(Annotation[T]):  # noqa: N801 - the name Prefect users know
    """Wrap an upstream future so the downstream task runs even if the upstream failed.

    The downstream receives the upstream's result, or its exception if it did not complete.
    """

    @property
    def future(self) -> T:
        return self.value


class quote(Annotation[T]):  # noqa: N801 - the name Prefect users know
    """Pass the value to the task as it is: not searched for futures, not resolved.

    For a big collection that holds no future, it also saves the walk over every item.
    """

    def unquote(self) -> T:
        return self.value


opaque = quote


def walk(
    value: Any,
    visit: Callable[[Any, bool], Any],
    targets: tuple[type, ...],
    unwrap: bool = False,
    allowed: bool = False,
    depth: int = 0,
) -> Any:
    """``value`` with every instance of ``targets`` inside it replaced by ``visit(it, allowed)``.

    ``allowed`` tells ``visit`` the target was inside ``allow_failure``. With ``unwrap`` the
    annotations are taken off (what the task function receives); without, they are kept
    around the rebuilt values (what a shipped call carries). What holds no target is returned
    as the same object, so a ``visit`` that returns its argument only collects.
    """
    kind = type(value)
    if kind in LEAVES or depth > MAX_DEPTH:
        return value
    if isinstance(value, targets):
        return visit(value, allowed)
    if isinstance(value, Annotation):
        if kind is quote:
            return value.value if unwrap else value
        inner = walk(value.value, visit, targets, unwrap, allowed or kind is allow_failure, depth + 1)
        if unwrap:
            return inner
        return value if inner is value.value else value.rewrap(inner)
    depth += 1
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [walk(item, visit, targets, unwrap, allowed, depth) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)) and type(value) is not FutureList:
            return value
        return _rebuild_sequence(value, items)
    if isinstance(value, dict):
        pairs = []
        changed = False
        for key, item in value.items():
            new_key = key if type(key) in LEAVES else walk(key, visit, targets, unwrap, allowed, depth)
            new = walk(item, visit, targets, unwrap, allowed, depth)
            changed = changed or new is not item or new_key is not key
            pairs.append((new_key, new))
        if not changed:
            return value
        if kind is dict:
            return dict(pairs)
        rebuilt = copy.copy(value)
        rebuilt.clear()
        rebuilt.update(pairs)
        return rebuilt
    if isinstance(value, pydantic.BaseModel):
        updates = {}
        for name in type(value).model_fields:
            item = getattr(value, name, None)
            new = walk(item, visit, targets, unwrap, allowed, depth)
            if new is not item:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name, None)
            new = walk(item, visit, targets, unwrap, allowed, depth)
            if new is not item:
                fields[field.name] = new
        if not fields:
            return value
        rebuilt = copy.copy(value)  # type: ignore[arg-type]
        for name, new in fields.items():
            object.__setattr__(rebuilt, name, new)  # frozen dataclasses too
        return rebuilt
    return value


def _rebuild_sequence(value: Any, items: list[Any]) -> Any:
    kind = type(value)
    if kind is list or kind is FutureList:
        return items
    if kind in (tuple, set, frozenset):
        return kind(items)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return kind(*items)
    try:
        return kind(items)
    except Exception:  # a subclass whose constructor wants something else
        base = next(b for b in (list, tuple, set, frozenset) if isinstance(value, b))
        return base(items)


# -- definitions on methods, and reserved argument names -------------------------------------------


def decorate_method(fn: Any, decorate: Callable[[Any], Any]) -> Any:
    """The definition of the function inside a ``classmethod`` or ``staticmethod`` (Prefect 3
    supports ``@flow`` and ``@task`` above either), marked so its ``__get__`` binds the class or
    nothing; None if ``fn`` is neither."""
    for kind, name in ((classmethod, "class"), (staticmethod, "static")):
        if isinstance(fn, kind):
            definition = decorate(fn.__func__)
            definition.method_kind = name
            return definition
    return None


class _Option:
    """An option read as the definition's attribute (``task.retries``). Not a data descriptor:
    what an instance sets itself (``task.name``) comes first."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: Any) -> Any:
        return self if instance is None else getattr(instance.options, self.name)


class Definition:
    """What a task and a flow share as definitions of a function: how it is called with bound
    parameters, how it binds as a method, and Prefect's attributes (``task.retries``,
    ``flow.timeout_seconds``...), which are its options.

    A subclass names its options' dataclass (``class Task(Definition, options=TaskOptions)``)
    and each field becomes an attribute of the class. Not ``__getattr__``: CPython does not
    specialise any attribute read on a class that has one, and a task's attributes are read a
    dozen times in each of its runs."""

    fn: Callable[..., Any]
    name: str
    signature: Any
    options: Any
    takes_varargs: bool = False  # *args or **kwargs: called with the arguments rebuilt
    bound_to: Any = None  # the instance (or class) of a method, its first argument
    method_kind: str | None = None  # "class" or "static" above classmethod/staticmethod

    def call_function(self, parameters: dict[str, Any]) -> Any:
        """Call the function with bound parameters (what binding made of a call's arguments)."""
        fn = self.fn
        if not self.takes_varargs:
            return fn(**parameters)
        bound = self.signature.bind_partial()
        bound.arguments.update(parameters)
        return fn(*bound.args, **bound.kwargs)

    def __get__(self, instance: Any, owner: Any) -> Any:
        """Bound to the instance, or the class for a classmethod; itself when read from the class."""
        kind = self.method_kind
        if kind == "static" or (instance is None and kind != "class"):
            return self
        bound = copy.copy(self)
        bound.bound_to = owner if kind == "class" else instance
        return bound

    if TYPE_CHECKING:  # what type checkers see of the options made attributes

        def __getattr__(self, name: str) -> Any: ...

    def __init_subclass__(cls, options: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if options is not None:
            # What the class declares its instances set (``name``, say) is theirs: a descriptor
            # behind an instance's own attribute would only slow its reads.
            declared = {name for klass in cls.__mro__ for name in klass.__dict__.get("__annotations__", {})}
            for field in dataclasses.fields(options):
                if field.name not in declared and not hasattr(cls, field.name):
                    setattr(cls, field.name, _Option(field.name))


def takes_varargs(signature: Any) -> bool:
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())


def reject_reserved(fn: Callable[..., Any], reserved: tuple[str, ...]) -> None:
    """A parameter named like a reserved keyword of calls cannot be passed: refuse the definition."""
    import inspect

    from prefect_like.errors import ReservedArgumentError

    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    for name in reserved:
        if name in names:
            raise ReservedArgumentError(f"{name!r} is a reserved argument name and cannot be used.")
