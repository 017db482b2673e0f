"""The wire format of the tracking API, as pydantic types.

An event arrives either as an array in ``Event`` field order (what msgpack or JSON makes of the
tuples the Recorder holds) or as an object keyed by field name. Both are validated in
pydantic-core (no Python per field): strict types, so ``"3"`` is not a ``seq`` and ``true`` is
not an int; kinds and state types are closed sets; strings are length-limited. The one check
done in Python is the nesting depth of ``data``, which pydantic cannot express.

A batch is a JSON/msgpack array of events, or an object ``{"events": [...]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired

from pydantic import (
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
from prefect_like.tracking.events import FIELDS

MAX_ID = 200  # run ids are 32-character hex uuids; room for other producers
MAX_NAME = 500
MAX_MESSAGE = 1_000_000  # a state message or a log line; tracebacks travel in ``data``
MAX_DATA_DEPTH = 16
MAX_EVENTS = 100_000  # per request; the HTTP sink sends 10,000

Kind = Literal["flow", "task", "log", "heartbeat"]
if TYPE_CHECKING:
    StateTypeValue = str
else:  # the closed set of state types, as the vocabulary has it (Literal of a tuple: each one)
    StateTypeValue = Literal[STATE_TYPES]
Id = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID)]
Seq = Annotated[int, Strict(), Field(ge=0, le=2**62)]
Timestamp = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0)]
Name = Annotated[str, Strict(), Field(max_length=MAX_NAME)]
Message = Annotated[str, Strict(), Field(max_length=MAX_MESSAGE)]
Data = dict[Annotated[str, Strict()], Any]

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

    Raises ``Problem(422)`` naming every bad field (up to 20), or 413 past ``MAX_EVENTS``.
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
        errors = [
            {"loc": ["body", "events", *_field_loc(err["loc"])], "msg": err["msg"],
             "type": err["type"], "input": _short(err.get("input"))}
            for err in exc.errors(include_url=False)[:20]
        ]
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
                    ), "type": "data_depth"}])
    return events


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
