"""Filter values beyond equality: ``Range`` on numbers and dates.

filters={"priority": Range(gte=2), "opened_at": Range(gte=last_week, lt=today)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from satellites_repo.model.codec import json_safe

__all__ = ["Range"]


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds on a numeric or date field; give at least one (``gt``/``gte``, ``lt``/``lte``)."""

    gte: Any = None
    gt: Any = None
    lte: Any = None
    lt: Any = None

    def __post_init__(self) -> None:
        if all(bound is None for bound in (self.gte, self.gt, self.lte, self.lt)):
            raise ValueError("Range needs at least one bound: gte, gt, lte or lt")
        if self.gte is not None and self.gt is not None:
            raise ValueError("Range takes gte or gt, not both")
        if self.lte is not None and self.lt is not None:
            raise ValueError("Range takes lte or lt, not both")
        for bound in (self.gte, self.gt, self.lte, self.lt):
            if isinstance(bound, bool):
                raise ValueError("Range bounds are numbers or dates, not booleans")

    def bounds(self) -> dict[str, Any]:
        """The given bounds as JSON-safe values (a datetime as ISO 8601 text)."""
        given = {"gte": self.gte, "gt": self.gt, "lte": self.lte, "lt": self.lt}
        return {name: json_safe(value) for name, value in given.items() if value is not None}
