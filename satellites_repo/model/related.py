"""Related fields: columns of the rows a model reaches through one of its relationships.

    related={"customer": ("name", "tier")}                      # many-to-one
    related={"tickets": Related(("subject",), max_fanout=500)}  # one-to-many

Each declared column becomes a document field named ``<relationship>.<column>`` (one value
through a many-to-one relationship, a list through a one-to-many one). A plain tuple of
names takes each field's type from its column (text columns are ``keyword``: filtered and
faceted on); a mapping gives the types as ``fields=`` does (``{"name": "text"}``).

A one-to-many relationship must declare ``max_fanout``: the most related rows one document
embeds. A row with more is refused by the index with that reason (dead-lettered, named in
``satellites outbox status``), never silently cut short; raise the limit and retry it.

Related rows are read from Postgres when a document is built (``outbox.related``), and a
document with related fields is written at a version taken from the database sequence
*before* its rows are read, not at its row's version: of the
deliveries of one document, the one with the highest version read the newest rows, whatever
order the rows' transactions committed in. The capture of related tables (its triggers)
owes every document that embeds a changed row a re-projection through the outbox.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy.orm import Mapper, RelationshipDirection

if TYPE_CHECKING:
    from satellites_repo.model.fields import FieldDeclaration, FieldType

__all__ = [
    "Related",
    "RelatedDeclaration",
    "RelatedJoin",
    "as_related",
    "resolve_related",
]

_INFERRED: tuple[tuple[type, FieldType], ...] = (
    (bool, "boolean"),  # before int: a bool is an int
    (int, "long"),
    (float, "double"),
    (Decimal, "double"),
    (dt.datetime, "date"),
    (dt.date, "date"),
    (str, "keyword"),
    (uuid.UUID, "keyword"),
)


@dataclass(frozen=True, slots=True)
class Related:
    """The columns a document embeds from one relationship.

    ``fields``: column names (types from the columns) or ``{column: type}``.
    ``max_fanout``: for a one-to-many relationship, the most rows one document embeds.
    """

    fields: Mapping[str, FieldDeclaration | None] | Sequence[str]
    max_fanout: int | None = None

    def __post_init__(self) -> None:
        declared = self.fields
        if isinstance(declared, str):
            declared = (declared,)
        named = dict(declared) if isinstance(declared, Mapping) else dict.fromkeys(declared)
        if not named:
            raise ValueError("Related needs at least one column")
        for name in named:
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(f"Related columns are plain column names, not {name!r}")
        if self.max_fanout is not None and (
            isinstance(self.max_fanout, bool) or self.max_fanout < 1
        ):
            raise ValueError(f"Related max_fanout must be a positive number, not {self.max_fanout}")
        object.__setattr__(self, "fields", named)

    @property
    def columns(self) -> dict[str, FieldDeclaration | None]:
        """Each column with its declared type (``None``: the column's, set at start)."""
        return dict(self.fields)  # type: ignore[arg-type]


RelatedDeclaration: TypeAlias = "Related | Sequence[str] | Mapping[str, FieldDeclaration]"


def as_related(name: str, declared: object) -> Related:
    """A ``related=`` value as a ``Related``, or ``ValueError`` naming the relationship."""
    if isinstance(declared, Related):
        return declared
    if isinstance(declared, Mapping | tuple | list | str):
        try:
            return Related(declared)
        except ValueError as exc:
            raise ValueError(f"related {name!r}: {exc}") from None
    raise ValueError(
        f"related {name!r} takes column names, {{column: type}} or Related(...), not {declared!r}"
    )


@dataclass(frozen=True, slots=True)
class RelatedJoin:
    """One declared relationship, resolved against the models at start.

    ``local``/``remote``: the attributes the join compares (many-to-one: the model's foreign
    key and the related key; one-to-many: the model's key and the related foreign key), with
    their column names for the database triggers.
    """

    name: str
    many: bool
    target: type[Any]
    table: str
    key: str
    key_column: str
    local: str
    local_column: str
    remote: str
    remote_column: str
    fields: tuple[str, ...]
    columns: tuple[str, ...]
    max_fanout: int | None

    def field(self, column: str) -> str:
        return f"{self.name}.{column}"


def resolve_related(
    owner: str, mapper: Mapper[Any], related: Mapping[str, Related]
) -> tuple[dict[str, Related], tuple[RelatedJoin, ...]]:
    """The declarations with every type filled in, and the joins; ``ValueError`` naming
    what does not fit the model (``owner`` names the repository)."""
    typed: dict[str, Related] = {}
    joins: list[RelatedJoin] = []
    for name, declared in related.items():
        relationship = mapper.relationships.get(name)
        if relationship is None:
            raise ValueError(
                f"{owner}: related {name!r} is not a relationship of {mapper.class_.__name__}"
            )
        if relationship.secondary is not None or len(relationship.local_remote_pairs or ()) != 1:
            raise ValueError(
                f"{owner}: related {name!r} must join on one foreign key column "
                "(many-to-one or one-to-many, no association table)"
            )
        many = relationship.direction is RelationshipDirection.ONETOMANY
        if many and declared.max_fanout is None:
            raise ValueError(
                f"{owner}: related {name!r} is one-to-many, so it must declare the most rows "
                f"one document embeds: Related({tuple(declared.columns)!r}, max_fanout=N)"
            )
        target: Mapper[Any] = relationship.mapper
        ((local, remote),) = relationship.local_remote_pairs or ()
        if many and local not in mapper.primary_key:
            raise ValueError(
                f"{owner}: related {name!r} must join on {mapper.class_.__name__}'s primary key"
            )
        keys = target.primary_key
        if len(keys) != 1:
            raise ValueError(f"{owner}: related {name!r} needs a single-column primary key")
        columns: dict[str, FieldDeclaration | None] = {}
        for column, kind in declared.columns.items():
            attribute = target.column_attrs.get(column)
            if attribute is None:
                raise ValueError(
                    f"{owner}: related {name!r} names {column!r}, which is not a column of "
                    f"{target.class_.__name__}"
                )
            columns[column] = kind or _inferred(owner, name, column, attribute.columns[0])
        typed[name] = dataclasses.replace(declared, fields=columns)
        joins.append(
            RelatedJoin(
                name=name,
                many=many,
                target=target.class_,
                table=target.local_table.name,  # type: ignore[attr-defined]
                key=target.get_property_by_column(keys[0]).key,
                key_column=keys[0].name,
                local=mapper.get_property_by_column(local).key,
                local_column=local.name,
                remote=target.get_property_by_column(remote).key,
                remote_column=remote.name,
                fields=tuple(columns),
                columns=tuple(target.column_attrs[c].columns[0].name for c in columns),
                max_fanout=declared.max_fanout,
            )
        )
    return typed, tuple(joins)


def _inferred(owner: str, name: str, column: str, sql_column: Any) -> FieldDeclaration:
    try:
        python_type = sql_column.type.python_type
    except NotImplementedError:
        python_type = None
    for kind, field_type in _INFERRED:
        if python_type is not None and issubclass(python_type, kind):
            return field_type
    raise ValueError(
        f"{owner}: related {name!r} column {column!r} has no obvious search type; "
        f'declare it: related={{{name!r}: {{{column!r}: "keyword"}}}}'
    )
