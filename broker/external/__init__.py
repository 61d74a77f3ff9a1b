"""External services: adapters that feed a service's external collections (graph/external.py)
from outside — a polled HTTP API, another Skip-protocol service, a PostgreSQL table — and the
feeds that run their subscriptions for a node."""
