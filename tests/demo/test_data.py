"""The article generator: deterministic, spread over the tenants, written from topics."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pytest

from satellites_repo.demo.data import (
    TENANTS,
    TOPICS,
    generate_articles,
    to_articles,
    to_tenants,
)
from satellites_repo.demo.embedding import DIM, HashingEmbedder


def test_the_same_seed_gives_the_same_articles() -> None:
    assert generate_articles(200) == generate_articles(200)
    assert generate_articles(200, seed=1) != generate_articles(200, seed=2)


def test_a_shorter_run_is_a_prefix_of_a_longer_one() -> None:
    assert generate_articles(1000)[:10] == generate_articles(10)


def test_a_thousand_articles_over_three_tenants_and_every_topic() -> None:
    articles = generate_articles()
    assert len(articles) == 1000
    assert len({article.id for article in articles}) == 1000
    per_tenant = Counter(article.tenant_id for article in articles)
    assert set(per_tenant) == {tenant.id for tenant in TENANTS}
    assert min(per_tenant.values()) >= 333
    assert {article.topic for article in articles} == {topic.name for topic in TOPICS}


def test_articles_are_plausible() -> None:
    for article in generate_articles(300):
        assert article.title
        assert len(article.body.split(". ")) >= 3
        assert article.created_at.tzinfo is dt.UTC
        assert article.tags[0] == article.topic


def test_an_article_names_no_other_tenants_product() -> None:
    articles = generate_articles(300)
    for tenant in TENANTS:
        own = [f"{a.title} {a.body}" for a in articles if a.tenant_id == tenant.id]
        others = [f"{a.title} {a.body}" for a in articles if a.tenant_id != tenant.id]
        assert any(tenant.product in text for text in own)
        assert not any(tenant.product in text for text in others)


def test_each_tenant_leans_to_its_favourite_topics() -> None:
    articles = generate_articles()
    for tenant in TENANTS:
        topics = Counter(a.topic for a in articles if a.tenant_id == tenant.id)
        favourites = sum(topics[name] for name in tenant.favourite_topics)
        assert favourites > sum(topics.values()) / 2


def test_negative_counts_and_no_tenants_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_articles(-1)
    with pytest.raises(ValueError, match="tenant"):
        generate_articles(3, tenants=())


def test_entities_carry_the_seed_and_an_embedding() -> None:
    seeds = generate_articles(5)
    articles = to_articles(seeds, HashingEmbedder())
    assert [article.id for article in articles] == [seed.id for seed in seeds]
    assert articles[0].tags == list(seeds[0].tags)
    assert len(articles[0].embedding) == DIM
    assert float(np.linalg.norm(articles[0].embedding)) == pytest.approx(1.0, abs=1e-5)
    assert [tenant.id for tenant in to_tenants()] == ["acme", "globex", "initech"]
