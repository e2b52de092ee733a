"""A multi-tenant SaaS knowledge base built on satellites; ``satellites demo`` runs it.

Tenants own articles; articles are cached in Redis, searched in Elasticsearch and compared
by their embeddings in FAISS, with Postgres the truth behind all three. The web app
(``app.py``, FastAPI) needs the ``web`` extra and is not imported here.
"""

from __future__ import annotations

from satellites_repo.demo.data import (
    TENANTS,
    ArticleSeed,
    TenantSeed,
    generate_articles,
    to_articles,
    to_tenants,
)
from satellites_repo.demo.embedding import DIM, Embedder, HashingEmbedder
from satellites_repo.demo.models import (
    SEARCH_INDEX,
    VECTOR_NAMESPACE,
    Article,
    Articles,
    Tenant,
    Tenants,
    article_text,
)

__all__ = [
    "DIM",
    "SEARCH_INDEX",
    "TENANTS",
    "VECTOR_NAMESPACE",
    "Article",
    "ArticleSeed",
    "Articles",
    "Embedder",
    "HashingEmbedder",
    "Tenant",
    "TenantSeed",
    "Tenants",
    "article_text",
    "generate_articles",
    "to_articles",
    "to_tenants",
]
