"""What a Kafka subscription asks for and where the cluster is, checked before any connection,
and the errors of the Kafka adapter.

`resource` is a topic name and `params` is Skip's: `{"fromBeginning": true}` (the default) reads
the topic from its first retained message, `false` only what is produced after the subscription.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from broker.errors import ConfigError, UnavailableError
from broker.external.errors import ExternalServiceError
from broker.types import Json


class KafkaAdapterError(ExternalServiceError):
    """Root of the Kafka adapter's errors."""


class InvalidKafkaParamsError(KafkaAdapterError, ValueError):
    """The resource is not a valid topic name, or the params are not Skip's."""


class KafkaSubscribeError(KafkaAdapterError):
    """The cluster refused the subscription (no such topic, not authorised), or the topic's log
    moved under a running one (truncated, recreated)."""


class KafkaUnavailableError(KafkaAdapterError, UnavailableError):
    """The cluster cannot be reached, or stopped answering (the client reconnects by itself)."""


class KafkaMessageError(KafkaAdapterError, ValueError):
    """A message the key or value function could not turn into an entry (it is skipped)."""


_PARAM_NAMES: Final = frozenset({"fromBeginning"})
# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME: Final = re.compile(r"[a-zA-Z0-9._-]{1,249}")
# Options the adapter sets itself: a consumer without a group, positioned by the adapter.
_RESERVED_OPTIONS: Final = frozenset(
    {
        "bootstrap_servers",
        "client_id",
        "group_id",
        "group_instance_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "key_deserializer",
        "value_deserializer",
        "request_timeout_ms",
        "loop",
    }
)


@dataclass(frozen=True)
class KafkaConfig:
    """Where the cluster is and how patiently to talk to it.

    `bootstrap_servers`: `"host:port"`, several separated by commas. A request (metadata, end
    offsets) gives up after `request_timeout_s`; an idle subscription checks the cluster is still
    there every `check_interval_s`. A failed live read is retried after `backoff_first_s`,
    doubling up to `backoff_cap_s`. `consumer_options` go to aiokafka's `AIOKafkaConsumer` as
    they are (TLS, SASL, fetch sizes: Skip's `consumerOptions`), except those the adapter sets."""

    bootstrap_servers: str
    client_id: str = "skiff"
    request_timeout_s: float = 10.0
    check_interval_s: float = 5.0
    backoff_first_s: float = 0.1
    backoff_cap_s: float = 5.0
    consumer_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError("KafkaConfig.bootstrap_servers is empty")
        for name in ("request_timeout_s", "check_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"KafkaConfig.{name} must be positive")
        if not 0 < self.backoff_first_s <= self.backoff_cap_s:
            raise ConfigError("KafkaConfig: need 0 < backoff_first_s <= backoff_cap_s")
        reserved = sorted(_RESERVED_OPTIONS & set(self.consumer_options))
        if reserved:
            raise ConfigError(f"KafkaConfig.consumer_options may not set {reserved}")


@dataclass(frozen=True, slots=True)
class KafkaParams:
    """A validated subscription: `topic`, read from its beginning or from its end."""

    topic: str
    from_beginning: bool = True

    @classmethod
    def from_json(cls, resource: str, params: Json) -> KafkaParams:
        if not isinstance(resource, str) or _TOPIC_NAME.fullmatch(resource) is None:
            raise InvalidKafkaParamsError(
                f"the resource must be a Kafka topic name (letters, digits, '.', '_', '-'; "
                f"at most 249), not {resource!r}"
            )
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidKafkaParamsError(f"params must be an object, not {params!r}")
        unknown = sorted(set(params) - _PARAM_NAMES)
        if unknown:
            raise InvalidKafkaParamsError(
                f"unknown params {unknown}: expected {sorted(_PARAM_NAMES)}"
            )
        from_beginning = params.get("fromBeginning", True)
        if not isinstance(from_beginning, bool):
            raise InvalidKafkaParamsError(
                f"fromBeginning must be a boolean, not {from_beginning!r}"
            )
        return cls(resource, from_beginning)
