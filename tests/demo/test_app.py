"""The FastAPI knowledge base end to end, over httpx's ASGI transport, on the real servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.demo.app import KnowledgeBase, create_app
from satellites_repo.demo.models import VECTOR_NAMESPACE

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(satellites_config: DataLayerConfig) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (httpx's transport does not run it)."""
    # refresh="true": each commit is searchable at once, without waiting for a refresh.
    config = satellites_config.replace(
        elasticsearch=satellites_config.elasticsearch.replace(refresh="true")
    )
    application = create_app(config)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kb.test") as client:
        for tenant, name in (("acme", "Acme Corp"), ("globex", "Globex")):
            response = await client.put(f"/tenants/{tenant}", json={"name": name})
            assert response.status_code == 200, response.text
        yield client


def data_layer(app: FastAPI) -> DataLayer:
    kb: KnowledgeBase = app.state.knowledge_base
    return kb.data


async def create(
    client: httpx.AsyncClient, tenant: str, title: str, body: str, tags: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        f"/tenants/{tenant}/articles", json={"title": title, "body": body, "tags": tags or []}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def search(client: httpx.AsyncClient, tenant: str, query: str) -> dict[str, Any]:
    response = await client.get(f"/tenants/{tenant}/search", params={"q": query})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def ids(page: dict[str, Any]) -> list[str]:
    return [hit["article"]["id"] for hit in page["hits"]]


async def test_create_then_get_from_the_same_tenant(client: httpx.AsyncClient) -> None:
    created = await create(client, "acme", "Refund policy", "How refunds work", ["billing"])
    assert created["version"] == 1
    assert created["tenant_id"] == "acme"
    assert created["tags"] == ["billing"]
    assert created["created_at"].endswith(("Z", "+00:00"))

    response = await client.get(f"/articles/{created['id']}", headers={"X-Tenant": "acme"})
    assert response.status_code == 200
    assert response.json() == created


async def test_search_ranks_and_highlights_within_the_tenant(client: httpx.AsyncClient) -> None:
    invoice = await create(client, "acme", "Duplicate invoice", "The invoice was sent twice.")
    await create(client, "acme", "Kubernetes upgrade", "Upgrade the cluster nodes.")
    page = await search(client, "acme", "invoice")
    assert page["total"] == 1
    assert ids(page) == [invoice["id"]]
    hit = page["hits"][0]
    assert hit["score"] > 0
    assert any("<em>" in fragment for fragment in hit["highlights"]["body"])


async def test_search_filters_by_tag(client: httpx.AsyncClient) -> None:
    tagged = await create(client, "acme", "Invoice FAQ", "invoice questions", ["billing", "faq"])
    await create(client, "acme", "Invoice howto", "invoice steps", ["billing"])
    response = await client.get("/tenants/acme/search", params={"q": "invoice", "tag": "faq"})
    assert response.status_code == 200
    assert ids(response.json()) == [tagged["id"]]


async def test_similar_prefers_the_related_article(client: httpx.AsyncClient) -> None:
    source = await create(client, "acme", "Slow Postgres query", "The query on orders is slow.")
    related = await create(client, "acme", "Slow queries", "Postgres query plans for slow joins.")
    unrelated = await create(client, "acme", "Office party", "Cake on Friday afternoon.")
    response = await client.get(f"/tenants/acme/similar/{source['id']}")
    assert response.status_code == 200
    hits = response.json()
    assert [hit["article"]["id"] for hit in hits] == [related["id"], unrelated["id"]]
    assert hits[0]["score"] > hits[1]["score"]


async def test_patch_updates_every_projection_and_checks_the_version(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await create(client, "acme", "Password reset", "Reset it from the login page.")
    url, acme = f"/articles/{created['id']}", {"X-Tenant": "acme"}

    response = await client.patch(url, json={"title": "Passkey setup", "version": 1}, headers=acme)
    assert response.status_code == 200, response.text
    assert (response.json()["title"], response.json()["version"]) == ("Passkey setup", 2)
    assert ids(await search(client, "acme", "passkey")) == [created["id"]]
    assert ids(await search(client, "acme", "password")) == []
    vector = await data_layer(app).vectors.get(VECTOR_NAMESPACE, created["id"])
    assert vector is not None
    assert vector.version == 2

    stale = await client.patch(url, json={"title": "Lost update", "version": 1}, headers=acme)
    assert stale.status_code == 409
    current = await client.get(url, headers=acme)
    assert (current.json()["title"], current.json()["version"]) == ("Passkey setup", 2)


async def test_delete_removes_the_article_everywhere(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await create(client, "acme", "Old pricing", "Pricing from last year.")
    url, acme = f"/articles/{created['id']}", {"X-Tenant": "acme"}

    assert (await client.delete(url, headers=acme)).status_code == 204
    assert (await client.get(url, headers=acme)).status_code == 404
    assert ids(await search(client, "acme", "pricing")) == []
    assert await data_layer(app).vectors.get(VECTOR_NAMESPACE, created["id"]) is None
    assert (await client.delete(url, headers=acme)).status_code == 404


async def test_tenants_never_see_each_other(client: httpx.AsyncClient) -> None:
    title, body = "Invoice reminders", "Send invoice reminders monthly."
    acme = await create(client, "acme", title, body)
    globex = await create(client, "globex", title, body)
    await create(client, "globex", "Invoice reminder emails", "Invoice reminder schedule.")

    assert ids(await search(client, "acme", "invoice")) == [acme["id"]]
    assert acme["id"] not in ids(await search(client, "globex", "invoice"))
    similar = await client.get(f"/tenants/acme/similar/{acme['id']}")
    assert similar.json() == []

    as_globex = {"X-Tenant": "globex"}
    url = f"/articles/{acme['id']}"
    assert (await client.get(url, headers=as_globex)).status_code == 404
    assert (await client.patch(url, json={"title": "x"}, headers=as_globex)).status_code == 404
    assert (await client.delete(url, headers=as_globex)).status_code == 404
    assert (await client.get(f"/tenants/globex/similar/{acme['id']}")).status_code == 404
    still = await client.get(url, headers={"X-Tenant": "acme"})
    assert (still.json()["title"], still.json()["version"]) == ("Invoice reminders", 1)
    assert globex["id"] != acme["id"]


async def test_requests_that_cannot_be_served(client: httpx.AsyncClient) -> None:
    missing_tenant = await client.post(
        "/tenants/umbrella/articles", json={"title": "t", "body": "b"}
    )
    assert missing_tenant.status_code == 404
    assert "umbrella" in missing_tenant.json()["detail"]
    empty_title = await client.post("/tenants/acme/articles", json={"title": "", "body": "b"})
    assert empty_title.status_code == 422
    no_header = await client.get(f"/articles/{uuid.uuid4()}")
    assert no_header.status_code == 422
    unknown = await client.get(f"/articles/{uuid.uuid4()}", headers={"X-Tenant": "acme"})
    assert unknown.status_code == 404
    assert ids(await search(client, "acme", "t")) == []
