"""Rows as plain data: what the cache stores, what events carry, what Elasticsearch gets.

Cached values are frozen data, never live ORM objects or pickles: a row is encoded to
JSON with orjson and decoded with a pydantic validator built from the column types, so
a UUID comes back a UUID and a timestamp a timezone-aware datetime.
"""

from __future__ import annotations

import base64
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.session import make_transient_to_detached
from typing_extensions import TypedDict

__all__ = ["RowCodec", "json_bytes", "json_default", "json_safe"]

T = TypeVar("T")


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
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON: the one encoder behind the cache, the outbox, events and documents."""
    return orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)


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
        # One TypedDict per model lets pydantic-core parse and type a cached row in one pass.
        make_typed_dict: Any = TypedDict
        row_type = make_typed_dict(f"{self.model.__name__}Row", fields, total=False)
        self._adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(row_type)
        self._key_adapter: TypeAdapter[Any] = TypeAdapter(fields[self.primary_key])
        # A filter on an array column matches rows holding the value: its items are untyped.
        self._column_adapters: dict[str, TypeAdapter[Any]] = {
            attr.key: TypeAdapter(_filter_type(attr.columns[0].type))
            for attr in mapper.column_attrs
        }

    def values(self, entity: object) -> dict[str, Any]:
        """The entity's column values, as Python objects."""
        return {name: getattr(entity, name) for name in self.columns}

    def dumps(self, entity: object) -> bytes:
        return json_bytes(self.values(entity))

    def payload(self, entity: object) -> dict[str, Any]:
        """The entity as JSON-safe data, for events and search documents."""
        return self.payload_of_values(self.values(entity))

    def payload_of_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Column values (an entity's, or a row's) as JSON-safe data."""
        result: dict[str, Any] = json_safe({name: values[name] for name in self.columns})
        return result

    def key_of(self, entity: object) -> Any:
        return getattr(entity, self.primary_key)

    def parse_key(self, key: object) -> Any:
        """A primary key from its text form (or as given), typed like the column."""
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
            if adapter is None:
                typed[name] = value  # the ranker names unknown fields
            elif isinstance(value, list | tuple | set | frozenset):
                typed[name] = [self._filter_value(adapter, name, item) for item in value]
            else:
                typed[name] = self._filter_value(adapter, name, value)
        return typed

    def _filter_value(self, adapter: TypeAdapter[Any], name: str, value: Any) -> Any:
        try:
            return json_safe(adapter.validate_python(value))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise ValueError(
                f"filter {name!r} of {self.model.__name__}: {value!r} does not fit the "
                f"column ({reason})"
            ) from exc

    def loads(self, data: bytes) -> dict[str, Any]:
        return self._adapter.validate_json(data)

    def detached(self, values: Mapping[str, Any]) -> Any:
        """A detached entity holding ``values`` as its committed state, ready to attach."""
        entity = self.mapper.class_manager.new_instance()
        for name, value in values.items():
            set_committed_value(entity, name, value)
        make_transient_to_detached(entity)
        return entity
