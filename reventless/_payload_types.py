"""What a typed target accepts as a payload, written down so that another process can check it.

A command topic refuses, at create time, a payload its aggregate cannot decode. The command line
runs in another process that cannot import the application, so the check has to travel through
the store. ``describe_payload`` writes an aggregate's payload rules as a JSON document: its name,
its command types as msgspec sees them (``msgspec.inspect``: every field, type, constraint, tag,
rename and ``forbid_unknown_fields``), its route table and its set of known ids. ``PayloadCheck``
rebuilds types msgspec sees the same way and an ``AggregateSpec`` around them, and runs
``AggregateSpec.decode_payload`` on them: the very code the API runs, on types that msgspec
cannot tell from the originals. That is what makes the check exact; no JSON Schema validator is
re-implemented. After rebuilding, the types are described again and must give the same
document, or the check is not claimed.

What is Python code cannot travel: a ``__post_init__``, a ``route`` or ``accepts_id`` function, a
subclass's own ``decode_payload``. The document names each in ``notes`` and the check says so.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Required
from uuid import UUID

import msgspec
import msgspec.inspect as mi

from reventless.aggregate import Aggregate, AggregateSpec
from reventless.errors import UsageError, ValidationError
from reventless.target import FireEnvelope

__all__ = ("FORMAT", "PayloadCheck", "command_spec", "describe_payload")

FORMAT = "reventless.payload-types/1"
Node = dict[str, Any]


class _Unsupported(Exception):
    """A type this format cannot write down or rebuild; the payload is then not checked."""


# -- describing ---------------------------------------------------------------------------------

_LEAVES: dict[type[Any], tuple[str, tuple[str, ...]]] = {
    mi.AnyType: ("any", ()),
    mi.NoneType: ("none", ()),
    mi.BoolType: ("bool", ()),
    mi.IntType: ("int", ("gt", "ge", "lt", "le", "multiple_of")),
    mi.FloatType: ("float", ("gt", "ge", "lt", "le", "multiple_of")),
    mi.StrType: ("str", ("min_length", "max_length", "pattern")),
    mi.BytesType: ("bytes", ("min_length", "max_length")),
    mi.ByteArrayType: ("bytearray", ("min_length", "max_length")),
    mi.DateTimeType: ("datetime", ("tz",)),
    mi.TimeType: ("time", ("tz",)),
    mi.DateType: ("date", ()),
    mi.TimeDeltaType: ("timedelta", ()),
    mi.UUIDType: ("uuid", ()),
    mi.DecimalType: ("decimal", ()),
    mi.RawType: ("raw", ()),
}
_COLLECTIONS: dict[type[Any], str] = {
    mi.ListType: "list",
    mi.SetType: "set",
    mi.FrozenSetType: "frozenset",
    mi.VarTupleType: "vartuple",
}
# frozendict exists from Python 3.15; msgspec describes it only there.
_MAPPINGS: tuple[type[Any], ...] = (mi.DictType, getattr(mi, "FrozenDictType", mi.DictType))
if hasattr(mi, "MemoryViewType"):
    _LEAVES[mi.MemoryViewType] = ("memoryview", ("min_length", "max_length"))


class _Describer:
    """Walks ``msgspec.inspect`` types into JSON nodes; classes go to ``types`` by reference."""

    def __init__(self) -> None:
        self.types: dict[str, Node] = {}
        self.notes: list[str] = []
        self._ids: dict[type[Any], str] = {}

    def node(self, t: mi.Type) -> Node:
        while isinstance(t, mi.Metadata):
            t = t.type  # titles, descriptions and extra JSON Schema do not change decoding
        leaf = _LEAVES.get(type(t))
        if leaf is not None:
            kind, attributes = leaf
            node: Node = {"kind": kind}
            for attribute in attributes:
                if getattr(t, attribute) is not None:
                    node[attribute] = getattr(t, attribute)
            return node
        if type(t) in _COLLECTIONS:
            item = self.node(t.item_type)  # type: ignore[attr-defined]  # a CollectionType
            return {"kind": _COLLECTIONS[type(t)], "item": item, **_lengths(t)}
        return self._compound(t)

    def _compound(self, t: Any) -> Node:
        if isinstance(t, mi.TupleType):
            return {"kind": "tuple", "items": [self.node(item) for item in t.item_types]}
        if isinstance(t, _MAPPINGS):
            kind = "dict" if isinstance(t, mi.DictType) else "frozendict"
            key, value = self.node(t.key_type), self.node(t.value_type)
            return {"kind": kind, "key": key, "value": value, **_lengths(t)}
        if isinstance(t, mi.UnionType):
            return {"kind": "union", "types": [self.node(member) for member in t.types]}
        if isinstance(t, mi.LiteralType):
            return {"kind": "literal", "values": list(t.values)}
        if isinstance(t, mi.EnumType):
            values = [member.value for member in t.cls]
            return {"kind": "enum", "name": t.cls.__name__, "values": values}
        if isinstance(t, (mi.CustomType, mi.ExtType)):
            # Decoding JSON never makes one of these without a dec_hook, which the API has not.
            return {"kind": "opaque", "name": getattr(t, "cls", type(t)).__name__}
        if isinstance(t, (mi.StructType, mi.DataclassType, mi.TypedDictType, mi.NamedTupleType)):
            return {"kind": "ref", "id": self._class(t)}
        raise _Unsupported(f"the type {t!r} (unknown to this version of reventless)")

    def _class(self, t: Any) -> str:
        known = self._ids.get(t.cls)
        if known is not None:
            return known
        ref = self._ids[t.cls] = f"T{len(self._ids)}"
        entry: Node = {"kind": _CLASS_KINDS[type(t)], "name": t.cls.__name__}
        self.types[ref] = entry  # before the fields: a field may refer back to this class
        entry["fields"] = [
            {
                # The name in JSON; a Struct's Python name for it does not change decoding.
                "name": field.encode_name,
                "type": self.node(field.type),
                "required": field.required,
            }
            for field in t.fields
        ]
        if isinstance(t, mi.StructType):
            entry.update(
                tag_field=t.tag_field,
                tag=t.tag,
                array_like=t.array_like,
                forbid_unknown_fields=t.forbid_unknown_fields,
            )
        self._note_code(t.cls)
        return ref

    def _note_code(self, cls: type[Any]) -> None:
        if callable(getattr(cls, "__post_init__", None)):
            self.notes.append(f"what {cls.__name__}.__post_init__ checks")
        if hasattr(cls, "__attrs_attrs__"):
            self.notes.append(f"the validators of the attrs class {cls.__name__}")


_CLASS_KINDS: dict[type[Any], str] = {
    mi.StructType: "struct",
    mi.DataclassType: "dataclass",
    mi.TypedDictType: "typeddict",
    mi.NamedTupleType: "namedtuple",
}


def _lengths(t: Any) -> Node:
    return {
        name: getattr(t, name)
        for name in ("min_length", "max_length")
        if getattr(t, name) is not None
    }


def _describe_spec(spec: AggregateSpec[Any]) -> Node:
    describer = _Describer()
    commands = {tag: describer.node(mi.type_info(cls))["id"] for tag, cls in spec.commands.items()}
    document: Node = {
        "format": FORMAT,
        "aggregate": spec.name,
        "commands": commands,
        "types": describer.types,
        "route": _describe_route(spec.route),
        "ids": _describe_ids(spec),
    }
    notes = describer.notes
    if document["route"]["kind"] == "function":
        notes.append(f"the aggregate id {spec.name}'s route function picks")
    if document["ids"]["kind"] == "function":
        notes.append(f"whether {spec.name}'s accepts_id function accepts the aggregate id")
    if type(spec).decode_payload is not AggregateSpec.decode_payload:
        notes.append(f"what {type(spec).__name__}.decode_payload adds")
    document["notes"] = notes
    return document


def _describe_route(route: object) -> Node:
    if route is None:
        return {"kind": "none"}
    if isinstance(route, Mapping):
        return {"kind": "mapping", "ids": {str(key): value for key, value in route.items()}}
    return {"kind": "function"}


def _describe_ids(spec: AggregateSpec[Any]) -> Node:
    if spec.known_ids is not None:
        return {"kind": "set", "values": sorted(spec.known_ids)}
    if spec.accepts_id is None:
        return {"kind": "any"}
    return {"kind": "function"}


def command_spec(target: object) -> AggregateSpec[Any] | None:
    """The aggregate spec whose payloads ``target`` accepts, or None for an untyped target.

    A command topic, also wrapped (an ObservedTarget forwards attributes), or an SQS queue
    target carrying one. Read by attribute, not with a runtime Protocol: from Python 3.12,
    ``isinstance`` against a Protocol no longer sees attributes forwarded by ``__getattr__``.
    """
    topic = getattr(target, "command_topic", None)
    aggregate = getattr(target if topic is None else topic, "aggregate", None)
    if isinstance(aggregate, Aggregate):
        spec: AggregateSpec[Any] = aggregate.spec
        return spec
    return None


def describe_payload(target: object) -> str | None:
    """The JSON document of what ``target`` accepts as a payload; None for an untyped target.

    A typed target whose types cannot be written down gives a document with ``unsupported``,
    so that a reader says why it did not check, rather than nothing.
    """
    spec = command_spec(target)
    if spec is None:
        return None
    try:
        document = _describe_spec(spec)
        text = json.dumps(document, allow_nan=False)  # in order: ids follow it
    except (_Unsupported, TypeError, ValueError) as exc:
        document = {"format": FORMAT, "aggregate": spec.name, "unsupported": str(exc)}
        text = json.dumps(document)
    return text


# -- rebuilding ---------------------------------------------------------------------------------


def _meta(node: Node, *names: str) -> dict[str, Any]:
    return {name: node[name] for name in names if name in node}


def _constrained(base: Any, node: Node, *names: str) -> Any:
    constraints = _meta(node, *names)
    return Annotated[base, msgspec.Meta(**constraints)] if constraints else base


_LEAF_TYPES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "any": (Any, ()),
    "none": (None, ()),
    "bool": (bool, ()),
    "int": (int, ("gt", "ge", "lt", "le", "multiple_of")),
    "float": (float, ("gt", "ge", "lt", "le", "multiple_of")),
    "str": (str, ("min_length", "max_length", "pattern")),
    "bytes": (bytes, ("min_length", "max_length")),
    "bytearray": (bytearray, ("min_length", "max_length")),
    "memoryview": (memoryview, ("min_length", "max_length")),
    "datetime": (datetime, ("tz",)),
    "time": (time, ("tz",)),
    "date": (date, ()),
    "timedelta": (timedelta, ()),
    "uuid": (UUID, ()),
    "decimal": (Decimal, ()),
    "raw": (msgspec.Raw, ()),
}
_COLLECTION_TYPES: dict[str, Callable[[Any], Any]] = {
    "list": lambda item: list.__class_getitem__(item),
    "set": lambda item: set.__class_getitem__(item),
    "frozenset": lambda item: frozenset.__class_getitem__(item),
    "vartuple": lambda item: tuple.__class_getitem__((item, ...)),
}


class _Rebuilder:
    """Makes types from nodes; a class met again while it is being made is a forward reference,
    resolved through the class namespace of every rebuilt class."""

    def __init__(self, types: dict[str, Node]) -> None:
        self._nodes = types
        self._built: dict[str, Any] = {}
        self._building: set[str] = set()

    def type(self, node: Node) -> Any:
        kind = node["kind"]
        if kind in _LEAF_TYPES:
            base, names = _LEAF_TYPES[kind]
            return _constrained(base, node, *names)
        if kind in _COLLECTION_TYPES:
            collection = _COLLECTION_TYPES[kind](self.type(node["item"]))
            return _constrained(collection, node, "min_length", "max_length")
        return self._compound(kind, node)

    def _compound(self, kind: str, node: Node) -> Any:
        if kind == "tuple":
            items = tuple(self.type(item) for item in node["items"])
            return tuple.__class_getitem__(items if items else ())
        if kind in ("dict", "frozendict"):
            mapping = dict if kind == "dict" else _frozendict()
            key, value = self.type(node["key"]), self.type(node["value"])
            return _constrained(mapping[key, value], node, "min_length", "max_length")
        if kind == "union":
            return typing.Union[tuple(self.type(member) for member in node["types"])]  # noqa: UP007 - built from a tuple
        if kind == "literal":
            return Literal[tuple(node["values"])]
        if kind == "enum":
            members = [(f"m{index}", value) for index, value in enumerate(node["values"])]
            return enum.Enum(node["name"], members)
        if kind == "opaque":
            return type(node["name"], (), {})
        if kind == "ref":
            return self.ref(node["id"])
        raise _Unsupported(f"a type of kind {kind!r}")

    def ref(self, ref: str) -> Any:
        if ref in self._built:
            return self._built[ref]
        if ref in self._building:
            return typing.ForwardRef(_ns_name(ref))
        self._building.add(ref)
        node = self._nodes[ref]
        built = _CLASS_BUILDERS[node["kind"]](self, node)
        self._built[ref] = built
        return built

    def fields(self, node: Node) -> list[tuple[str, Any, bool]]:
        return [(f["name"], self.type(f["type"]), f["required"]) for f in node["fields"]]

    def link(self) -> None:
        """Let forward references resolve: each rebuilt class can see every other by name."""
        for cls in self._built.values():
            if isinstance(cls, type) and (
                issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls)
            ):
                for ref, other in self._built.items():
                    setattr(cls, _ns_name(ref), other)


def _ns_name(ref: str) -> str:
    return f"reventless_payload_{ref}"


def _frozendict() -> Any:
    import builtins

    found = getattr(builtins, "frozendict", None)
    if found is None:
        raise _Unsupported("frozendict, which this Python does not have")
    return found


def _struct(builder: _Rebuilder, node: Node) -> Any:
    fields: list[Any] = []
    rename = {}
    for index, (_, typ, required) in enumerate(builder.fields(node)):
        name = f"f{index}"
        rename[name] = node["fields"][index]["name"]
        fields.append((name, typ) if required else (name, typ, None))
    options: dict[str, Any] = {
        "kw_only": True,  # keeps the stored field order with required and optional mixed
        "rename": rename,
        "array_like": node["array_like"],
        "forbid_unknown_fields": node["forbid_unknown_fields"],
    }
    if node["tag"] is not None:
        options.update(tag=node["tag"], tag_field=node["tag_field"])
    return msgspec.defstruct(node["name"], fields, module=__name__, **options)


def _dataclass(builder: _Rebuilder, node: Node) -> Any:
    fields = [
        (name, typ) if required else (name, typ, dataclasses.field(default=None))
        for name, typ, required in builder.fields(node)
    ]
    return dataclasses.make_dataclass(node["name"], fields, kw_only=True)


def _typeddict(builder: _Rebuilder, node: Node) -> Any:
    fields = {
        name: Required[typ] if required else NotRequired[typ]
        for name, typ, required in builder.fields(node)
    }
    return typing.TypedDict(node["name"], fields)  # type: ignore[operator]  # functional API


def _namedtuple(builder: _Rebuilder, node: Node) -> Any:
    fields = builder.fields(node)
    built = typing.NamedTuple(node["name"], [(name, typ) for name, typ, _ in fields])  # type: ignore[misc]
    defaults = {name: None for name, _, required in fields if not required}
    built.__new__.__defaults__ = (None,) * len(defaults)
    built._field_defaults = defaults
    return built


_CLASS_BUILDERS: dict[str, Callable[[_Rebuilder, Node], Any]] = {
    "struct": _struct,
    "dataclass": _dataclass,
    "typeddict": _typeddict,
    "namedtuple": _namedtuple,
}


class _NoEvent(msgspec.Struct, tag=True):
    """Never used: an AggregateSpec needs at least one event type."""


def _rebuild_spec(document: Node) -> AggregateSpec[Any]:
    builder = _Rebuilder(document["types"])
    commands = [builder.ref(ref) for ref in document["commands"].values()]
    builder.link()
    route, ids = document["route"], document["ids"]
    accepts: frozenset[str] | None = frozenset(ids["values"]) if ids["kind"] == "set" else None
    stand_in: list[str] = []  # set below, once the spec can tell which ids it allows
    routing: Any = None
    if route["kind"] == "mapping":
        routing = dict(route["ids"])
    elif route["kind"] == "function":
        # The app's function picks an id; an id the rules allow stands in for it here.
        routing = lambda command: stand_in[0] if stand_in else None  # noqa: E731
    spec: AggregateSpec[Any] = AggregateSpec(
        document["aggregate"],
        commands=commands,
        events=[_NoEvent],
        initial=None,
        decide=lambda state, command, context: (),
        evolve=lambda state, event: state,
        route=routing,
        accepts_id=accepts,
    )
    stand_in.extend(_allowed_ids(spec, sorted(accepts) if accepts is not None else ["unchecked"]))
    return spec


def _allowed_ids(spec: AggregateSpec[Any], candidates: list[str]) -> list[str]:
    allowed = []
    for candidate in candidates:
        try:
            allowed.append(spec.check_id(candidate))
        except ValidationError:
            continue
    return allowed[:1]


class PayloadCheck:
    """Checks payloads against a stored document (a ``ChecksPayload`` target for operations).

    ``checks`` is True when the rebuilt types describe back to the stored document; ``notes``
    says what is not checked and why (Python code that cannot travel, or why nothing is).
    """

    def __init__(self, text: str, target: str) -> None:
        self.target = target
        self.notes: list[str] = []
        self._spec: AggregateSpec[Any] | None = None
        try:
            document = json.loads(text)
        except ValueError:
            self.notes.append("the stored payload rules cannot be read")
            return
        if "unsupported" in document:
            self.notes.append(
                f"the payload rules could not be written down: {document['unsupported']}"
            )
            return
        self._load(document)

    def _load(self, document: Node) -> None:
        if document.get("format") != FORMAT:
            self.notes.append("the payload rules are in a format this reventless does not read")
            return
        try:
            spec = _rebuild_spec(document)
            again = json.loads(json.dumps(_describe_spec(spec)))  # compared as it was stored
        except (_Unsupported, ValidationError, TypeError, ValueError, KeyError) as exc:
            self.notes.append(f"the payload rules cannot be rebuilt here ({exc})")
            return
        if {k: v for k, v in again.items() if k not in ("route", "ids", "notes")} != {
            k: v for k, v in document.items() if k not in ("route", "ids", "notes")
        }:
            self.notes.append("the payload types do not rebuild exactly here")
            return
        self._spec = spec
        self.notes.extend(f"not checked here: {note}" for note in document.get("notes", []))

    @property
    def checks(self) -> bool:
        """Whether payloads are checked at all (the types were rebuilt)."""
        return self._spec is not None

    def check_payload(self, payload: str) -> None:
        """Return when the aggregate would decode ``payload``; raise ValidationError if not."""
        if self._spec is not None:
            self._spec.decode_payload(payload)

    async def deliver(self, envelope: FireEnvelope) -> None:
        """Never called: the check stands in for a target only to check payloads."""
        raise UsageError("a PayloadCheck checks payloads; it delivers nothing")
