"""Timing and the figures a run reports: a ratio per repetition, then median and spread.

Every figure compares the library (the subject) with a baseline measured in the same
run, interleaved with it, so that load from other processes falls on both sides alike.
A repetition yields one value per side and one ratio; the figure reports the median of
the ratios and their min and max across repetitions (with few repetitions, min/max is
the honest spread; percentiles of five values would only rename them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Figure", "Spread", "Target", "percentile", "timed"]


async def timed(operation: Callable[[], Awaitable[object]]) -> float:
    """Seconds one awaited call took."""
    started = time.perf_counter()
    await operation()
    return time.perf_counter() - started


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) by linear interpolation between ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, min and max of one value across repetitions."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def as_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high}


@dataclass(frozen=True, slots=True)
class Target:
    """What the ratio must be: at most (``<=``) or at least (``>=``) ``value``."""

    op: Literal["<=", ">="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}x"


@dataclass(frozen=True)
class Figure:
    """One compared measurement: per-repetition values of both sides and their ratios.

    ``ratio`` is ``subject / baseline`` (lower is better), except for a speedup
    (``speedup=True``), where it is ``baseline / subject`` (higher is better).
    """

    name: str
    metric: str
    unit: str
    subject: str
    baseline: str
    subject_values: list[float]
    baseline_values: list[float]
    target: Target | None = None
    speedup: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        pairs = zip(self.subject_values, self.baseline_values, strict=True)
        if self.speedup:
            return [baseline / subject for subject, baseline in pairs]
        return [subject / baseline for subject, baseline in pairs]

    @property
    def ratio(self) -> Spread:
        return Spread.of(self.ratios)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.ratio.median)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "unit": self.unit,
            "subject": self.subject,
            "baseline": self.baseline,
            "ratio_definition": (
                "baseline / subject (speedup)" if self.speedup else "subject / baseline"
            ),
            "subject_value": Spread.of(self.subject_values).as_json(),
            "baseline_value": Spread.of(self.baseline_values).as_json(),
            "ratio": self.ratio.as_json(),
            "per_repetition": {
                "subject": self.subject_values,
                "baseline": self.baseline_values,
                "ratio": self.ratios,
            },
            "target": None if self.target is None else str(self.target),
            "met": self.met,
            "notes": self.notes,
        }
