"""KafkaExternalService against a real Kafka-protocol broker (Tansu, tests/support/kafka.py): a
topic's first content, live messages and tombstones as updates, key and value functions, two
subscriptions of one topic, unsubscribing, a broker that is down or goes away, and a skiff node
whose resource reads a topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

import pytest

from broker import Init, ServeConfig, SkiffClient, running
from broker.external import (
    InvalidKafkaParamsError,
    KafkaConfig,
    KafkaExternalService,
    KafkaMessage,
    KafkaMessageError,
    KafkaSubscribeError,
    KafkaUnavailableError,
)
from graph import Context, EagerCollection, Resource, Service
from tests.support.kafka import KafkaRoute, KafkaServer
from tests.support.kafka_fixtures import create_topic
from tests.support.polling import eventually
from tests.support.postgres_tables import Recorder

pytestmark = pytest.mark.timeout(30)


async def send(producer: Any, topic: str, key: str, value: Any, partition: int = 0) -> None:
    """One message; `value` None is a tombstone."""
    data = None if value is None else json.dumps(value).encode()
    await producer.send_and_wait(topic, data, key=key.encode(), partition=partition)


async def test_first_content_is_the_last_value_of_each_key(
    kafka_topic: str, kafka_producer: Any, kafka_service: KafkaExternalService
) -> None:
    await send(kafka_producer, kafka_topic, "a", {"n": 1})
    await send(kafka_producer, kafka_topic, "b", {"n": 2}, partition=1)
    await send(kafka_producer, kafka_topic, "a", {"n": 3})
    await send(kafka_producer, kafka_topic, "gone", {"n": 4}, partition=1)
    await send(kafka_producer, kafka_topic, "gone", None, partition=1)
    seen = Recorder()
    await kafka_service.subscribe("svc/t#1", kafka_topic, {}, seen)
    assert len(seen.updates) == 1
    entries, is_init = seen.updates[0]
    assert is_init and sorted(entries) == [("a", [{"n": 3}]), ("b", [{"n": 2}])]
    assert seen.errors == []


async def test_live_messages_and_tombstones_are_updates(
    kafka_topic: str, kafka_producer: Any, kafka_service: KafkaExternalService
) -> None:
    seen = Recorder()
    await kafka_service.subscribe("svc/t#1", kafka_topic, {"fromBeginning": True}, seen)
    assert seen.updates == [([], True)]  # an empty topic still gives a first update

    await send(kafka_producer, kafka_topic, "a", {"n": 1})
    await eventually(lambda: len(seen.updates) == 2)
    assert seen.updates[1] == ([("a", [{"n": 1}])], False)

    await send(kafka_producer, kafka_topic, "a", None)
    await eventually(lambda: len(seen.updates) == 3)
    assert seen.updates[2] == ([("a", [])], False)
    assert seen.content == {} and seen.errors == []


async def test_two_subscriptions_of_one_topic_with_different_params(
    kafka_topic: str, kafka_producer: Any, kafka_service: KafkaExternalService
) -> None:
    await send(kafka_producer, kafka_topic, "old", 1)
    whole, recent = Recorder(), Recorder()
    await kafka_service.subscribe("svc/t#1", kafka_topic, {"fromBeginning": True}, whole)
    await kafka_service.subscribe("svc/t#2", kafka_topic, {"fromBeginning": False}, recent)
    assert whole.content == {"old": [1]}
    assert recent.updates == [([], True)]
    assert kafka_service.open_consumers == 2

    await send(kafka_producer, kafka_topic, "new", 2, partition=1)
    await eventually(lambda: whole.content == {"old": [1], "new": [2]})
    await eventually(lambda: recent.content == {"new": [2]})


async def test_unsubscribe_closes_the_consumer(
    kafka_topic: str, kafka_producer: Any, kafka_service: KafkaExternalService
) -> None:
    seen = Recorder()
    await kafka_service.subscribe("svc/t#1", kafka_topic, {}, seen)
    assert kafka_service.open_consumers == 1
    kafka_service.unsubscribe("svc/t#1")
    await eventually(lambda: kafka_service.open_consumers == 0)
    await send(kafka_producer, kafka_topic, "a", 1)
    other = Recorder()  # a later subscription sees the message: the first one had its chance
    await kafka_service.subscribe("svc/t#2", kafka_topic, {}, other)
    assert other.content == {"a": [1]}
    assert seen.updates == [([], True)]
    kafka_service.unsubscribe("svc/t#1")  # idempotent


async def test_key_and_value_functions_and_messages_they_refuse(
    kafka_server: KafkaServer, kafka_topic: str, kafka_producer: Any
) -> None:
    def by_user(message: KafkaMessage) -> Any:
        return json.loads(message.value or b"null")["user"]

    def with_offset(message: KafkaMessage) -> Any:
        return {"text": json.loads(message.value or b"")["text"], "offset": message.offset}

    await send(kafka_producer, kafka_topic, "m1", {"user": "ann", "text": "hi"})
    await kafka_producer.send_and_wait(kafka_topic, b"not json", key=b"m2", partition=0)
    await send(kafka_producer, kafka_topic, "m3", {"user": "bob", "text": "yo"})
    seen = Recorder()
    config = KafkaConfig(kafka_server.bootstrap, check_interval_s=0.2)
    async with KafkaExternalService(config, key=by_user, value=with_offset) as service:
        await service.subscribe("svc/chat#1", kafka_topic, {}, seen)
    assert seen.content == {
        "ann": [{"text": "hi", "offset": 0}],
        "bob": [{"text": "yo", "offset": 2}],
    }
    [error] = seen.errors
    assert isinstance(error, KafkaMessageError) and f"{kafka_topic}[0]@1" in str(error)


@pytest.mark.parametrize(
    ("resource", "params"),
    [
        ("no spaces allowed", {}),
        ("", {}),
        ("x" * 250, {}),
        ("topic", {"fromBeginning": "yes"}),
        ("topic", {"from_beginning": True}),
        ("topic", [True]),
    ],
)
async def test_invalid_params_are_refused_before_connecting(resource: str, params: Any) -> None:
    service = KafkaExternalService("127.0.0.1:1")  # nothing listens there: never reached
    with pytest.raises(InvalidKafkaParamsError):
        await service.subscribe("svc/x#1", resource, params, Recorder())


async def test_an_unknown_topic_is_refused(kafka_service: KafkaExternalService) -> None:
    with pytest.raises(KafkaSubscribeError, match="no topic 'never-made'"):
        await kafka_service.subscribe("svc/x#1", "never-made", {}, Recorder())
    assert kafka_service.open_consumers == 0


async def test_a_broker_down_fails_a_subscription_and_is_reported_to_a_live_one(
    private_kafka: KafkaServer,
) -> None:
    from aiokafka import AIOKafkaProducer

    config = KafkaConfig(private_kafka.bootstrap, request_timeout_s=2, check_interval_s=0.2)
    async with KafkaExternalService(config) as service:
        await private_kafka.stop()
        with pytest.raises(KafkaUnavailableError, match="cannot reach Kafka"):
            await service.subscribe("svc/t#1", "events", {}, Recorder())
        assert service.open_consumers == 0

        await private_kafka.start()
        topic = await create_topic(private_kafka.bootstrap, partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=private_kafka.bootstrap)
        await producer.start()
        try:
            await send(producer, topic, "a", 1)
            await send(producer, topic, "b", 2)
        finally:
            await producer.stop()
        seen = Recorder()
        await service.subscribe("svc/t#1", topic, {}, seen)
        assert seen.content == {"a": [1], "b": [2]}

        # The broker goes away: reported once, the content stays.
        await private_kafka.stop()
        await eventually(lambda: any(isinstance(e, KafkaUnavailableError) for e in seen.errors))
        await asyncio.sleep(0.5)  # a few more checks of the cluster
        assert sum(isinstance(e, KafkaUnavailableError) for e in seen.errors) == 1
        assert seen.content == {"a": [1], "b": [2]}


async def test_after_an_outage_the_log_is_read_on_from_the_positions(
    kafka_server: KafkaServer, kafka_topic: str, kafka_producer: Any
) -> None:
    """The broker and its log live on while the adapter cannot reach it: back, it reads on
    from where it was (what was produced meanwhile, as updates), not the topic again."""
    async with KafkaRoute(kafka_server) as route:
        config = KafkaConfig(route.bootstrap, request_timeout_s=2, check_interval_s=0.2)
        async with KafkaExternalService(config) as service:
            await send(kafka_producer, kafka_topic, "a", 1)
            seen = Recorder()
            await service.subscribe("svc/t#1", kafka_topic, {}, seen)
            assert seen.updates == [([("a", [1])], True)]

            route.link.partition()
            await eventually(lambda: any(isinstance(e, KafkaUnavailableError) for e in seen.errors))
            await send(kafka_producer, kafka_topic, "b", 2)
            await send(kafka_producer, kafka_topic, "c", 3, partition=1)
            route.link.heal()

            await eventually(lambda: seen.content == {"a": [1], "b": [2], "c": [3]}, within=20)
            later = seen.updates[1:]
            assert not any(is_init for _, is_init in later)
            assert sorted(key for entries, _ in later for key, _ in entries) == ["b", "c"]


async def test_a_log_lost_during_an_outage_is_read_whole_again(
    kafka_server: KafkaServer, kafka_producer: Any
) -> None:
    """The topic is deleted and made again while the adapter is cut off: its positions are
    past the new log's end, so it reads the topic whole again and replaces the content."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = await create_topic(kafka_server.bootstrap, partitions=1)
    async with KafkaRoute(kafka_server) as route:
        config = KafkaConfig(route.bootstrap, request_timeout_s=2, check_interval_s=0.2)
        async with KafkaExternalService(config) as service:
            for n in range(3):
                await send(kafka_producer, topic, f"old{n}", n)
            seen = Recorder()
            await service.subscribe("svc/t#1", topic, {"fromBeginning": True}, seen)
            assert seen.content == {"old0": [0], "old1": [1], "old2": [2]}

            route.link.partition()
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.bootstrap)
            await admin.start()
            try:
                await admin.delete_topics([topic])
                await eventually(lambda: _topic_gone(admin, topic), within=10)
                await admin.create_topics([NewTopic(topic, 1, 1)])
            finally:
                await admin.close()
            await send(kafka_producer, topic, "new", 9)
            route.link.heal()

            await eventually(lambda: seen.content == {"new": [9]}, within=20)
            assert seen.updates[-1] == ([("new", [9])], True)
            assert any("reading the topic again" in str(e) for e in seen.errors)


async def _topic_gone(admin: Any, topic: str) -> bool:
    return topic not in await admin.list_topics()


class Latest(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["latest"]


def reading(topic: str, bootstrap: str) -> Service:
    def create_graph(
        inputs: Mapping[str, EagerCollection], context: Context
    ) -> dict[str, EagerCollection]:
        return {"latest": context.use_external_resource("kafka", topic, {})}

    config = KafkaConfig(bootstrap, check_interval_s=0.2)
    return Service(
        name="kafka-reader",
        inputs={},
        resources={"latest": Latest},
        create_graph=create_graph,
        external_services={"kafka": KafkaExternalService(config)},
    )


async def test_a_node_streams_what_is_produced_to_a_topic(
    kafka_server: KafkaServer, kafka_topic: str, kafka_producer: Any
) -> None:
    await send(kafka_producer, kafka_topic, "a", 1)
    config = ServeConfig(port=0, shutdown_timeout_s=1, heartbeat_s=1)
    async with (
        running(reading(kafka_topic, kafka_server.bootstrap), config) as node,
        SkiffClient(node.url) as client,
    ):
        stream = await client.create_stream("latest")
        async with aclosing(client.events(stream)) as events:
            init = await anext(events)
            assert isinstance(init, Init) and init.entries == [("a", [1])]
            await send(kafka_producer, kafka_topic, "b", 2, partition=1)
            update = await anext(events)
            assert update.entries == [("b", [2])] and update.version > init.version
            await send(kafka_producer, kafka_topic, "a", None)
            assert (await anext(events)).entries == [("a", [])]
