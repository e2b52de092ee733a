"""Query pieces and cursors as Elasticsearch receives them (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from satellites_repo import AnyOf, Computed, Range, SearchIndex, Text
from satellites_repo.backends.elasticsearch._cursor import binding, read_cursor, write_cursor
from satellites_repo.backends.elasticsearch._query import (
    es_aggregations,
    es_query,
    es_sort,
    facet_counts,
    suggestion,
)

INDEX = SearchIndex(
    "tickets",
    fields={
        "subject": Text(analyzer="standard", prefixes=True),
        "status": "keyword",
        "urgent": "boolean",
        "priority": "integer",
        "opened_at": "date",
    },
    computed={"words": Computed(lambda t: 1, type="integer", depends_on=("subject",))},
)


def test_the_mapping_carries_the_key_options_and_computed_fields() -> None:
    properties = INDEX.mappings()["properties"]
    assert properties["@key"] == {"type": "keyword"}
    assert properties["subject"] == {
        "type": "text",
        "analyzer": "standard",
        "index_prefixes": {"min_chars": 1, "max_chars": 10},
    }
    assert properties["words"] == {"type": "integer"}
    assert INDEX.text_fields == ["subject"]
    assert "words" in INDEX.filter_fields


def test_every_sort_ends_with_the_key() -> None:
    assert es_sort(INDEX, ()) == [{"_score": {"order": "desc"}}, {"@key": {"order": "asc"}}]
    assert es_sort(INDEX, ["-opened_at", "priority"]) == [
        {"opened_at": {"order": "desc"}},
        {"priority": {"order": "asc"}},
        {"@key": {"order": "asc"}},
    ]
    with pytest.raises(ValueError, match="already sorts best first"):
        es_sort(INDEX, ["-_score"])
    with pytest.raises(ValueError, match="cannot sort"):
        es_sort(INDEX, ["subject"])


def test_filters_keep_booleans_ranges_and_missing_values_typed() -> None:
    since = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    query = es_query(
        INDEX,
        "printer",
        {"urgent": False, "opened_at": Range(gte=since), "status": AnyOf("open"), "priority": None},
        unset="opened_at",
    )
    assert query["bool"]["filter"] == [
        {"term": {"urgent": False}},
        {"range": {"opened_at": {"gte": "2024-05-01T00:00:00+00:00"}}},
        {"terms": {"status": ["open"]}},
        {"bool": {"must_not": [{"exists": {"field": "priority"}}]}},
        {"bool": {"must_not": [{"exists": {"field": "opened_at"}}]}},
    ]
    with pytest.raises(ValueError, match="Range filters numbers and dates"):
        es_query(INDEX, "x", {"status": Range(gte=1)})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Range(), "at least one bound"),
        (lambda: Range(gt=1, gte=2), "gte or gt"),
        (lambda: Range(gte=True), "not booleans"),
        (lambda: Computed(len, type="integer"), "depends_on"),
        (lambda: SearchIndex("x", fields={"a": ("text", {"type": "keyword"})}), "type once"),
        (lambda: SearchIndex("x", fields={"a": "txt"}), "unknown type"),  # type: ignore[dict-item]
    ],
)
def test_bad_declarations_name_the_problem(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_facets_are_typed_as_their_field() -> None:
    assert es_aggregations(INDEX, ["status"]) == {
        "status": {"terms": {"field": "status", "size": 100}}
    }
    aggregations = {
        "status": {"buckets": [{"key": "open", "doc_count": 12}]},
        "urgent": {"buckets": [{"key": 0, "key_as_string": "false", "doc_count": 3}]},
        "priority": {"buckets": [{"key": 2, "doc_count": 5}]},
    }
    assert facet_counts(INDEX, aggregations, ["status", "urgent", "priority"]) == {
        "status": {"open": 12},
        "urgent": {False: 3},
        "priority": {2: 5},
    }
    with pytest.raises(ValueError, match="cannot facet"):
        es_aggregations(INDEX, ["subject"])


def test_suggest_is_a_bool_prefix_match_on_text_fields() -> None:
    assert suggestion(INDEX, "subject", "prin") == {
        "match_bool_prefix": {"subject": {"query": "prin"}}
    }
    with pytest.raises(ValueError, match="cannot suggest"):
        suggestion(INDEX, "status", "op")


def test_a_cursor_is_bound_to_its_query_and_refuses_changes() -> None:
    mine = binding("tickets", {"match_all": {}}, [{"@key": "asc"}])
    other = binding("tickets", {"term": {"tenant_id": "globex"}}, [{"@key": "asc"}])
    cursor = write_cursor([3, "abc"], mine)
    assert read_cursor(cursor, mine) == [3, "abc"]
    values, _, mac = cursor.partition(".")
    for bad in (f"{values}A.{mac}", f"{values}.{mac[:-2]}", "x", ""):
        with pytest.raises(ValueError, match="invalid search cursor"):
            read_cursor(bad, mine)
    with pytest.raises(ValueError, match="invalid search cursor"):
        read_cursor(cursor, other)
