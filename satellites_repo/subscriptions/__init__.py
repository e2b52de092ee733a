"""Events that reach every subscriber: durable deliveries, and the RabbitMQ bus.

``registry`` is the event publication registry in Postgres (one delivery per durable
subscriber and outbox row until it is done) and ``worker`` delivers from it for the
in-process bus; ``rabbitmq`` is ``RabbitMQEventBus``, where the broker's durable queues
keep the durable subscriptions (imported lazily: it needs ``satellites-repo[rabbitmq]``).
"""

from __future__ import annotations

from satellites_repo.subscriptions.registry import Claimed, DeliveryRegistry, SubscriberStatus
from satellites_repo.subscriptions.worker import DurableWorker, DurableWorkers

__all__ = ["Claimed", "DeliveryRegistry", "DurableWorker", "DurableWorkers", "SubscriberStatus"]
