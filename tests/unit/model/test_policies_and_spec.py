"""Declarations are checked against the model before anything connects."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import (
    CachePolicy,
    ConfigurationError,
    Repository,
    SearchIndex,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.model.spec import Registry
from tests.unit.models import UnitModel


class Doc(UnitModel, Versioned):
    __tablename__ = "unit_docs"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str]
    title: Mapped[str]
    embedding: Mapped[list[float]] = mapped_column(Vector(8))


class Plain(UnitModel):
    __tablename__ = "unit_plain"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


class Pair(UnitModel, Versioned):
    __tablename__ = "unit_pair"
    a: Mapped[int] = mapped_column(primary_key=True)
    b: Mapped[int] = mapped_column(primary_key=True)


def test_repository_learns_its_model_from_the_generic_argument() -> None:
    class Docs(Repository[Doc]):
        pass

    assert Docs.model is Doc


def test_a_valid_declaration_registers() -> None:
    class Docs(Repository[Doc]):
        cache = CachePolicy(ttl=10)
        search = SearchIndex("docs", fields={"title": "text", "tenant_id": "keyword"})
        vectors = VectorField("embedding", namespace="docs", metadata=("tenant_id",))

    registry = Registry([Docs], dimension=8)
    spec = registry.spec_of_repository(Docs)
    assert spec.search is Docs.search
    assert registry.spec_for(Doc) is spec
    assert registry.spec_of_table("unit_docs") is spec


def test_unknown_search_field_is_named() -> None:
    class Docs(Repository[Doc]):
        search = SearchIndex("docs", fields={"titel": "text"})

    with pytest.raises(ConfigurationError, match="titel"):
        Registry([Docs], dimension=8)


def test_vector_dimension_must_match_the_faiss_index() -> None:
    class Docs(Repository[Doc]):
        vectors = VectorField("embedding", namespace="docs")

    with pytest.raises(ConfigurationError, match=r"Vector\(8\).*dimension 16"):
        Registry([Docs], dimension=16)


def test_vector_field_must_name_a_vector_column() -> None:
    class Docs(Repository[Doc]):
        vectors = VectorField("title", namespace="docs")

    with pytest.raises(ConfigurationError, match="not a Vector column"):
        Registry([Docs], dimension=8)


def test_vector_metadata_must_name_columns() -> None:
    class Docs(Repository[Doc]):
        vectors = VectorField("embedding", namespace="docs", metadata=("tenant",))

    with pytest.raises(ConfigurationError, match="tenant"):
        Registry([Docs], dimension=8)


def test_projected_models_must_be_versioned() -> None:
    class Plains(Repository[Plain]):
        cache = CachePolicy()

    with pytest.raises(ConfigurationError, match="Versioned"):
        Registry([Plains], dimension=8)


def test_unprojected_models_need_no_version() -> None:
    class Plains(Repository[Plain]):
        pass

    assert not Registry([Plains], dimension=8).spec_of_repository(Plains).projected


def test_composite_primary_keys_are_refused() -> None:
    class Pairs(Repository[Pair]):
        pass

    with pytest.raises(ConfigurationError, match="composite primary key"):
        Registry([Pairs], dimension=8)


def test_two_repositories_for_one_model_are_refused() -> None:
    class Docs(Repository[Doc]):
        pass

    class MoreDocs(Repository[Doc]):
        pass

    with pytest.raises(ConfigurationError, match="both manage Doc"):
        Registry([Docs, MoreDocs], dimension=8)


def test_unregistered_repository_lookup_says_how_to_register() -> None:
    class Docs(Repository[Doc]):
        pass

    with pytest.raises(ConfigurationError, match="repositories="):
        Registry([], dimension=8).spec_of_repository(Docs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SearchIndex("Bad Name", fields={"t": "text"}), "lowercase"),
        (lambda: SearchIndex("docs", fields={}), "at least one field"),
        (lambda: SearchIndex("docs", fields={"t": "txt"}), "unknown type 'txt'"),  # type: ignore[dict-item]
        (lambda: VectorField("embedding", namespace="../escape"), "is invalid"),
        (lambda: CachePolicy(ttl=0), "positive"),
        (lambda: Vector(0), "positive"),
    ],
)
def test_bad_declarations_fail_with_a_named_problem(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_search_index_mapping_is_strict_and_typed() -> None:
    index = SearchIndex("docs", fields={"title": "text", "tenant_id": "keyword"})
    assert index.mappings() == {
        "dynamic": "strict",
        "properties": {
            "@key": {"type": "keyword"},
            "title": {"type": "text"},
            "tenant_id": {"type": "keyword"},
        },
    }
    assert index.text_fields == ["title"]
    assert index.filter_fields == ["tenant_id"]


class DocVectors(Repository[Doc]):
    vectors = VectorField("embedding", namespace="docs", metadata=("tenant_id",))


def test_the_vector_dimension_comes_from_the_vector_column() -> None:
    assert Registry([DocVectors]).vector_dimension == 8
    assert Registry([]).vector_dimension is None


def test_a_layer_without_a_configured_dimension_takes_the_columns() -> None:
    from satellites_repo import DataLayer, DataLayerConfig

    assert DataLayer(DataLayerConfig(), repositories=[DocVectors]).vectors.dimension == 8


def test_repositories_whose_vectors_disagree_are_one_clear_error() -> None:
    class Wide(UnitModel, Versioned):
        __tablename__ = "unit_wide"
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
        tenant_id: Mapped[str]
        embedding: Mapped[list[float]] = mapped_column(Vector(16))

    class Wides(Repository[Wide]):
        vectors = VectorField("embedding", namespace="wide")

    with pytest.raises(ConfigurationError, match=r"Wides.*Vector\(16\).*DocVectors's vectors"):
        Registry([DocVectors, Wides])
