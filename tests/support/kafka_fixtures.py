"""Kafka fixtures (tests/support/kafka.py starts the server), registered for every test by
tests/conftest.py.

- `kafka_server` (session): a private Tansu broker, started once; the tests are skipped, with
  the reason, when the binary or aiokafka is not installed (both come with `.[test]`).
- `private_kafka` (function): a broker of the test's own, for tests that stop and start it.
- `kafka_topic` (function): a fresh topic on the session's broker (two partitions), its name.
- `kafka_producer` (function): an aiokafka producer to the session's broker.
- `kafka_service` (function): a KafkaExternalService on it, shut down afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from broker.external import KafkaConfig, KafkaExternalService
from tests.support.kafka import KafkaServer, KafkaUnavailable


def _new_server() -> KafkaServer:
    pytest.importorskip("aiokafka", reason="aiokafka is not installed: pip install -e '.[test]'")
    try:
        return KafkaServer()
    except KafkaUnavailable as reason:
        pytest.skip(str(reason))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_server() -> AsyncIterator[KafkaServer]:
    async with _new_server() as server:
        yield server


@pytest_asyncio.fixture
async def private_kafka() -> AsyncIterator[KafkaServer]:
    async with _new_server() as server:
        yield server


async def create_topic(bootstrap: str, partitions: int = 2) -> str:
    """A new topic of a name no other test uses."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    name = f"t-{secrets.token_hex(6)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


@pytest_asyncio.fixture
async def kafka_topic(kafka_server: KafkaServer) -> str:
    return await create_topic(kafka_server.bootstrap)


@pytest_asyncio.fixture
async def kafka_producer(kafka_server: KafkaServer) -> AsyncIterator[Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest_asyncio.fixture
async def kafka_service(kafka_server: KafkaServer) -> AsyncIterator[KafkaExternalService]:
    config = KafkaConfig(kafka_server.bootstrap, request_timeout_s=5, check_interval_s=0.2)
    async with KafkaExternalService(config) as service:
        yield service
