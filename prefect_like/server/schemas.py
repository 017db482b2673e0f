"""The wire format of the tracking API, as pydantic types.

An event arrives either as an array in ``Event`` field order (what msgpack or JSON makes of the
tuples the Recorder holds) or as an object keyed by field name. Both are validated in
pydantic-core (no Python per field): strict types, so ``"3"`` is not a ``seq`` and ``true`` is
not an int; kinds and state types are closed sets; ids are length-limited and names past
``MAX_NAME`` are cut. What the
store reads of ``data`` (names, map index, run count, duration, the created and started times,
a flow run's counts) is typed the same way; its other keys are kept as they are. Timestamps are
seconds since the epoch in the range ``limits`` gives, integers fit SQLite, and floats are
finite, so nothing stored can later break a read. Done in Python: the nesting depth of
``data``, which pydantic cannot express, and cutting long texts (``limits.clip_event``): a
message, a log line or an error too long is stored cut, never refused.

A batch is a JSON/msgpack array of events, or an object ``{"events": [...]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from prefect_like.states import STATE_TYPES
from prefect_like.tracking.events import FIELDS, KINDS
from prefect_like.tracking.limits import MAX_INT, MAX_TIMESTAMP, MIN_INT, clip_event

MAX_ID = 200  # run ids are 32-character hex uuids; room for other producers
MAX_NAME = 500
MAX_DATA_DEPTH = 16
MAX_EVENTS = 100_000  # per request; the HTTP sink sends 10,000

if TYPE_CHECKING:
    Kind = str
    StateTypeValue = str
else:  # the closed sets of event kinds and state types, from where they are defined
    Kind = Literal[KINDS]
    StateTypeValue = Literal[STATE_TYPES]
Id = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID)]
Seq = Annotated[int, Strict(), Field(ge=0, le=2**62)]
Timestamp = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=MAX_TIMESTAMP)]


def _cut_name(name: str) -> str:
    """A name past ``MAX_NAME`` (a templated task run name, say) is cut, never refused: refusing
    it would lose the run's event. A cut name is exactly ``MAX_NAME`` long, so cutting is
    idempotent (a batch sent twice stores once)."""
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


Name = Annotated[str, Strict(), AfterValidator(_cut_name)]
Message = Annotated[str, Strict()]  # any length: a long one is cut, not refused
Integer = Annotated[int, Strict(), Field(ge=MIN_INT, le=MAX_INT)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_INT)]
Seconds = Annotated[float, Strict(), Field(allow_inf_nan=False)]


# One report in a metric event's ``points``: [seq, timestamp, step, metrics].
Point = tuple[Seq, Timestamp, Seconds | None, dict[Annotated[str, Strict()], Seconds | None] | None]


class Data(TypedDict):
    """An event's ``data``: the keys the store reads are typed; any other key is kept as is."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    task_name: NotRequired[Name | None]
    map_index: NotRequired[Integer | None]
    name: NotRequired[Name | None]
    tags: NotRequired[list[Name] | None]
    run_count: NotRequired[Count | None]
    duration: NotRequired[Seconds | None]
    created: NotRequired[Timestamp | None]
    started: NotRequired[Timestamp | None]
    step: NotRequired[Seconds | None]
    metrics: NotRequired[dict[Annotated[str, Strict()], Seconds | None] | None]  # a report's numbers
    points: NotRequired[list[Point] | None]  # several reports of one task run
    flow_name: NotRequired[Name | None]
    runner: NotRequired[Name | None]
    parent_task_run_id: NotRequired[Id | None]
    task_runs: NotRequired[dict[Annotated[str, Strict()], Count] | None]
    logger: NotRequired[Name | None]
    key: NotRequired[Name | None]  # an artifact's
    description: NotRequired[Message | None]
    task_run_id: NotRequired[Id | None]


# Array form, in Event field order.
EventArray = tuple[
    Kind, Id, Seq, Id | None, Timestamp, StateTypeValue | None, Name | None, Message | None,
    Data | None,
]


class EventObject(TypedDict):
    """Object form: the Event fields by name; unknown keys are refused."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    kind: Kind
    run_id: Id
    seq: Seq
    timestamp: Timestamp
    flow_run_id: NotRequired[Id | None]
    state_type: NotRequired[StateTypeValue | None]
    state_name: NotRequired[Name | None]
    message: NotRequired[Message | None]
    data: NotRequired[Data | None]


def _form(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array"


EventIn = Annotated[
    Annotated[EventArray, Tag("array")] | Annotated[EventObject, Tag("object")],
    Discriminator(_form),
]

_BATCH = TypeAdapter(list[EventIn])

# The same batch as the OpenAPI document shows it (request bodies are parsed by hand).


class EventBatch(BaseModel):
    """``{"events": [...]}``; a bare array of events is accepted as well."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(max_length=MAX_EVENTS)


class BatchAccepted(BaseModel):
    accepted: int


class Problem(Exception):
    """A request body that cannot be accepted: ``status`` and a list of readable errors."""

    def __init__(self, status: int, errors: list[dict[str, Any]] | str) -> None:
        super().__init__(errors if isinstance(errors, str) else errors[0].get("msg"))
        self.status = status
        self.errors = errors


_NESTED = (dict, list, tuple)


def _too_deep(value: Any, limit: int) -> bool:
    """True if ``value`` nests dicts/lists more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if item.__class__ is dict else item:
            if child.__class__ in _NESTED:
                stack.append((child, depth + 1))
    return False


def parse_batch(payload: Any) -> list[Any]:
    """A decoded request body as event tuples in Event field order, ready for ``Store.write``.

    Raises ``Problem(422)`` naming every bad field (up to 20) and its event, or 413 past
    ``MAX_EVENTS``. Long texts come back cut (``limits.clip_event``).
    """
    if isinstance(payload, dict):
        extra = set(payload) - {"events"}
        if "events" not in payload or extra:
            raise Problem(422, [{"loc": ["body"], "msg": (
                "a batch is an array of events or an object {\"events\": [...]}"
                + (f"; unknown keys {sorted(map(str, extra))[:5]}" if extra else "")
            ), "type": "batch_shape"}])
        payload = payload["events"]
    if not isinstance(payload, list):
        raise Problem(422, [{"loc": ["body"], "msg": (
            f"a batch is an array of events, got {type(payload).__name__}"
        ), "type": "batch_shape"}])
    if len(payload) > MAX_EVENTS:
        raise Problem(413, f"a batch holds at most {MAX_EVENTS} events, got {len(payload)}; send smaller batches")
    try:
        validated = _BATCH.validate_python(payload)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False)[:20]:
            loc = _field_loc(err["loc"])
            error = {"loc": ["body", "events", *loc], "msg": _explain(loc, err), "type": err["type"],
                     "input": _short(err.get("input"))}
            if loc and isinstance(loc[0], int):
                error["event"] = _event_id(payload[loc[0]])
            errors.append(error)
        raise Problem(422, errors) from None
    # The store takes any 9-sequence in Event order: no Event objects are built here.
    events: list[Any] = validated
    for i, given in enumerate(validated):
        item: Any = given
        if type(item) is dict:
            item = events[i] = tuple(item.get(name) for name in FIELDS)
        data = item[8]
        if data:
            for value in data.values():
                if value.__class__ in _NESTED and _too_deep(value, MAX_DATA_DEPTH - 1):
                    raise Problem(422, [{"loc": ["body", "events", i, "data"], "msg": (
                        f"data nests deeper than {MAX_DATA_DEPTH} levels"
                    ), "type": "data_depth", "event": _event_id(item)}])
        clipped = clip_event(item)
        if clipped is not item:
            events[i] = clipped
    return events


_TIMES = ("timestamp", "created", "started")
_RANGE_ERRORS = ("greater_than_equal", "less_than_equal", "finite_number")


def _explain(loc: list[Any], err: Any) -> str:
    """pydantic's message, or for a timestamp out of range, what a timestamp is."""
    if not (loc and loc[-1] in _TIMES and err["type"] in _RANGE_ERRORS):
        return str(err["msg"])
    given = err.get("input")
    hint = " (milliseconds or nanoseconds?)" if isinstance(given, (int, float)) and given > MAX_TIMESTAMP else ""
    return (f"a timestamp is seconds since the epoch, from 0 to {MAX_TIMESTAMP:.0f} (the year 3000); "
            f"got {given!r}{hint}")


def _event_id(given: Any) -> str | None:
    """``kind:run_id:seq`` of an event as sent, for an error message (None if it has none)."""
    try:
        if isinstance(given, dict):
            parts = [given.get("kind"), given.get("run_id"), given.get("seq")]
        else:
            parts = list(given[:3])
    except (TypeError, KeyError):
        return None
    return _short(":".join(map(str, parts)))


def _field_loc(loc: tuple[Any, ...]) -> list[Any]:
    """``(3, "array", 2)`` as ``[3, "seq"]``: name the field, drop the form's tag."""
    if len(loc) >= 2 and loc[1] in ("array", "object"):
        rest = list(loc[2:])
        if loc[1] == "array" and rest and isinstance(rest[0], int) and rest[0] < len(FIELDS):
            rest[0] = FIELDS[rest[0]]
        return [loc[0], *rest]
    return list(loc)


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 200 and isinstance(value, (str, int, float, bool, type(None))) else text[:200]
