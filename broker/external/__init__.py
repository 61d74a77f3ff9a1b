"""External services: adapters that feed a service's external collections (graph/external.py)
from outside — a polled HTTP API, another Skip-protocol service, a PostgreSQL table — and the
feeds that run their subscriptions for a node."""

# PostgreSQL (postgres.py; asyncpg, the `postgres` extra, is imported on first use).
from broker.external.postgres import PostgresExternalService
from broker.external.postgres_connection import PostgresConfig
from broker.external.postgres_params import (
    InvalidPostgresParamsError,
    PostgresAdapterError,
    PostgresSubscribeError,
    PostgresUnavailableError,
)

__all__ = [
    "InvalidPostgresParamsError",
    "PostgresAdapterError",
    "PostgresConfig",
    "PostgresExternalService",
    "PostgresSubscribeError",
    "PostgresUnavailableError",
]
