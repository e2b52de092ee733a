"""``after`` cursors: the last hit's sort values, bound to the query that produced them.

A cursor is ``base64(json(sort values)) "." base64(mac)``, where the MAC is keyed by a
digest of the query, filters and sort. A cursor that was altered, or that comes from
another query (another tenant's filters, another sort), fails the check with a clear
``ValueError``. Forging one gains nothing: the filters are applied on every request, a
cursor only says where to resume. The binding is deterministic, so every app instance
accepts the cursors of the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from satellites_repo.model import json_bytes

__all__ = ["binding", "read_cursor", "write_cursor"]

_DIGEST = 16


def binding(index: str, query: Any, sort: Any) -> bytes:
    """What a cursor is valid for: this index, this query with its filters, this sort."""
    return hashlib.sha256(json_bytes({"index": index, "query": query, "sort": sort})).digest()


def write_cursor(values: list[Any], bound_to: bytes) -> str:
    payload = json_bytes(values)
    return f"{_b64(payload)}.{_b64(_mac(payload, bound_to))}"


def read_cursor(cursor: str, bound_to: bytes) -> list[Any]:
    """The sort values to resume after, or ``ValueError`` for a bad or foreign cursor."""
    if not isinstance(cursor, str):
        raise ValueError(f"after must be a cursor string from page.next_cursor, got {cursor!r}")
    try:
        encoded, _, mac = cursor.partition(".")
        payload = _unb64(encoded)
        valid = hmac.compare_digest(_unb64(mac), _mac(payload, bound_to))
        values = orjson.loads(payload) if valid else None
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        values = None
    if not isinstance(values, list):
        raise ValueError(
            "invalid search cursor: not one this query produced (altered, or from another "
            "query, filter or sort); pass page.next_cursor of the same search"
        )
    return values


def _mac(payload: bytes, key: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_DIGEST]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
