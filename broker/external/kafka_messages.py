"""Kafka messages as the Kafka adapter's user functions see them, and folding a run of them
into entries.

A topic is read as a table keyed by the messages' keys (a compacted topic's view, Kafka Streams'
KTable): the last message of a key gives its value, a tombstone (a null value) deletes it. The
key and value functions are the user's (Skip's `messageProcessor`, split in two); by default the
key is the message key as UTF-8 text and the value its JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from broker.external.kafka_params import KafkaMessageError
from broker.json_bytes import loads
from broker.types import Entry, Json


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """One message of a topic (what the key and value functions are given)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_record(cls, record: Any) -> KafkaMessage:
        """From aiokafka's ConsumerRecord (undecoded: the adapter sets no deserializers)."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            record.timestamp,
            tuple(record.headers or ()),
        )

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


KeyFunction = Callable[[KafkaMessage], Json]
ValueFunction = Callable[[KafkaMessage], Json]


def message_key(message: KafkaMessage) -> Json:
    """The default key: the message key as UTF-8 text (None, keyless: the message is skipped)."""
    return None if message.key is None else message.key.decode()


def json_value(message: KafkaMessage) -> Json:
    """The default value: the message value parsed as JSON (called for non-null values only)."""
    return loads(message.value or b"")


@dataclass(frozen=True, slots=True)
class MessageFolder:
    """Turns messages into the changes they make to the collection."""

    key: KeyFunction = message_key
    value: ValueFunction = json_value

    def fold(
        self,
        messages: Iterable[KafkaMessage],
        into: dict[Json, list[Json]],
        on_error: Callable[[KafkaMessageError], None],
    ) -> None:
        """Apply `messages`, in order, to `into` (key → `[value]`, or `[]` for a tombstone). A
        message the functions fail on is reported and leaves its key as it was."""
        for message in messages:
            try:
                key = self.key(message)
                if key is None:
                    continue  # keyless: not part of a keyed view
                into[key] = [] if message.value is None else [self.value(message)]
            except Exception as err:
                on_error(KafkaMessageError(f"{message.where()}: {type(err).__name__}: {err}"))


def as_entries(changes: dict[Json, list[Json]], whole: bool) -> list[Entry]:
    """The entries of an update; the whole content leaves deleted keys out."""
    return [(key, values) for key, values in changes.items() if values or not whole]
