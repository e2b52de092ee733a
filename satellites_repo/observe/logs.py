"""``extra`` fields for the library's log records, so a JSON formatter shows them.

``logger.warning("...", extra=log_fields(table=..., key=..., txid=...))``: the record gets
``table``, ``key`` and ``txid`` attributes (only those known), which formatters such as
python-json-logger emit as fields. The message text is unchanged.
"""

from __future__ import annotations

__all__ = ["log_fields"]


def log_fields(
    *, table: str | None = None, key: str | None = None, txid: int | None = None
) -> dict[str, str | int]:
    pairs = (("table", table), ("key", key), ("txid", txid))
    return {name: value for name, value in pairs if value is not None}
