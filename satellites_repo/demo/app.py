"""The knowledge base over HTTP: a FastAPI app with one unit of work per request.

Needs the ``web`` extra (``pip install 'satellites-repo[web]'``). Run it with::

    uvicorn --factory satellites_repo.demo.app:create_app

The ``DataLayer`` is opened in the app's lifespan and closed with it; each request that
needs data gets its own unit of work from a dependency, and a handler that writes
commits explicitly, so a request that fails half-way leaves no trace in Postgres, Redis,
Elasticsearch or FAISS. Article routes are scoped to the tenant in the ``X-Tenant``
header (where an authentication layer would put it): another tenant's article is a 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from satellites_repo import (
    ConcurrencyError,
    DataLayer,
    DataLayerConfig,
    NotFoundError,
    UnitOfWork,
)
from satellites_repo.demo.embedding import DIM, Embedder, HashingEmbedder
from satellites_repo.demo.models import Article, Articles, Tenant, Tenants, article_text
from satellites_repo.migrate import create_tables

__all__ = ["create_app"]

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


# -- wire models ----------------------------------------------------------------------------


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TenantOut(BaseModel):
    id: str
    name: str


class ArticleIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)


class ArticlePatch(BaseModel):
    """Fields to change; ``version`` (optional) is the version the client last read."""

    title: str | None = Field(default=None, min_length=1, max_length=500)
    body: str | None = Field(default=None, min_length=1)
    tags: list[str] | None = None
    version: int | None = None


class ArticleOut(BaseModel):
    """An article as the API shows it: every column but the embedding."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: str
    title: str
    body: str
    tags: list[str]
    created_at: dt.datetime
    version: int

    @classmethod
    def of(cls, article: Article) -> ArticleOut:
        return cls.model_validate(article)


class SearchHitOut(BaseModel):
    article: ArticleOut
    score: float
    highlights: dict[str, list[str]]


class SearchOut(BaseModel):
    total: int
    hits: list[SearchHitOut]


class SimilarOut(BaseModel):
    article: ArticleOut
    score: float


# -- dependencies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """What the lifespan opens and every request borrows."""

    data: DataLayer
    embedder: Embedder


def knowledge_base(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.knowledge_base
    return kb


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """A unit of work for this request; leaving it without ``commit()`` rolls back."""
    async with knowledge_base(request).data.unit_of_work() as uow:
        yield uow


UoW = Annotated[UnitOfWork, Depends(unit_of_work)]
KB = Annotated[KnowledgeBase, Depends(knowledge_base)]
TenantId = Annotated[str, Path(pattern=TENANT_PATTERN)]
TenantHeader = Annotated[str, Header(alias="X-Tenant", pattern=TENANT_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=50)]

router = APIRouter()


async def _tenant(uow: UnitOfWork, tenant: str) -> Tenant:
    found = await uow.repository(Tenants).get(tenant)
    if found is None:
        raise HTTPException(404, f"tenant {tenant!r} not found")
    return found


async def _article(uow: UnitOfWork, tenant: str, article_id: uuid.UUID) -> Article:
    """The article if it belongs to ``tenant``; another tenant's article does not exist."""
    article = await uow.repository(Articles).get(article_id)
    if article is None or article.tenant_id != tenant:
        raise HTTPException(404, f"article {article_id} not found")
    return article


def _embedding(kb: KnowledgeBase, title: str, body: str) -> list[float]:
    vector: list[float] = kb.embedder.embed([article_text(title, body)])[0].tolist()
    return vector


# -- routes ---------------------------------------------------------------------------------


@router.put("/tenants/{tenant}")
async def put_tenant(tenant: TenantId, payload: TenantIn, uow: UoW) -> TenantOut:
    """Create the tenant, or rename it."""
    existing = await uow.repository(Tenants).get(tenant)
    if existing is None:
        existing = await uow.repository(Tenants).add(Tenant(id=tenant, name=payload.name))
    existing.name = payload.name
    await uow.commit()
    return TenantOut(id=existing.id, name=existing.name)


@router.post("/tenants/{tenant}/articles", status_code=201)
async def create_article(tenant: TenantId, payload: ArticleIn, uow: UoW, kb: KB) -> ArticleOut:
    await _tenant(uow, tenant)
    article = Article(
        tenant_id=tenant,
        title=payload.title,
        body=payload.body,
        tags=payload.tags,
        embedding=_embedding(kb, payload.title, payload.body),
    )
    await uow.repository(Articles).add(article)
    await uow.commit()
    return ArticleOut.of(article)


@router.get("/articles/{article_id}")
async def get_article(article_id: uuid.UUID, tenant: TenantHeader, uow: UoW) -> ArticleOut:
    return ArticleOut.of(await _article(uow, tenant, article_id))


@router.patch("/articles/{article_id}")
async def patch_article(
    article_id: uuid.UUID, payload: ArticlePatch, tenant: TenantHeader, uow: UoW, kb: KB
) -> ArticleOut:
    article = await _article(uow, tenant, article_id)
    if payload.version is not None and payload.version != article.version:
        raise HTTPException(
            409, f"article {article_id} is at version {article.version}, not {payload.version}"
        )
    if payload.tags is not None:
        article.tags = payload.tags
    if payload.title is not None or payload.body is not None:
        article.title = payload.title or article.title
        article.body = payload.body or article.body
        article.embedding = _embedding(kb, article.title, article.body)
    await uow.commit()
    return ArticleOut.of(article)


@router.delete("/articles/{article_id}", status_code=204)
async def delete_article(article_id: uuid.UUID, tenant: TenantHeader, uow: UoW) -> None:
    article = await _article(uow, tenant, article_id)
    await uow.repository(Articles).delete(article)
    await uow.commit()


@router.get("/tenants/{tenant}/search")
async def search_articles(
    tenant: TenantId,
    uow: UoW,
    q: Annotated[str, Query(min_length=1)],
    tag: str | None = None,
    limit: Limit = 10,
) -> SearchOut:
    """Full-text search over title and body, inside the tenant (and a tag, if given)."""
    filters: dict[str, str] = {"tenant_id": tenant}
    if tag is not None:
        filters["tags"] = tag
    page = await uow.repository(Articles).search(q, filters=filters, limit=limit)
    hits = [
        SearchHitOut(article=ArticleOut.of(hit.entity), score=hit.score, highlights=hit.highlights)
        for hit in page
    ]
    return SearchOut(total=page.total, hits=hits)


@router.get("/tenants/{tenant}/similar/{article_id}")
async def similar_articles(
    tenant: TenantId, article_id: uuid.UUID, uow: UoW, limit: Limit = 5
) -> list[SimilarOut]:
    """The tenant's articles closest to this one by embedding (itself left out)."""
    article = await _article(uow, tenant, article_id)
    hits = await uow.repository(Articles).similar(article, k=limit, filters={"tenant_id": tenant})
    return [SimilarOut(article=ArticleOut.of(hit.entity), score=hit.score) for hit in hits]


# -- the app --------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


def create_app(
    config: DataLayerConfig | None = None, *, embedder: Embedder | None = None
) -> FastAPI:
    """The app; ``config`` defaults to ``DataLayerConfig.from_env()``, read at startup.

    The FAISS dimension is set to the model's (``DIM``): the ``Vector`` column fixes it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = config if config is not None else DataLayerConfig.from_env()
        settings = settings.replace(faiss=settings.faiss.replace(dimension=DIM))
        await create_tables(settings)
        async with DataLayer(settings, repositories=[Articles, Tenants]) as data:
            app.state.knowledge_base = KnowledgeBase(data, embedder or HashingEmbedder())
            yield

    app = FastAPI(title="Knowledge base (satellites example)", lifespan=lifespan)
    app.include_router(router)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConcurrencyError, _conflict)
    return app
