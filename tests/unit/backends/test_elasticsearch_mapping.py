"""The diff between a live index's mapping and its declaration (no server needed).

``STORED`` is what Elasticsearch 9.2 answered to ``GET _mapping`` for an index created
with ``INDEX.mappings()``: options equal to their defaults gone, others added or filled in.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from satellites_repo import Computed, SearchIndex, Text
from satellites_repo.backends.elasticsearch._mapping import (
    RECORD,
    declaration,
    diff,
    recorded_mappings,
)
from satellites_repo.model import DenseVector

INDEX = SearchIndex(
    "tickets",
    fields={
        "subject": Text(analyzer="standard", prefixes=True),
        "body": Text(search_analyzer="simple"),
        "status": ("keyword", {"ignore_above": 256, "index": True}),
        "priority": ("integer", {"coerce": "true"}),
        "urgent": "boolean",
        "opened_at": "date",
    },
    computed={"words": Computed(lambda t: 1, type="integer", depends_on=("body",))},
    vector=DenseVector("embedding", 4),
)

STORED: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@key": {"type": "keyword"},
        "body": {"type": "text", "analyzer": "default", "search_analyzer": "simple"},
        "embedding": {
            "type": "dense_vector",
            "dims": 4,
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": "int8_hnsw", "m": 16, "ef_construction": 100},
        },
        "opened_at": {"type": "date"},
        "priority": {"type": "integer", "coerce": True},
        "status": {"type": "keyword", "ignore_above": 256},
        "subject": {
            "type": "text",
            "analyzer": "standard",
            "index_prefixes": {"min_chars": 1, "max_chars": 10},
        },
        "urgent": {"type": "boolean"},
        "words": {"type": "integer"},
    },
}


def created(index: SearchIndex = INDEX) -> dict[str, Any]:
    """The live mapping of an index this library created for ``index``: as Elasticsearch
    stores the fields, with the record it was created with."""
    return {**copy.deepcopy(STORED), "_meta": recorded_mappings(index)["_meta"]}


def changed_fields(index: SearchIndex, live: dict[str, Any]) -> list[str]:
    return [change.what for change in diff(live, index).changed]


def with_field(name: str, declared: Any) -> SearchIndex:
    return dataclasses.replace(INDEX, fields={**INDEX.fields, name: declared})


def test_an_unchanged_declaration_differs_in_nothing() -> None:
    found = diff(created(), INDEX)
    assert (found.added, found.changed, found.dropped) == ({}, (), ())
    assert not found.record_stale


def test_an_index_without_a_record_matches_despite_what_elasticsearch_rewrote() -> None:
    found = diff(STORED, INDEX)
    assert (found.added, found.changed, found.dropped) == ({}, (), ())
    assert found.record_stale  # the record is written once, then the diff is exact
    assert diff({**STORED, "_meta": {RECORD: found.record}}, INDEX).record_stale is False


def test_a_new_field_is_added_and_recorded() -> None:
    evolved = with_field("channel", "keyword")
    found = diff(created(), evolved)
    assert found.added == {"channel": {"type": "keyword"}}
    assert found.changed == ()
    assert found.record["mappings"]["properties"]["channel"] == {"type": "keyword"}
    assert found.record_stale


def test_a_field_of_another_type_is_a_change_naming_both() -> None:
    (change,) = diff(created(), with_field("status", "integer")).changed
    assert change.what == "field 'status'"
    assert change.held == {"type": "keyword", "ignore_above": 256, "index": True}
    assert change.declared == {"type": "integer"}
    assert "{'type': 'integer'}" in str(change)
    assert "'keyword'" in str(change)


def test_another_analyzer_is_a_change() -> None:
    evolved = with_field("subject", Text(analyzer="simple", prefixes=True))
    assert changed_fields(evolved, created()) == ["field 'subject'"]


def test_an_option_taken_out_of_the_declaration_is_a_change() -> None:
    # The live mapping cannot tell: ``index_prefixes`` looks like a default there. The
    # record can.
    evolved = with_field("subject", Text(analyzer="standard"))
    assert changed_fields(evolved, created()) == ["field 'subject'"]


def test_without_a_record_a_changed_type_or_declared_option_is_still_found() -> None:
    evolved = dataclasses.replace(
        INDEX,
        fields={**INDEX.fields, "subject": Text(analyzer="whitespace"), "urgent": "keyword"},
    )
    assert changed_fields(evolved, STORED) == ["field 'subject'", "field 'urgent'"]


def test_a_field_no_longer_declared_is_dropped_and_kept_in_the_record() -> None:
    fields = {name: kind for name, kind in INDEX.fields.items() if name != "urgent"}
    found = diff(created(), dataclasses.replace(INDEX, fields=fields))
    assert found.dropped == ("urgent",)
    assert (found.added, found.changed) == ({}, ())
    assert found.record["mappings"]["properties"]["urgent"] == {"type": "boolean"}


def test_a_record_that_lacks_a_held_field_reads_it_from_the_live_mapping() -> None:
    # Two starts with different declarations raced, and the last record written lacks
    # the field the other one put.
    live = created()
    live["properties"]["channel"] = {"type": "keyword"}
    found = diff(live, with_field("channel", "keyword"))
    assert (found.added, found.changed) == ({}, ())
    assert found.record_stale


def test_a_field_in_the_record_but_not_in_the_index_is_added() -> None:
    live = created(with_field("channel", "keyword"))
    assert diff(live, with_field("channel", "keyword")).added == {"channel": {"type": "keyword"}}


def test_an_index_without_the_key_field_needs_a_reindex() -> None:
    live = copy.deepcopy(STORED)
    del live["properties"]["@key"]
    found = diff(live, INDEX)
    assert found.added == {}
    assert [str(change) for change in found.changed] == [
        "field '@key' is missing from the index, declared {'type': 'keyword'}"
    ]


def test_an_index_with_a_dynamic_mapping_is_a_change() -> None:
    live = {"properties": copy.deepcopy(STORED["properties"])}  # auto-created by a write
    assert changed_fields(INDEX, live) == ["mapping option 'dynamic'"]


def test_changed_analysis_settings_are_a_change() -> None:
    analysis = {"analyzer": {"folded": {"type": "custom", "tokenizer": "standard"}}}
    before = dataclasses.replace(INDEX, settings={"analysis": analysis})
    folding = {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}
    after = dataclasses.replace(INDEX, settings={"analysis": {"analyzer": {"folded": folding}}})
    assert changed_fields(after, created(before)) == ["settings 'analysis'"]
    assert changed_fields(before, created(before)) == []


def test_values_compare_as_elasticsearch_spells_them() -> None:
    live = copy.deepcopy(STORED)
    live["properties"]["status"]["ignore_above"] = "256"
    live["properties"]["body"]["copy_to"] = ["all"]
    evolved = with_field("body", ("text", {"search_analyzer": "simple", "copy_to": "all"}))
    assert changed_fields(evolved, live) == []


def test_the_record_is_the_declaration() -> None:
    record = recorded_mappings(INDEX)["_meta"][RECORD]
    assert record == declaration(INDEX)
    assert record["mappings"] == INDEX.mappings()
