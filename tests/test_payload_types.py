"""Payload rules written down at attach and rebuilt elsewhere accept exactly what the API accepts.

The property: for an aggregate spec ``original`` and the spec rebuilt from its stored document,
``decode_payload`` accepts the same payloads, picks the same aggregate id and refuses the rest
with the same message. Checked on a spec with every kind of field msgspec knows, and on specs of
random command types, with payloads generated from the types (mostly near-valid) and at random.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, Optional, TypedDict

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reventless._payload_types import PayloadCheck, _describe_spec, describe_payload
from reventless.aggregate import Aggregate, AggregateSpec
from reventless.command_topic import CommandTopic
from reventless.errors import UsageError, ValidationError
from reventless.event_topic import EventTopic
from reventless.testing import VirtualClock

# -- a spec with every kind of field --------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Mode(enum.StrEnum):
    ON = "on"
    OFF = "off"


class Point(msgspec.Struct, tag=True):
    x: int
    y: int = 0


class Circle(msgspec.Struct, tag="circle", tag_field="shape"):
    r: Annotated[float, msgspec.Meta(gt=0)]


class Square(msgspec.Struct, tag="square", tag_field="shape", forbid_unknown_fields=True):
    side: int


class Pair(msgspec.Struct, array_like=True):
    a: int
    b: str = "x"


class Tree(msgspec.Struct):
    value: int
    children: list[Tree] = []


class Options(TypedDict, total=False):
    verbose: bool
    depth: int


class Span(NamedTuple):
    start: int
    end: int = 10


@dataclasses.dataclass
class Window:
    size: int
    label: str | None = None


class Everything(msgspec.Struct, tag=True, rename="camel", kw_only=True):
    count_to: Annotated[int, msgspec.Meta(ge=0, le=100, multiple_of=5)] = 0
    ratio: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] | None = None
    code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}[0-9]$", min_length=3, max_length=3)] = (
        "AB1"
    )
    flag: bool = False
    at: datetime | None = None
    aware_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    naive_at: Annotated[datetime, msgspec.Meta(tz=False)] | None = None
    on: date | None = None
    clock: time | None = None
    wait: timedelta | None = None
    ident: uuid.UUID | None = None
    amount: Decimal | None = None
    blob: Annotated[bytes, msgspec.Meta(max_length=4)] | None = None
    color: Color = Color.RED
    level: Level = Level.LOW
    mode: Mode = Mode.ON
    kind: Literal["a", "b", 3] = "a"
    tags: Annotated[list[str], msgspec.Meta(max_length=3)] = []
    unique: set[int] = set()
    frozen: frozenset[str] = frozenset()
    many: tuple[int, ...] = ()
    fixed: tuple[int, str] | None = None
    by_name: dict[str, int] = {}
    by_number: dict[int, str] = {}
    shape: Circle | Square | None = None
    point: Point | None = None
    pair: Pair | None = None
    tree: Tree | None = None
    options: Options | None = None
    span: Span | None = None
    window: Window | None = None
    anything: Any = None
    raw: msgspec.Raw | None = None
    number: int | str | None = None


class Ping(msgspec.Struct, tag=True):
    pass


class Move(msgspec.Struct, tag="move", tag_field="kind"):
    to: Point
    type: str = "walk"


class Happened(msgspec.Struct, tag=True):
    pass


def make_spec(**extra: Any) -> AggregateSpec[Any]:
    return AggregateSpec(
        "thing",
        commands=[Everything, Ping, Move],
        events=[Happened],
        initial=0,
        decide=lambda state, command, context: [],
        evolve=lambda state, event: state,
        **extra,
    )


def topic_of(spec: AggregateSpec[Any]) -> CommandTopic:
    return CommandTopic(
        Aggregate(
            spec, _NoLog(), VirtualClock(datetime(2026, 1, 1, tzinfo=UTC)), EventTopic(spec.name)
        )
    )  # type: ignore[arg-type]


class _NoLog:
    """Never used: decode_payload reads no events."""


def rebuilt(spec: AggregateSpec[Any]) -> PayloadCheck:
    text = describe_payload(topic_of(spec))
    assert text is not None
    check = PayloadCheck(text, "command topic")
    assert check.checks, check.notes
    return check


def outcome(check: Any, payload: str) -> tuple[str, str]:
    """("ok", aggregate id) or ("refused", message)."""
    try:
        aggregate_id, _ = check(payload)
    except ValidationError as exc:
        return "refused", str(exc)
    return "ok", aggregate_id


# -- payloads from the stored description ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _builtins(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy.map(msgspec.to_builtins)


_LEAF_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "any": json_values,
    "none": st.none(),
    "bool": st.booleans(),
    "str": st.text(max_size=6) | st.from_regex(r"[A-Z]{2}[0-9]", fullmatch=True),
    "bytes": _builtins(st.binary(max_size=6)),
    "bytearray": _builtins(st.binary(max_size=6)),
    "memoryview": _builtins(st.binary(max_size=6)),
    "datetime": _builtins(st.datetimes(timezones=st.none() | st.just(UTC))),
    "time": _builtins(st.times(timezones=st.none() | st.just(UTC))),
    "date": _builtins(st.dates()),
    "timedelta": _builtins(st.timedeltas()),
    "uuid": _builtins(st.uuids()),
    "decimal": _builtins(st.decimals(allow_nan=False, allow_infinity=False, places=3)),
    "raw": json_values,
    "opaque": json_values,
}


def _numbers(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    bounds = [node[k] for k in ("gt", "ge", "lt", "le", "multiple_of") if k in node]
    near = (
        st.sampled_from(bounds).flatmap(lambda b: st.sampled_from([b - 1, b, b + 1, b * 2, b / 2]))
        if bounds
        else st.nothing()
    )
    if node["kind"] == "int":
        return st.integers(-(2**65), 2**65) | st.integers(-20, 120) | near
    return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-3, 3) | near


def values(node: dict[str, Any], types: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for a described type: mostly of its shape, sometimes anything JSON."""
    if depth > 4:
        return json_values
    return _shaped(node, types, depth) | json_values if depth else _shaped(node, types, depth)


def _shaped(node: dict[str, Any], types: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    kind = node["kind"]
    if kind in _LEAF_VALUES:
        return _LEAF_VALUES[kind]
    if kind in ("int", "float"):
        return _numbers(node)
    if kind in ("enum", "literal"):
        return st.sampled_from(node["values"])
    if kind == "union":
        return st.one_of([values(t, types, depth + 1) for t in node["types"]])
    if kind in ("list", "set", "frozenset", "vartuple"):
        return st.lists(values(node["item"], types, depth + 1), max_size=4)
    if kind == "tuple":
        return st.tuples(*(values(t, types, depth + 1) for t in node["items"])).map(list)
    if kind in ("dict", "frozendict"):
        keys = values(node["key"], types, depth + 1).map(str) | st.text(max_size=3)
        return st.dictionaries(keys, values(node["value"], types, depth + 1), max_size=3)
    assert kind == "ref", kind
    return _object(types[node["id"]], types, depth)


def _object(entry: dict[str, Any], types: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    fields = {f["name"]: values(f["type"], types, depth + 1) for f in entry["fields"]}
    if entry["kind"] in ("namedtuple",) or entry.get("array_like"):
        return st.tuples(*fields.values()).flatmap(
            lambda items: st.integers(0, len(items)).map(lambda n: list(items[:n]))
        )
    required = {f["name"] for f in entry["fields"] if f["required"]}
    tag: dict[str, Any] = {}
    if entry.get("tag") is not None:
        tag = {entry["tag_field"]: st.sampled_from([entry["tag"], "other"])}
    return st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in required},
        optional={**{k: v for k, v in fields.items() if k not in required}, **tag},
    )


@st.composite
def payloads(draw: st.DrawFn, document: dict[str, Any]) -> str:
    """A payload for one of the document's commands, in either form, or something else."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.text(max_size=20) | json_values.map(json.dumps))
    tag = draw(st.sampled_from(sorted(document["commands"])) | st.text(max_size=4))
    ref = document["commands"].get(tag)
    body: dict[str, Any] = {}
    if ref is not None:
        fields = draw(_object(document["types"][ref], document["types"], 1))
        body = fields if isinstance(fields, dict) else {"items": fields}
    body[draw(st.sampled_from(["command", "type"]))] = tag
    ids = st.sampled_from(["u-1", "u-2", "", "bad id", "x" * 201]) | st.none() | st.integers()
    if draw(st.booleans()):
        body["aggregateId"] = draw(ids)
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=6))] = draw(json_values)
    return json.dumps(body)


# -- the properties -------------------------------------------------------------------------------

ROUTED = make_spec(route={"Ping": "pinger", "Everything": "u-1"})
ROUTED_CHECK = rebuilt(ROUTED)
KNOWN = make_spec(accepts_id={"u-1", "u-2"})
KNOWN_CHECK = rebuilt(KNOWN)
ROUTED_DOCUMENT = _describe_spec(ROUTED)


@given(payload=payloads(ROUTED_DOCUMENT))
def test_rebuilt_rules_decide_every_payload_as_the_aggregate_does(payload: str) -> None:
    for spec, check in ((ROUTED, ROUTED_CHECK), (KNOWN, KNOWN_CHECK)):
        expected = outcome(spec.decode_payload, payload)
        assert outcome(check._spec.decode_payload, payload) == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "payload",
    [
        '{"command": "Everything", "countTo": 10}',
        '{"command": "Everything", "countTo": 10.0}',
        '{"command": "Everything", "countTo": 7}',
        '{"command": "Everything", "byNumber": {"1": "a"}}',
        '{"command": "Everything", "awareAt": "2026-01-01T00:00:00"}',
        '{"command": "Everything", "naiveAt": "2026-01-01T00:00:00Z"}',
        '{"command": "Everything", "shape": {"shape": "square", "side": 2, "extra": 1}}',
        '{"command": "Everything", "shape": {"shape": "circle", "r": 0}}',
        '{"command": "Everything", "tree": {"value": 1, "children": [{"value": "x"}]}}',
        '{"command": "Everything", "pair": [1]}',
        '{"command": "Everything", "span": [1, 2, 3]}',
        '{"command": "Everything", "options": {"verbose": 1}}',
        '{"command": "Everything", "window": {"label": "w"}}',
        '{"command": "Everything", "unique": [1, 1]}',
        '{"command": "Everything", "level": 5, "mode": "on", "color": "RED"}',
        '{"command": "Everything", "count_to": 5}',
        '{"command": "Everything", "blob": "AAAAAAA="}',
        '{"type": "move", "aggregateId": "u-1", "to": {"x": 1}, "kind": "move"}',
        '{"command": "move", "aggregateId": "u-1", "to": {"x": 1, "type": "Point"}, "type": "run"}',
        '{"command": "Ping", "aggregateId": null}',
        '{"type": "Ping", "command": "Ping"}',
        '["Ping"]',
        "not json",
    ],
)
def test_examples_on_the_edges_of_msgspec_are_decided_alike(payload: str) -> None:
    """Where a JSON Schema reading would differ from msgspec: floats for ints, int dict keys,
    time zones, tags, unknown fields of one struct, array-like structs."""
    for spec, check in ((ROUTED, ROUTED_CHECK), (KNOWN, KNOWN_CHECK)):
        expected = outcome(spec.decode_payload, payload)
        assert outcome(check._spec.decode_payload, payload) == expected  # type: ignore[union-attr]


# -- random command types ------------------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _meta(draw: st.DrawFn, **choices: st.SearchStrategy[Any]) -> dict[str, Any]:
    return {key: draw(strategy) for key, strategy in choices.items() if draw(st.booleans())}


@st.composite
def leaf_types(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(0, 11))
    small = st.integers(-5, 50)
    if kind == 0:
        meta = _meta(draw, ge=small, le=st.integers(50, 100), multiple_of=st.integers(1, 4))
        return Annotated[int, msgspec.Meta(**meta)] if meta else int
    if kind == 1:
        meta = _meta(draw, gt=st.floats(-5, 0), lt=st.floats(1, 9))
        return Annotated[float, msgspec.Meta(**meta)] if meta else float
    if kind == 2:
        meta = _meta(
            draw,
            min_length=st.integers(0, 2),
            max_length=st.integers(2, 5),
            pattern=st.sampled_from(["^a", "[0-9]$"]),
        )
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind == 3:
        tz = draw(st.sampled_from([None, True, False]))
        return datetime if tz is None else Annotated[datetime, msgspec.Meta(tz=tz)]
    if kind == 4:
        values = draw(
            st.lists(st.text(max_size=3) | st.integers(-3, 3), min_size=1, max_size=3, unique=True)
        )
        return Literal[tuple(values)]
    if kind == 5:
        values = draw(
            st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=3, unique=True)
        )
        return enum.Enum(draw(_names).title(), [(f"m{i}", v) for i, v in enumerate(values)])
    return draw(
        st.sampled_from([bool, date, time, timedelta, uuid.UUID, Decimal, bytes, Any, None])
    )


@st.composite
def types(draw: st.DrawFn, depth: int = 0) -> Any:
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(leaf_types())
    inner = draw(types(depth + 1))
    shape = draw(st.integers(0, 7))
    if shape == 0:
        return list[inner]  # type: ignore[valid-type]
    if shape == 1:
        return draw(st.sampled_from([set[int], frozenset[str], tuple[int, ...]]))
    if shape == 2:
        return tuple[inner, draw(leaf_types())]  # type: ignore[valid-type]
    if shape == 3:
        return dict[draw(st.sampled_from([str, int])), inner]  # type: ignore[misc]
    if shape == 4:
        return Optional[inner]  # noqa: UP045 - inner may be None itself
    if shape == 5:
        return draw(structs(depth + 1))
    return inner


@st.composite
def structs(draw: st.DrawFn, depth: int = 0, tag: Any = None) -> type[Any]:
    names = draw(st.lists(_names, max_size=4, unique=True))
    fields: list[Any] = []
    for name in names:
        typ = draw(types(depth + 1))
        fields.append((name, typ, None) if draw(st.booleans()) else (name, typ))
    try:
        return msgspec.defstruct(
            draw(_names).title() + "S",
            fields,
            kw_only=True,
            tag=tag,
            rename=draw(st.sampled_from([None, "camel", "upper"])),
            forbid_unknown_fields=draw(st.booleans()),
            array_like=tag is None and draw(st.integers(0, 5)) == 0,
        )
    except ValueError:  # two field names that rename to one ("a_b" and "aB" under camel)
        assume(False)
        raise


@st.composite
def specs(draw: st.DrawFn) -> AggregateSpec[Any]:
    tags = draw(
        st.lists(
            st.from_regex(r"[A-Z][a-z]{0,5}", fullmatch=True), min_size=1, max_size=3, unique=True
        )
    )
    commands = [draw(structs(tag=tag)) for tag in tags]
    for command in commands:
        try:
            msgspec.json.Decoder(command)  # msgspec checks the type here
        except (TypeError, ValueError):
            assume(False)  # a union msgspec refuses, say
    route = draw(st.sampled_from([None, {tags[0]: "u-1"}]))
    accepts = draw(st.sampled_from([None, {"u-1", "u-2"}]))
    return AggregateSpec(
        "random",
        commands=commands,
        events=[Happened],
        initial=0,
        decide=lambda state, command, context: [],
        evolve=lambda state, event: state,
        route=route,
        accepts_id=accepts,
    )


@given(data=st.data(), spec=specs())
def test_rebuilt_rules_of_random_command_types_decide_as_the_originals(
    data: st.DataObject, spec: AggregateSpec[Any]
) -> None:
    check = rebuilt(spec)
    document = _describe_spec(spec)
    for _ in range(5):
        payload = data.draw(payloads(document))
        expected = outcome(spec.decode_payload, payload)
        assert outcome(check._spec.decode_payload, payload) == expected  # type: ignore[union-attr]


# -- what cannot travel is said ------------------------------------------------------------------


class Checked(msgspec.Struct, tag=True):
    n: int = 0

    def __post_init__(self) -> None:
        if self.n == 13:
            raise ValueError("unlucky")


def test_python_code_that_cannot_travel_is_named_in_the_notes() -> None:
    spec = AggregateSpec(
        "lucky",
        commands=[Checked],
        events=[Happened],
        initial=0,
        decide=lambda state, command, context: [],
        evolve=lambda state, event: state,
        route=lambda command: "u-1",
        accepts_id=lambda aggregate_id: aggregate_id.startswith("u-"),
    )
    check = rebuilt(spec)
    assert check.notes == [
        "not checked here: what Checked.__post_init__ checks",
        "not checked here: the aggregate id lucky's route function picks",
        "not checked here: whether lucky's accepts_id function accepts the aggregate id",
    ]
    check.check_payload('{"type": "Checked", "n": 2}')  # routed by the stand-in
    with pytest.raises(ValidationError, match="Expected `int`"):
        check.check_payload('{"type": "Checked", "n": "2"}')


def test_an_untyped_target_has_no_rules_and_a_damaged_document_checks_nothing() -> None:
    assert describe_payload(EventTopic("health")) is None
    for text, says in [
        ("{not json", "cannot be read"),
        ('{"format": "other/9", "aggregate": "x"}', "format"),
        ('{"format": "reventless.payload-types/1", "aggregate": "x", "unsupported": "why"}', "why"),
        (
            '{"format": "reventless.payload-types/1", "aggregate": "x", "commands": {"A": "T9"},'
            ' "types": {}, "route": {"kind": "none"}, "ids": {"kind": "any"}}',
            "rebuilt",
        ),
    ]:
        check = PayloadCheck(text, "t")
        assert not check.checks
        assert says in check.notes[0]
        check.check_payload("anything")  # checks nothing, says so in the notes


def test_a_document_that_does_not_rebuild_exactly_is_not_claimed() -> None:
    document = _describe_spec(ROUTED)
    document["types"]["T0"]["fields"][0]["type"]["unknown"] = 1
    check = PayloadCheck(json.dumps(document), "t")
    assert not check.checks
    assert check.notes == ["the payload types do not rebuild exactly here"]


def test_a_payload_check_is_no_delivery_target() -> None:
    import anyio

    with pytest.raises(UsageError):
        anyio.run(ROUTED_CHECK.deliver, None)  # type: ignore[arg-type]


def test_a_route_function_is_stood_in_for_by_an_id_the_rules_allow() -> None:
    """The stand-in is an id the known ids allow, skipping ones the id rules refuse."""
    spec = AggregateSpec(
        "routed",
        commands=[Ping],
        events=[Happened],
        initial=0,
        decide=lambda state, command, context: [],
        evolve=lambda state, event: state,
        route=lambda command: "u-1",
        accepts_id={"a b", "u-1"},
    )
    check = rebuilt(spec)
    check.check_payload('{"type": "Ping"}')
    with pytest.raises(ValidationError, match="an id of an existing routed"):
        check.check_payload('{"type": "Ping", "aggregateId": "u-9"}')
