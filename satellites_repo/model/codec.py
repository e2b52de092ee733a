"""Rows as plain data: what the cache stores, what events carry, what Elasticsearch gets.

Cached values are frozen data, never live ORM objects or pickles: a row is encoded to
JSON with orjson and decoded with a pydantic validator built from the column types, so
a UUID comes back a UUID and a timestamp a timezone-aware datetime.

A cached row packs each ``Vector`` column as base64 little-endian float32 (the values
Postgres' ``real[]`` holds, so exactly): a quarter of the bytes of JSON numbers, and no
float parsing on a cache hit. The codec's ``fingerprint`` names the columns and types a
body was written for, so a row cached before a migration is recognised as another shape.

Values JSON has no form for are written as strings pydantic reads back: a NaN or infinite
float (a column's value, or a value of a mapping such as a payload) as ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` (orjson alone would write ``null``); a ``timedelta`` (an
``Interval`` column) as an ISO 8601 duration; a ``Decimal`` as its exact digits. A model
with a column type the codec cannot carry is refused when it is declared.

``RowCodec.digest`` is what ``satellites verify`` compares: one digest per row for what
Postgres says a projection should hold and for what it holds, taken the same way on both
sides. The same value has several JSON spellings (the fast path writes what the
application assigned, ``Decimal("1.5")`` or a datetime at +02:00; a row read back from
Postgres is spelled as the database returns it, ``1.5000`` in UTC), so columns are typed
back and written one canonical way first: datetimes in UTC, decimals normalised, float32
columns (vectors, ``real``) as their float32 bytes, keys sorted.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import hashlib
import math
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import REAL
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.session import make_transient_to_detached
from typing_extensions import TypedDict

from satellites_repo.model.results import AnyOf
from satellites_repo.model.vector import Vector

__all__ = [
    "NON_FINITE",
    "RowCodec",
    "digest_of",
    "float32_digest",
    "json_bytes",
    "json_default",
    "json_safe",
    "same_vector",
    "unencodable_columns",
]

T = TypeVar("T")

NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
"""How a NaN or infinite float is written (pydantic reads each back as the float)."""

ENCODABLE: tuple[type, ...] = (
    str, int, float, bool, decimal.Decimal, dt.datetime, dt.date, dt.time, dt.timedelta,
    uuid.UUID, bytes, dict, list, tuple, enum.Enum,
)  # fmt: skip
"""Column Python types the codec writes and reads back (a column typed ``Any`` passes)."""


def json_default(value: Any) -> Any:
    """What orjson cannot encode natively, as JSON scalars (orjson's ``default`` hook)."""
    if isinstance(value, uuid.UUID):  # e.g. asyncpg's own UUID subclass, which orjson skips
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.timedelta):
        return to_jsonable_python(value)  # ISO 8601, exactly as pydantic reads it back
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON: the one encoder behind the cache, the outbox, events and documents."""
    return orjson.dumps(_finite(value), default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _finite(value: Any) -> Any:
    """Non-finite floats (a scalar, or the values of a mapping) as their string markers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Mapping) and any(
        isinstance(item, float) and not math.isfinite(item) for item in value.values()
    ):
        return {name: _finite(item) for name, item in value.items()}
    return value


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def digest_of(value: Any) -> bytes:
    """A 16-byte digest of ``value`` as ``json_bytes`` writes it, with every key sorted."""
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
    encoded = orjson.dumps(_finite(value), default=json_default, option=options)
    return hashlib.blake2b(encoded, digest_size=16).digest()


def float32_digest(values: Any) -> str:
    """A digest of numbers as float32 (a vector: hashed apart, not written out as JSON)."""
    data = np.asarray(values, dtype=np.float32).tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def same_vector(held: Any, expected: Any) -> bool:
    """Whether a vector a backend gives back is ``expected`` up to float32 rounding.

    Elasticsearch returns a cosine ``dense_vector`` rebuilt from the unit vector and the
    magnitude it stores, a unit in the last place away from what it was given.
    """
    try:
        ours = np.asarray(expected, dtype=np.float32)
        theirs = np.asarray(held, dtype=np.float32)
    except (TypeError, ValueError):
        return False
    return ours.shape == theirs.shape and bool(np.allclose(theirs, ours, rtol=1e-5, atol=1e-6))


def _canonical(value: Any, float32: bool) -> Any:
    """One spelling of a typed column value (see the module's docstring)."""
    if float32 and isinstance(value, list):
        return float32_digest(value)
    if float32 and isinstance(value, float):
        return float(np.float32(value))
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return value.normalize()
    return value


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data, exactly as ``json_bytes`` would write it.

    One encoder for every consumer: the FAISS follower rebuilds metadata with this and
    compares it with what the fast path stored, so the two must never disagree (on NaN,
    a datetime's form, a UUID subclass...).
    """
    if value is None or (isinstance(value, str | bool | int) and not isinstance(value, enum.Enum)):
        return value
    return orjson.loads(json_bytes(value))


def _python_type(column_type: Any) -> Any:
    try:
        return column_type.python_type
    except NotImplementedError:
        return Any


def unencodable_columns(mapper: Mapper[Any]) -> list[str]:
    """Columns whose Python type the codec cannot write and read back (``name: type``)."""
    found = []
    for attr in mapper.column_attrs:
        kind = _python_type(attr.columns[0].type)
        if kind is not Any and not (isinstance(kind, type) and issubclass(kind, ENCODABLE)):
            found.append(f"{attr.key}: {getattr(kind, '__name__', kind)}")
    return found


_PACKED = np.dtype("<f4")
_CACHE_FORMAT = "packed-vectors-1"
"""Part of every fingerprint: a change of how bodies are written changes every shape."""


def _fingerprint(shape: list[tuple[str, str, int | None]]) -> str:
    """A short name of a row's shape (columns, their types, vector dimensions); hex, so
    it never holds the ``:`` that separates it from the body in a cache value."""
    digest = hashlib.sha256(repr((_CACHE_FORMAT, shape)).encode()).hexdigest()
    return digest[:12]


def _packed(vector: Any) -> Any:
    """A vector column's value as the cache holds it (``None`` stays ``None``)."""
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype=_PACKED).tobytes()).decode()


def _unpacked(value: Any) -> Any:
    """A packed vector back as the list of floats the column holds (pydantic's validator)."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype=_PACKED).tolist()
    return value


def _filter_type(column_type: Any) -> Any:
    """What one filter value on a column of ``column_type`` must be."""
    kind = _python_type(column_type)
    return Any if kind in (Any, list) else kind | None


class RowCodec:
    """Encodes one model's column values to JSON bytes and rebuilds entities from them."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self.model: type[Any] = mapper.class_
        primary_key = mapper.primary_key
        if len(primary_key) != 1:
            raise ValueError(
                f"{self.model.__name__} has a composite primary key; projected repositories "
                "need a single-column primary key"
            )
        self.table: str = str(mapper.local_table.name)  # type: ignore[attr-defined]
        self.columns: list[str] = [attr.key for attr in mapper.column_attrs]
        self.primary_key: str = mapper.get_property_by_column(primary_key[0]).key
        fields = {
            attr.key: _python_type(attr.columns[0].type) | None for attr in mapper.column_attrs
        }
        self._types = frozenset(fields)
        self._float32 = frozenset(
            attr.key
            for attr in mapper.column_attrs
            if isinstance(attr.columns[0].type, Vector | REAL)
        )
        dimensions = {
            attr.key: attr.columns[0].type.dimension
            for attr in mapper.column_attrs
            if isinstance(attr.columns[0].type, Vector)
        }
        self.vector_columns: tuple[str, ...] = tuple(dimensions)
        shape = sorted((name, repr(kind), dimensions.get(name)) for name, kind in fields.items())
        self.fingerprint: str = _fingerprint(shape)
        self._adapter = _row_adapter(f"{self.model.__name__}Row", fields, self.vector_columns)
        self._key_adapter: TypeAdapter[Any] = TypeAdapter(fields[self.primary_key])
        self._key_type = _python_type(mapper.primary_key[0].type)
        # A filter on an array column matches rows holding the value: its items are untyped.
        self._column_adapters: dict[str, TypeAdapter[Any]] = {
            attr.key: TypeAdapter(_filter_type(attr.columns[0].type))
            for attr in mapper.column_attrs
        }

    def values(self, entity: object) -> dict[str, Any]:
        """The entity's column values, as Python objects."""
        return {name: getattr(entity, name) for name in self.columns}

    def dumps(self, entity: object) -> bytes:
        """The entity as the cache holds it (see ``cache_body``)."""
        return self.cache_body(self.values(entity))

    def cache_body(self, values: Mapping[str, Any]) -> bytes:
        """Column values (an entity's, or a change's JSON-safe payload) as a cache body:
        JSON, with every vector column packed."""
        if not self.vector_columns:
            return json_bytes(values)
        packed = dict(values)
        for name in self.vector_columns:
            if name in packed:
                packed[name] = _packed(packed[name])
        return json_bytes(packed)

    def payload(self, entity: object) -> dict[str, Any]:
        """The entity as JSON-safe data, for events and search documents."""
        return self.payload_of_values(self.values(entity))

    def payload_of_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Column values (an entity's, or a row's) as JSON-safe data.

        Exactly what ``json_safe`` makes of them, but plain values (text, numbers, UUIDs,
        lists of finite floats such as a vector) are taken as they are: encoding and
        decoding a 384-d vector only to get the same floats back cost ~40 us a row.
        """
        payload: dict[str, Any] = {}
        other: dict[str, Any] = {}
        for name in self.columns:
            value = values[name]
            plain = _plain(value)
            if plain is _NOT_PLAIN:
                other[name] = value
            payload[name] = plain
        if other:
            payload.update(json_safe(other))
        return payload

    def key_of(self, entity: object) -> Any:
        return getattr(entity, self.primary_key)

    def parse_key(self, key: object) -> Any:
        """A primary key from its text form (or as given), typed like the column."""
        if type(key) is self._key_type:  # already typed: the common case, and free
            return key
        return self._key_adapter.validate_python(key)

    def filter_values(self, filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Filter values typed like their columns, as JSON-safe data (a list: each item).

        Every ranker gets the same values (``"false"`` is ``False`` for a boolean column
        in Elasticsearch and in FAISS alike); a value the column cannot hold is refused
        here, naming the field, instead of reaching a backend as a bad request.
        """
        if not filters:
            return None
        typed: dict[str, Any] = {}
        for name, value in filters.items():
            adapter = self._column_adapters.get(name)
            if adapter is None or value is None or not _typable(value):
                typed[name] = value  # unknown fields are named by the ranker; Range as given
            elif isinstance(value, AnyOf):  # plain lists and tuples were refused before
                typed[name] = AnyOf(*(self._filter_value(adapter, name, v) for v in value))
            else:
                typed[name] = self._filter_value(adapter, name, value)
        return typed

    def _filter_value(self, adapter: TypeAdapter[Any], name: str, value: Any) -> Any:
        """One value through the column's type, as JSON-safe data."""
        try:
            return json_safe(adapter.validate_python(value))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise ValueError(
                f"filter {name!r} of {self.model.__name__}: {value!r} does not fit the "
                f"column ({reason})"
            ) from exc

    def digest(self, document: Mapping[str, Any]) -> bytes:
        """A digest of a row, a search document or vector metadata, as JSON-safe data:
        equal for equal values, whichever way each was spelled.

        Fields named like columns are typed like them first; others (computed fields, a
        document's key field) are taken as they are. A document whose columns cannot be
        typed gets a digest no typed one has.
        """
        columns = {name: value for name, value in document.items() if name in self._types}
        try:
            typed = self._adapter.validate_python(columns)
        except ValidationError:
            return digest_of({"untyped": document})
        canonical = {
            name: _canonical(value, name in self._float32) for name, value in typed.items()
        }
        others = {name: value for name, value in document.items() if name not in self._types}
        return digest_of({**others, **canonical})

    def loads(self, data: bytes) -> dict[str, Any]:
        """A cache body's column values, typed like the columns (vectors unpacked)."""
        return self._adapter.validate_json(data)

    def typed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON-safe payload's values typed back like the columns (text to datetime...)."""
        return self._adapter.validate_python(dict(payload))

    def detached(self, values: Mapping[str, Any]) -> Any:
        """A detached entity holding ``values`` as its committed state, ready to attach.

        A fresh instance has no history, so its state's dict takes the values as they are;
        ``make_transient_to_detached`` commits them all (and expires any column absent).
        """
        entity = self.mapper.class_manager.new_instance()
        instance_state(entity).dict.update(values)
        make_transient_to_detached(entity)
        return entity


def _row_adapter(
    name: str, fields: Mapping[str, Any], packed: tuple[str, ...]
) -> TypeAdapter[dict[str, Any]]:
    """One TypedDict per model lets pydantic-core parse and type a row in one pass;
    ``packed`` columns take their base64 float32 form (a cache body) or a list (a payload)."""
    types = {
        column: Annotated[kind, BeforeValidator(_unpacked)] if column in packed else kind
        for column, kind in fields.items()
    }
    make_typed_dict: Any = TypedDict
    row_type = make_typed_dict(name, types, total=False)
    row_type.__pydantic_config__ = ConfigDict(allow_inf_nan=True)  # as Postgres allows
    return TypeAdapter(row_type)


_NOT_PLAIN = object()
_PLAIN = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> Any:
    """``value`` as ``json_safe`` would return it, when that is cheap to see; else
    ``_NOT_PLAIN``. A float sum is finite only if every item is (an overflowing sum of
    finite items just takes the long way)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if kind is uuid.UUID:
        return str(value)
    if kind is list and all(type(item) is float for item in value) and math.isfinite(sum(value)):
        return list(value)
    return _NOT_PLAIN


def _typable(value: object) -> bool:
    """Plain values and ``AnyOf`` tuples are typed like their column; a ``Range`` (or any
    other filter object) carries its own bounds."""
    plain = (str, int, float, AnyOf, uuid.UUID, decimal.Decimal, dt.date, dt.timedelta)
    return isinstance(value, plain)
