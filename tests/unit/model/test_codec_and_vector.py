"""Rows become JSON and come back with their Python types; vectors are checked float32."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import orjson
import pytest
from sqlalchemy import DateTime, Numeric, inspect
from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import Vector, Versioned
from satellites_repo.model.codec import RowCodec, json_safe
from satellites_repo.model.vector import array_text, as_float32_vector
from tests.unit.models import UnitModel


class InvoiceColumns:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    note: Mapped[str | None]
    embedding: Mapped[list[float]] = mapped_column(Vector(3))


class Invoice(UnitModel, InvoiceColumns, Versioned):
    __tablename__ = "unit_invoices"


def make_invoice() -> Invoice:
    return Invoice(
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        issued_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        amount=decimal.Decimal("12.50"),
        note=None,
        embedding=[0.5, 0.25, 1.0],
        version=3,
    )


def test_round_trip_restores_python_types() -> None:
    codec = RowCodec(inspect(Invoice))
    values = codec.loads(codec.dumps(make_invoice()))
    assert values["id"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert values["issued_at"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert values["amount"] == decimal.Decimal("12.50")
    assert values["note"] is None
    assert values["embedding"] == [0.5, 0.25, 1.0]
    assert values["version"] == 3


def test_payload_is_json_safe() -> None:
    payload = RowCodec(inspect(Invoice)).payload(make_invoice())
    assert payload["id"] == "12345678-1234-5678-1234-567812345678"
    assert payload["issued_at"] == "2026-01-02T03:04:05+00:00"
    assert payload["amount"] == "12.50"


class _DriverUUID(uuid.UUID):
    """A UUID subclass, as asyncpg returns them."""


@pytest.mark.parametrize(
    ("note", "embedding", "key"),
    [
        ("plain text", [0.5, -0.0, 1e-45], uuid.UUID(int=1)),
        (None, [1, 2, 3], _DriverUUID(int=2)),  # ints in a vector are written as ints
        ("x", np.asarray([0.1, 0.2, 0.3], dtype=np.float32), uuid.UUID(int=3)),
        ("y", [0.1, float("nan"), float("inf")], uuid.UUID(int=4)),
        ("z", [1.7e308, 1.7e308, 1.0], uuid.UUID(int=5)),  # a sum that overflows
    ],
)
def test_payload_takes_plain_values_as_json_safe_would_make_them(
    note: str | None, embedding: object, key: uuid.UUID
) -> None:
    codec = RowCodec(inspect(Invoice))
    values = {**codec.values(make_invoice()), "note": note, "embedding": embedding, "id": key}
    payload = codec.payload_of_values(values)
    expected = json_safe(values)
    assert payload == expected
    assert list(payload) == list(expected)
    assert [type(v) for v in payload.values()] == [type(v) for v in expected.values()]
    assert orjson.dumps(payload) == orjson.dumps(expected)


def test_detached_entity_holds_committed_values() -> None:
    codec = RowCodec(inspect(Invoice))
    entity = codec.detached(codec.loads(codec.dumps(make_invoice())))
    state = inspect(entity)
    assert state.detached
    assert state.identity == (uuid.UUID("12345678-1234-5678-1234-567812345678"),)
    assert not state.modified
    assert entity.version == 3


class InvoiceWithChannel(UnitModel, InvoiceColumns, Versioned):
    """The same table after a migration added a column."""

    __tablename__ = "unit_invoices_v2"
    channel: Mapped[str | None]


def test_a_cache_body_packs_vectors_and_reads_a_payload_alike() -> None:
    codec = RowCodec(inspect(Invoice))
    invoice = make_invoice()
    body = codec.dumps(invoice)
    assert b"0.25" not in body  # packed, not JSON numbers
    from_payload = codec.cache_body(codec.payload(invoice))
    assert codec.loads(from_payload) == codec.loads(body)
    assert codec.typed(codec.payload(invoice))["embedding"] == [0.5, 0.25, 1.0]


def test_the_fingerprint_names_the_shape() -> None:
    invoice, again = RowCodec(inspect(Invoice)), RowCodec(inspect(Invoice))
    assert invoice.fingerprint == again.fingerprint
    assert len(invoice.fingerprint) == 12
    assert ":" not in invoice.fingerprint
    assert RowCodec(inspect(InvoiceWithChannel)).fingerprint != invoice.fingerprint


def test_primary_keys_parse_from_text() -> None:
    codec = RowCodec(inspect(Invoice))
    key = "12345678-1234-5678-1234-567812345678"
    assert codec.parse_key(key) == uuid.UUID(key)
    with pytest.raises(ValueError, match="UUID"):
        codec.parse_key("not-a-uuid")


def test_json_safe_handles_nested_values() -> None:
    value = {"when": dt.date(2026, 5, 1), "ids": (uuid.UUID(int=1),), "raw": b"\x00\x01"}
    assert json_safe(value) == {
        "when": "2026-05-01",
        "ids": ["00000000-0000-0000-0000-000000000001"],
        "raw": "AAE=",
    }


def test_vector_values_are_exactly_float32() -> None:
    vector = as_float32_vector([0.1, 0.2, 0.3], 3)
    assert vector == np.asarray([0.1, 0.2, 0.3], dtype=np.float32).tolist()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, 2.0], "must have 3 numbers"),
        ([[1.0, 2.0, 3.0]], "must have 3 numbers"),
        ([1.0, float("nan"), 0.0], "NaN"),
        ([1.0, float("-inf"), 0.0], "infinity"),
        ([0.0, 0.0, 0.0], "all zeros"),
    ],
)
def test_bad_vectors_are_rejected(values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_float32_vector(values, 3)


def test_vector_column_binds_checked_values() -> None:
    column_type = Vector(3)
    assert column_type.process_bind_param([1, 2, 3], None) == [1.0, 2.0, 3.0]  # type: ignore[arg-type]
    assert column_type.process_bind_param(None, None) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must have 3 numbers"):
        column_type.process_bind_param([1.0], None)  # type: ignore[arg-type]


def test_vectors_are_sent_as_array_text_that_reads_back_as_the_same_float32() -> None:
    values = [0.1, -1 / 3, 3.4028234e38, 1.4e-45, -0.0, 2.0**-126]
    text = array_text(values, 6)
    assert (text[0], text[-1]) == ("{", "}")
    sent = np.asarray(text[1:-1].split(","), dtype=np.float32)
    assert sent.tobytes() == np.asarray(values, dtype=np.float32).tobytes()
    with pytest.raises(ValueError, match="NaN"):
        array_text([1.0, float("nan")], 2)
