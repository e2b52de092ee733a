"""The run's output: a rich table on the terminal, one JSON document, a Markdown table.

Every renderer reads the JSON form of the figures (``Figure.as_json``), so a table can
be printed again later from a saved ``latest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["markdown_table", "print_table", "read_json", "write_json"]

_HEADERS = ("benchmark", "baseline", "metric", "satellites", "baseline", "ratio", "min-max")


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _verdict(figure: Mapping[str, Any]) -> str:
    met = figure["met"]
    return "info" if met is None else ("met" if met else "MISSED")


def _cells(figure: Mapping[str, Any]) -> Iterator[str]:
    """The text of one row, in ``_HEADERS`` order, then the target and the verdict."""
    ratio = figure["ratio"]
    yield figure["name"]
    yield figure["baseline"]
    yield f"{figure['metric']} ({figure['unit']})"
    yield _number(figure["subject_value"]["median"])
    yield _number(figure["baseline_value"]["median"])
    yield f"{ratio['median']:.2f}x"
    yield f"{ratio['min']:.2f}-{ratio['max']:.2f}"
    yield figure["target"] or ""
    yield _verdict(figure)


_STYLES = {"met": "bold green", "MISSED": "bold red", "info": "dim"}


def print_table(figures: Sequence[Mapping[str, Any]], title: str, console: Console) -> None:
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("benchmark (baseline)", overflow="fold", ratio=3)
    for header in (*_HEADERS[2:], "target", ""):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for figure in figures:
        name, baseline, *numbers, verdict = _cells(figure)
        label = Text(name)
        label.append(f"\n{baseline}", style="dim")
        table.add_row(label, *numbers, Text(verdict, style=_STYLES[verdict]))
    console.print(table)


def markdown_table(figures: Sequence[Mapping[str, Any]]) -> str:
    headers = (*_HEADERS, "target", "")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(_cells(figure)) + " |" for figure in figures)
    return "\n".join(lines)


def write_json(path: Path, meta: Mapping[str, Any], figures: Sequence[Mapping[str, Any]]) -> None:
    document = {"meta": meta, "figures": list(figures)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document
