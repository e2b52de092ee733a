"""Content digests: equal for equal values however each side spelled them, else different."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import numpy as np
from sqlalchemy import inspect

from satellites_repo.model.codec import RowCodec, json_safe, same_vector
from tests.unit.model.test_codec_and_vector import Invoice, make_invoice

CODEC = RowCodec(inspect(Invoice))


def postgres_spelling() -> dict[str, Any]:
    """The invoice as a row read back from Postgres spells it: UTC, numeric(10,2), float32."""
    row: dict[str, Any] = json_safe(CODEC.values(make_invoice()))
    return row


def test_equal_values_spelled_differently_have_one_digest() -> None:
    assigned = postgres_spelling()
    assigned["issued_at"] = "2026-01-02T05:04:05+02:00"  # the same instant, at +02:00
    assigned["amount"] = "12.5"  # what the application assigned to numeric(10,2)
    assigned["embedding"] = [0.5, 0.25, 1]  # an int where Postgres gives a float
    assert CODEC.digest(assigned) == CODEC.digest(postgres_spelling())


def test_a_float32_column_is_compared_as_float32() -> None:
    row = postgres_spelling()
    row["embedding"] = [0.1, 0.2, 0.3]
    read_back = dict(row, embedding=[float(np.float32(x)) for x in (0.1, 0.2, 0.3)])
    assert read_back["embedding"] != row["embedding"]
    assert CODEC.digest(read_back) == CODEC.digest(row)


def test_keys_in_another_order_have_one_digest() -> None:
    row = postgres_spelling()
    assert CODEC.digest(dict(reversed(list(row.items())))) == CODEC.digest(row)


def test_other_values_have_other_digests() -> None:
    row = postgres_spelling()
    changes: dict[str, Any] = {
        "issued_at": "2026-01-02T03:04:06+00:00",
        "amount": "12.51",
        "note": "",
        "embedding": [0.5, 0.25, 0.5],
        "version": 4,
    }
    for name, value in changes.items():
        assert CODEC.digest({**row, name: value}) != CODEC.digest(row), name


def test_a_missing_or_an_extra_field_is_other_content() -> None:
    row = postgres_spelling()
    without = {name: value for name, value in row.items() if name != "note"}
    assert CODEC.digest(without) != CODEC.digest(row)
    assert CODEC.digest({**row, "words": 3}) != CODEC.digest(row)


def test_untypable_content_never_matches_a_typed_row() -> None:
    row = postgres_spelling()
    assert CODEC.digest({**row, "amount": "twelve"}) != CODEC.digest(row)


def test_decimal_and_datetime_python_values_match_their_json() -> None:
    values = CODEC.values(make_invoice())
    typed = dict(values, amount=decimal.Decimal("12.500"), issued_at=values["issued_at"])
    assert CODEC.digest(typed) == CODEC.digest(postgres_spelling())
    shifted = values["issued_at"].astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert CODEC.digest(dict(values, issued_at=shifted)) == CODEC.digest(postgres_spelling())


def test_same_vector_allows_float32_rounding_only() -> None:
    assert same_vector([1.0, 0.20000002, 0.0], [1.0, 0.2, 0.0])
    assert not same_vector([1.0, 0.2001, 0.0], [1.0, 0.2, 0.0])
    assert not same_vector([1.0, 0.2], [1.0, 0.2, 0.0])
    assert not same_vector(["x", 0.2, 0.0], [1.0, 0.2, 0.0])
