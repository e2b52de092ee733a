"""Durable subscriptions on the in-process bus, EventsConfig, and the RabbitMQ message form."""

from __future__ import annotations

import dataclasses

import pytest

from satellites_repo import (
    ConfigurationError,
    DataEvent,
    DataLayerConfig,
    EventsConfig,
    InProcessEventBus,
)
from satellites_repo.config import redact
from satellites_repo.events import DurableSubscriptions
from satellites_repo.subscriptions.rabbitmq import decode_event, encode_event


def probe(event_type: str = "articles.created") -> DataEvent:
    return DataEvent(
        type=event_type, resource="articles", key="1", payload={"n": 1}, source="postgres"
    )


async def test_a_durable_subscription_is_left_to_the_layer_not_called_by_publish() -> None:
    bus = InProcessEventBus()
    called: list[DataEvent] = []
    woken: list[bool] = []

    async def handler(event: DataEvent) -> None:
        called.append(event)

    bus.subscribe("articles.*", handler, durable="audit")
    bus.on_published(lambda: woken.append(True))
    await bus.publish_many([probe()])

    assert called == []
    assert woken == [True]
    assert isinstance(bus, DurableSubscriptions)
    [subscription] = bus.durable_subscriptions()
    assert (subscription.name, subscription.pattern) == ("audit", "articles.*")
    assert subscription.matches("articles.deleted")
    assert not subscription.matches("tags.deleted")


def test_one_durable_name_is_one_subscriber() -> None:
    bus = InProcessEventBus()

    async def handler(event: DataEvent) -> None:
        return None

    bus.subscribe_all(handler, durable="audit")
    with pytest.raises(ValueError, match="'audit' is already subscribed"):
        bus.subscribe("articles.*", handler, durable="audit")
    with pytest.raises(ValueError, match="non-blank name"):
        bus.subscribe("articles.*", handler, durable=" ")
    bus.unsubscribe("*", handler)
    assert bus.durable_subscriptions() == []


def test_events_config_reads_an_amqp_url_and_keeps_the_password_secret() -> None:
    config = EventsConfig.model_validate(
        {"url": "amqp://app:s%3Acret@broker:5673/prod", "backend": "rabbitmq"}
    )
    assert (config.host, config.port, config.username, config.virtual_host) == (
        "broker",
        5673,
        "app",
        "prod",
    )
    assert config.password == "s:cret"
    assert "s:cret" not in repr(config)
    assert config.amqp_url() == "amqp://app:s%3Acret@broker:5673/prod"
    assert (
        EventsConfig.model_validate({"url": "amqp://broker", "port": 1}).port == 1
    )  # fields win over the URL


def test_events_config_errors_name_the_field_or_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="events URL must look like amqp"):
        EventsConfig.model_validate({"url": "http://broker"})
    with pytest.raises(ConfigurationError, match="backend"):
        EventsConfig.model_validate({"backend": "kafka"})
    monkeypatch.setenv("SATELLITES_EVENTS__MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigurationError, match="SATELLITES_EVENTS__MAX_ATTEMPTS"):
        DataLayerConfig.from_env()


def test_the_events_password_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_EVENTS__URL", "amqp://app:hunter2@broker:5672/")
    monkeypatch.setenv("SATELLITES_EVENTS__BACKEND", "rabbitmq")
    config = DataLayerConfig.from_env()
    assert config.events.backend == "rabbitmq"
    assert redact("connect to amqp://app:hunter2@broker failed", config) == (
        "connect to amqp://app:**********@broker failed"
    )


def test_a_message_carries_the_whole_event_with_its_id() -> None:
    event = dataclasses.replace(probe(), version=3)
    assert decode_event(encode_event(event)) == event
    with pytest.raises(ValueError, match="not a DataEvent message"):
        decode_event(b'{"type": "x"}')
