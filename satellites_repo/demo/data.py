"""A deterministic knowledge base: three tenants and about a thousand articles.

The same ``seed`` gives the same tenants, ids, titles, bodies, tags and timestamps on
every machine (``random.Random``, no global state). Articles are written from a few
topic vocabularies, so a full-text query or a similarity search finds articles of the
matching topic, and each tenant names its own product, so results differ by tenant.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from satellites_repo.demo.embedding import Embedder
from satellites_repo.demo.models import Article, Tenant, article_text

__all__ = [
    "TENANTS",
    "TOPICS",
    "ArticleSeed",
    "TenantSeed",
    "Topic",
    "generate_articles",
    "to_articles",
    "to_tenants",
]


@dataclass(frozen=True, slots=True)
class TenantSeed:
    id: str
    name: str
    product: str
    favourite_topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    terms: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArticleSeed:
    """One article as plain data; ``tags[0]`` is its topic."""

    id: uuid.UUID
    tenant_id: str
    title: str
    body: str
    tags: tuple[str, ...]
    created_at: dt.datetime

    @property
    def topic(self) -> str:
        return self.tags[0]


TENANTS: tuple[TenantSeed, ...] = (
    TenantSeed("acme", "Acme Corporation", "Roadrunner", ("billing", "security")),
    TenantSeed("globex", "Globex Industries", "Hankscorp", ("deployment", "databases")),
    TenantSeed("initech", "Initech", "TPS Reports", ("search", "networking")),
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        "billing",
        (
            "invoice",
            "refund",
            "payment",
            "subscription",
            "credit card",
            "receipt",
            "sales tax",
            "pricing plan",
            "proration",
            "discount coupon",
            "billing cycle",
        ),
        ("was charged twice", "is missing", "shows the wrong amount", "failed"),
    ),
    Topic(
        "security",
        (
            "password reset",
            "two-factor authentication",
            "single sign-on",
            "SAML",
            "API token",
            "session timeout",
            "user permissions",
            "audit log",
            "encryption key",
        ),
        ("is locked out", "keeps expiring", "is rejected", "was revoked"),
    ),
    Topic(
        "deployment",
        (
            "deployment pipeline",
            "rollback",
            "Kubernetes cluster",
            "container image",
            "staging environment",
            "canary release",
            "Helm chart",
            "build artifact",
        ),
        ("is stuck", "times out", "crashes on start", "cannot pull the image"),
    ),
    Topic(
        "databases",
        (
            "Postgres database",
            "slow query",
            "table index",
            "vacuum",
            "replication lag",
            "nightly backup",
            "point-in-time restore",
            "schema migration",
            "connection pool",
        ),
        ("is slow", "runs out of connections", "deadlocks", "fills the disk"),
    ),
    Topic(
        "search",
        (
            "search relevance",
            "text analyzer",
            "synonym list",
            "ranking function",
            "facet filter",
            "autocomplete",
            "result highlighting",
            "search shard",
            "reindex",
        ),
        ("returns nothing", "ranks the wrong results first", "is out of date"),
    ),
    Topic(
        "networking",
        (
            "DNS record",
            "network latency",
            "load balancer",
            "TLS certificate",
            "firewall rule",
            "HTTP proxy",
            "request timeout",
            "CDN cache",
            "VPN tunnel",
        ),
        ("drops connections", "is unreachable", "expired", "adds seconds of latency"),
    ),
)

KINDS = ("how-to", "troubleshooting", "reference")

_TITLES = {
    "how-to": (
        "How to set up {term}",
        "How to change the {term}",
        "Configuring {term} in {product}",
    ),
    "troubleshooting": ("Why the {term} {problem}", "Fixing a {term} that {problem}"),
    "reference": ("{Term} reference", "{Term} limits and defaults in {product}"),
}

_SENTENCES = (
    "This article explains the {term} for {product} customers.",
    "When the {term} {problem}, check the {other} first.",
    "Most teams review the {term} together with the {other}.",
    "Administrators can change the {term} from the {product} settings page.",
    "A common cause is a misconfigured {other}.",
    "If the {other} {problem}, contact support with the request id.",
    "The {term} and the {other} are covered by the {product} service level agreement.",
)

_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_YEAR_MINUTES = 365 * 24 * 60


def generate_articles(
    count: int = 1000, *, seed: int = 2024, tenants: Sequence[TenantSeed] = TENANTS
) -> list[ArticleSeed]:
    """``count`` articles spread over ``tenants``, the same for the same arguments."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if not tenants:
        raise ValueError("at least one tenant is needed")
    rng = random.Random(seed)
    return [_article(rng, tenants[index % len(tenants)]) for index in range(count)]


def _article(rng: random.Random, tenant: TenantSeed) -> ArticleSeed:
    topic = _pick_topic(rng, tenant)
    kind = rng.choice(KINDS)
    term, other = rng.sample(topic.terms, 2)
    words = {
        "term": term,
        "Term": term[0].upper() + term[1:],
        "other": other,
        "problem": rng.choice(topic.problems),
        "product": tenant.product,
    }
    title = rng.choice(_TITLES[kind]).format(**words)
    sentences = [_sentence(rng, topic, tenant) for _ in range(rng.randint(3, 6))]
    return ArticleSeed(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        tenant_id=tenant.id,
        title=title,
        body=" ".join(sentences),
        tags=(topic.name, kind),
        created_at=_EPOCH + dt.timedelta(minutes=rng.randrange(_YEAR_MINUTES)),
    )


def _pick_topic(rng: random.Random, tenant: TenantSeed) -> Topic:
    """Two topics in three are one of the tenant's favourites."""
    by_name = {topic.name: topic for topic in TOPICS}
    if rng.random() < 2 / 3:
        return by_name[rng.choice(tenant.favourite_topics)]
    return rng.choice(TOPICS)


def _sentence(rng: random.Random, topic: Topic, tenant: TenantSeed) -> str:
    term, other = rng.sample(topic.terms, 2)
    template = rng.choice(_SENTENCES)
    return template.format(
        term=term, other=other, problem=rng.choice(topic.problems), product=tenant.product
    )


def to_tenants(tenants: Sequence[TenantSeed] = TENANTS) -> list[Tenant]:
    return [Tenant(id=tenant.id, name=tenant.name) for tenant in tenants]


def to_articles(seeds: Sequence[ArticleSeed], embedder: Embedder) -> list[Article]:
    """New ``Article`` entities for ``seeds``, embedded in one batch."""
    vectors = embedder.embed([article_text(seed.title, seed.body) for seed in seeds])
    return [
        Article(
            id=seed.id,
            tenant_id=seed.tenant_id,
            title=seed.title,
            body=seed.body,
            tags=list(seed.tags),
            created_at=seed.created_at,
            embedding=vector.tolist(),
        )
        for seed, vector in zip(seeds, vectors, strict=True)
    ]
