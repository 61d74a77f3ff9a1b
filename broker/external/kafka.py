"""KafkaExternalService: Kafka topics as external collections (Skip's @skip-adapter/kafka, in
Python over aiokafka).

A subscription reads one topic (`resource`) as a table keyed by its messages' keys: its first
content is the topic from its first retained message up to the end offsets at subscription, last
value per key (`update(entries, True)`); then each batch of new messages is an update of the keys
it names, a tombstone (null value) deleting its key. With `{"fromBeginning": false}` the first
content is empty and only later messages count.

Skip's adapter gives each subscription a consumer group named after it and lets kafkajs deliver
its batches. Here each subscription has a consumer of its own without a group (kafka_reader.py):
the topic is read whole, not shared out among the group's members, and nothing is committed.
Unlike a lost PostgreSQL session, a lost connection loses nothing: the log keeps the messages,
so the consumer carries on from its positions when the cluster is back.

aiokafka is the `kafka` extra (`pip install 'skiff[kafka]'`), imported on first use.
"""

from __future__ import annotations

import asyncio
import logging

from broker.external.kafka_messages import (
    KeyFunction,
    MessageFolder,
    ValueFunction,
    as_entries,
    json_value,
    message_key,
)
from broker.external.kafka_params import (
    KafkaAdapterError,
    KafkaConfig,
    KafkaParams,
    KafkaSubscribeError,
    KafkaUnavailableError,
)
from broker.external.kafka_reader import OffsetsLostError, TopicReader, driver
from broker.external.subscriptions import SubscriptionTasks
from broker.runtime.backoff import Backoff
from broker.types import Json
from graph.external import ExternalCallbacks, ExternalService

logger = logging.getLogger("skiff.broker.external.kafka")


class KafkaExternalService(ExternalService):
    """An ExternalService over one Kafka cluster (`KafkaConfig`, or just its bootstrap servers).

    `key` and `value` turn a message (`KafkaMessage`) into its key and value: by default the
    message key as text and the value's JSON. A key of None leaves the message out."""

    def __init__(
        self,
        config: KafkaConfig | str,
        *,
        key: KeyFunction = message_key,
        value: ValueFunction = json_value,
    ) -> None:
        self.config = config if isinstance(config, KafkaConfig) else KafkaConfig(config)
        driver()  # a missing aiokafka shows now, not at the first subscription
        self._folder = MessageFolder(key, value)
        self._follows = SubscriptionTasks("kafka adapter")
        # Subscriptions reading their first content: an unsubscribe takes the name away.
        self._starting: dict[str, TopicReader] = {}
        self._following: dict[str, TopicReader] = {}
        self._open: set[TopicReader] = set()

    @property
    def open_consumers(self) -> int:
        """How many consumers are connected (one per subscription, until unsubscribed)."""
        return len(self._open)

    async def __aenter__(self) -> KafkaExternalService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def subscribe(
        self, instance: str, resource: str, params: Json, callbacks: ExternalCallbacks
    ) -> None:
        parsed = KafkaParams.from_json(resource, params)
        self.unsubscribe(instance)
        reader = self._starting[instance] = TopicReader(self.config, parsed.topic)
        handed_over = False
        try:
            self._open.add(reader)
            await reader.open()
            changes: dict[Json, list[Json]] = {}
            if parsed.from_beginning:
                messages = await reader.read_to_end()
                self._folder.fold(messages, changes, callbacks.error)
            else:
                await reader.skip_to_end()
            if self._starting.get(instance) is not reader:
                return  # unsubscribed (or shut down) while the first content was read
            callbacks.update(as_entries(changes, whole=True), True)
            self._following[instance] = reader
            self._follows.start(instance, self._follow(reader, parsed, callbacks))
            handed_over = True
        finally:
            if self._starting.get(instance) is reader:
                del self._starting[instance]
            if not handed_over:
                await self._close(reader)

    def unsubscribe(self, instance: str) -> None:
        self._starting.pop(instance, None)
        self._follows.stop(instance)
        reader = self._following.pop(instance, None)
        if reader is not None:
            # Not left to the task's `finally`: a task cancelled before it first ran has none.
            self._follows.cleanup(self._close(reader), f"close {instance}")

    async def shutdown(self) -> None:
        """Stop every subscription and close its consumer."""
        self._starting.clear()
        self._following.clear()
        await self._follows.aclose(cleanup_timeout_s=self.config.request_timeout_s)
        for reader in list(self._open):  # those of subscriptions cut short meanwhile
            await self._close(reader)

    async def _follow(
        self, reader: TopicReader, params: KafkaParams, callbacks: ExternalCallbacks
    ) -> None:
        """Deliver each batch of new messages; check the cluster while nothing arrives."""
        config = self.config
        backoff = Backoff(config.backoff_first_s, config.backoff_cap_s)
        lost = False
        try:
            while True:
                try:
                    messages = await reader.next_batch(config.check_interval_s)
                except OffsetsLostError as err:
                    await self._restart(reader, params, callbacks, err)
                    continue
                except KafkaAdapterError as err:
                    callbacks.error(err)
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                if messages:
                    changes: dict[Json, list[Json]] = {}
                    self._folder.fold(messages, changes, callbacks.error)
                    if changes:
                        callbacks.update(as_entries(changes, whole=False), False)
                    lost = False
                    continue
                # Idle: is the cluster still there? Reported once per outage.
                reachable = await reader.reachable()
                if not reachable and not lost:
                    lost = True
                    callbacks.error(KafkaUnavailableError(
                        f"Kafka ({config.bootstrap_servers}) does not answer; reconnecting"
                    ))  # fmt: skip
                elif reachable and lost:
                    lost = False
                    logger.info("kafka: %s answers again", config.bootstrap_servers)
                if reachable:
                    try:
                        await reader.check_positions()
                    except OffsetsLostError as err:
                        await self._restart(reader, params, callbacks, err)
                    except KafkaAdapterError:
                        pass  # gone again since `reachable`: the next check reports it
        finally:
            await self._close(reader)

    async def _restart(
        self,
        reader: TopicReader,
        params: KafkaParams,
        callbacks: ExternalCallbacks,
        lost: OffsetsLostError,
    ) -> None:
        """The log no longer holds the positions: read it whole again (or skip to its end)."""
        callbacks.error(KafkaSubscribeError(f"{lost}; reading the topic again"))
        while True:
            try:
                if params.from_beginning:
                    callbacks.loading()
                    changes: dict[Json, list[Json]] = {}
                    self._folder.fold(await reader.read_to_end(), changes, callbacks.error)
                    callbacks.update(as_entries(changes, whole=True), True)
                else:
                    await reader.skip_to_end()
                return
            except KafkaAdapterError as err:
                callbacks.error(err)
                await asyncio.sleep(self.config.backoff_cap_s)

    async def _close(self, reader: TopicReader) -> None:
        self._open.discard(reader)
        try:
            await reader.close()
        except Exception as err:  # the consumer is dropped all the same
            logger.warning("kafka: closing the consumer of %r failed: %r", reader.topic, err)
