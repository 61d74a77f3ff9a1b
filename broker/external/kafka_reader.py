"""One topic read by one aiokafka consumer: opened on every partition, positioned at the
beginning or the end, read to the end offsets of a moment, then message after message.

The consumer has no group: the adapter assigns itself every partition the topic has when it is
opened and keeps its positions in memory. Nothing is committed to the cluster, no rebalance
ever pauses it, and two subscriptions of a topic never share or steal partitions. Offsets are
never reset silently (`auto_offset_reset="none"`): a position the log no longer holds (the topic
truncated by retention, deleted and created again) is an `OffsetsLostError`, and the adapter
reads the topic again whole.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from broker.external.kafka_messages import KafkaMessage
from broker.external.kafka_params import (
    KafkaAdapterError,
    KafkaConfig,
    KafkaSubscribeError,
    KafkaUnavailableError,
)


class OffsetsLostError(KafkaAdapterError):
    """A position is no longer in the partition's log."""


def driver() -> Any:
    """aiokafka (the `kafka` extra), imported on first use."""
    try:
        return importlib.import_module("aiokafka")
    except ImportError as err:
        raise KafkaUnavailableError(
            "the Kafka adapter needs aiokafka: pip install 'skiff[kafka]'"
        ) from err


class TopicReader:
    """`open()`, `read_to_end()` or `skip_to_end()`, then `next_batch()` until `close()`."""

    def __init__(self, config: KafkaConfig, topic: str) -> None:
        self.config = config
        self.topic = topic
        self._kafka = driver()
        self._errors = importlib.import_module("aiokafka.errors")
        self._consumer: Any = None
        self._partitions: list[Any] = []

    async def open(self) -> None:
        """Connect and assign every partition of the topic. Raises KafkaUnavailableError when the
        cluster cannot be reached, KafkaSubscribeError when it has no such topic."""
        config = self.config
        consumer = self._kafka.AIOKafkaConsumer(
            bootstrap_servers=config.bootstrap_servers,
            client_id=config.client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            request_timeout_ms=int(config.request_timeout_s * 1000),
            **config.consumer_options,
        )
        self._consumer = consumer
        try:
            async with asyncio.timeout(config.request_timeout_s):
                await consumer.start()
                await consumer.topics()  # the topic list: partitions_for_topic reads it
        except (self._errors.KafkaError, TimeoutError, OSError) as err:
            raise KafkaUnavailableError(f"cannot reach Kafka ({config.bootstrap_servers}): "
                                        f"{err or type(err).__name__}") from err  # fmt: skip
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise KafkaSubscribeError(f"Kafka has no topic {self.topic!r}")
        self._partitions = [self._kafka.TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self._partitions)

    async def read_to_end(self) -> list[KafkaMessage]:
        """Every message from the beginning up to (at least) the end offsets of now."""
        consumer = self._consumer
        await consumer.seek_to_beginning(*self._partitions)
        end = await self._call(consumer.end_offsets(self._partitions))
        messages: list[KafkaMessage] = []
        behind = [tp for tp in self._partitions if await consumer.position(tp) < end[tp]]
        while behind:
            # No progress for a whole request timeout: the cluster went away mid-read.
            batch = await self.next_batch(self.config.request_timeout_s)
            if not batch:
                raise KafkaUnavailableError(
                    f"reading {self.topic!r}: no message for {self.config.request_timeout_s} s "
                    f"before its end offsets"
                )
            messages.extend(batch)
            behind = [tp for tp in behind if await consumer.position(tp) < end[tp]]
        return messages

    async def skip_to_end(self) -> None:
        """Position every partition at its end: only later messages will be read."""
        await self._call(self._consumer.seek_to_end(*self._partitions))
        for tp in self._partitions:
            await self._call(self._consumer.position(tp))  # resolve the reset now, not later

    async def next_batch(self, wait_s: float) -> list[KafkaMessage]:
        """The messages that arrived, waiting up to `wait_s` for some (`[]`: none). Raises
        OffsetsLostError (positions not in the log any more), KafkaAdapterError for the rest."""
        try:
            records = await self._consumer.getmany(timeout_ms=int(wait_s * 1000))
        except self._errors.OffsetOutOfRangeError as err:
            raise OffsetsLostError(f"{self.topic!r}: positions out of range: {err}") from err
        except self._errors.KafkaError as err:
            raise KafkaAdapterError(f"reading {self.topic!r}: {err!r}") from err
        return [
            KafkaMessage.from_record(record)
            for partition in sorted(records, key=lambda tp: tp.partition)
            for record in records[partition]
        ]

    async def reachable(self) -> bool:
        """Whether the cluster answers a metadata request now (the client itself only logs a
        lost connection, and retries)."""
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                await self._consumer.topics()
        except (self._errors.KafkaError, TimeoutError, OSError):
            return False
        return True

    async def check_positions(self) -> None:
        """Raise OffsetsLostError when a position is past its partition's end: the log was
        cut short or made again (a recreated topic, an unclean leader election). Kafka answers
        a fetch there with OFFSET_OUT_OF_RANGE, which `next_batch` turns into the same error,
        but some Kafka-compatible servers just return nothing, and the reader would wait
        forever at a position the new log reaches only much later."""
        consumer = self._consumer
        end = await self._call(consumer.end_offsets(self._partitions))
        for tp in self._partitions:
            position = await self._call(consumer.position(tp))
            if position > end[tp]:
                raise OffsetsLostError(
                    f"{self.topic!r}: partition {tp.partition} ends at {end[tp]}, "
                    f"before the position {position} read up to"
                )

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _call(self, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                return await awaitable
        except (self._errors.KafkaError, TimeoutError, OSError) as err:
            raise KafkaUnavailableError(f"{self.topic!r}: {err or type(err).__name__}") from err
