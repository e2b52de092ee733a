"""What the declared search indices need from the cluster, checked once at start.

Minimal distributions (the integ-test zip) lack modules the full one ships: the
``search_as_you_type`` type lives in ``mapper-extras``; the built-in analyzers beyond
``standard``, ``simple``, ``whitespace``, ``keyword`` and ``stop`` (the language analyzers,
``pattern``, ``fingerprint``) in ``analysis-common``.
Without this check the first index creation or query would fail far from the declaration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from elasticsearch import ApiError, AsyncElasticsearch

from satellites_repo.errors import ConfigurationError
from satellites_repo.model.fields import ANALYZER_OPTIONS

if TYPE_CHECKING:
    from satellites_repo.model import SearchIndex

__all__ = ["check_capabilities"]

_TYPE_MODULES = {"search_as_you_type": "mapper-extras"}


async def check_capabilities(client: AsyncElasticsearch, indices: Iterable[SearchIndex]) -> None:
    """``ConfigurationError`` naming each field type or analyzer this cluster cannot serve."""
    declared = list(indices)
    problems = await _missing_modules(client, declared)
    for index, field, analyzer in _analyzers(declared):
        if not await _has_analyzer(client, analyzer):
            problems.append(
                f"SearchIndex {index.index!r} field {field!r}: analyzer {analyzer!r} is not "
                "available on this Elasticsearch (the language analyzers, 'pattern' and "
                "'fingerprint' come with the analysis-common module of the full distribution "
                "and Docker image; a custom one must be defined in "
                "SearchIndex(settings={'analysis': ...}))"
            )
    if problems:
        raise ConfigurationError("; ".join(problems))


async def _missing_modules(client: AsyncElasticsearch, indices: list[SearchIndex]) -> list[str]:
    wanted = {
        (index.index, name, kind)
        for index in indices
        for name, kind in index.kinds.items()
        if kind in _TYPE_MODULES
    }
    if not wanted:
        return []
    present = await _modules(client)
    return [
        f"SearchIndex {index!r} field {name!r}: type {kind!r} needs the Elasticsearch module "
        f"{_TYPE_MODULES[kind]!r} (in the full distribution and Docker image; this cluster "
        "lacks it): declare Text(prefixes=True) instead, which repository.suggest also serves"
        for index, name, kind in sorted(wanted)
        if _TYPE_MODULES[kind] not in present
    ]


async def _modules(client: AsyncElasticsearch) -> set[str]:
    """Modules and plugins installed on every node (what all of them have in common)."""
    response = await client.nodes.info(metric="plugins")
    nodes: Mapping[str, Any] = response["nodes"]
    sets = [
        {item["name"] for item in [*node.get("modules", []), *node.get("plugins", [])]}
        for node in nodes.values()
    ]
    return set.intersection(*sets) if sets else set()


def _analyzers(indices: list[SearchIndex]) -> list[tuple[SearchIndex, str, str]]:
    """(index, field, analyzer) for analyzers not defined in the index's own settings."""
    found = []
    for index in indices:
        analysis = index.settings.get("analysis", {})
        custom = set(analysis.get("analyzer", {})) if isinstance(analysis, Mapping) else set()
        for name, mapping in index.properties().items():
            for option in ANALYZER_OPTIONS:
                analyzer = mapping.get(option)
                if isinstance(analyzer, str) and analyzer not in custom:
                    found.append((index, name, analyzer))
    return found


async def _has_analyzer(client: AsyncElasticsearch, analyzer: str) -> bool:
    try:
        await client.indices.analyze(analyzer=analyzer, text="probe")
    except ApiError as exc:
        if exc.status_code == 400:
            return False
        raise
    return True
