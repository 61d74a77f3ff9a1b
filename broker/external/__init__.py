"""External services: adapters that feed a service's external collections (graph/external.py)
from outside — a polled HTTP API, another Skip-protocol service, a PostgreSQL table, a Kafka
topic — and the feeds that run their subscriptions for a node. docs/external.md is the user's
guide."""

from broker.external.errors import (
    ExternalFetchError,
    ExternalServiceError,
    ExternalStreamError,
    UnknownExternalResourceError,
)

# Kafka (kafka.py; aiokafka, the `kafka` extra, is imported on first use).
from broker.external.kafka import KafkaExternalService
from broker.external.kafka_messages import KafkaMessage
from broker.external.kafka_params import (
    InvalidKafkaParamsError,
    KafkaAdapterError,
    KafkaConfig,
    KafkaMessageError,
    KafkaSubscribeError,
    KafkaUnavailableError,
)
from broker.external.params import default_param_encoder
from broker.external.polled import PolledExternalService, PolledHTTPResource

# PostgreSQL (postgres.py; asyncpg, the `postgres` extra, is imported on first use).
from broker.external.postgres import PostgresExternalService
from broker.external.postgres_connection import PostgresConfig
from broker.external.postgres_params import (
    InvalidPostgresParamsError,
    PostgresAdapterError,
    PostgresSubscribeError,
    PostgresUnavailableError,
)
from broker.external.skip import SkipExternalService

__all__ = [
    "ExternalFetchError",
    "ExternalServiceError",
    "ExternalStreamError",
    "InvalidKafkaParamsError",
    "InvalidPostgresParamsError",
    "KafkaAdapterError",
    "KafkaConfig",
    "KafkaExternalService",
    "KafkaMessage",
    "KafkaMessageError",
    "KafkaSubscribeError",
    "KafkaUnavailableError",
    "PolledExternalService",
    "PolledHTTPResource",
    "PostgresAdapterError",
    "PostgresConfig",
    "PostgresExternalService",
    "PostgresSubscribeError",
    "PostgresUnavailableError",
    "SkipExternalService",
    "UnknownExternalResourceError",
    "default_param_encoder",
]
