"""The public names of broker.external are pinned: changing them is a decision."""

from __future__ import annotations

import pytest

import broker.external
from broker.errors import BrokerError
from graph import ExternalService

pytestmark = pytest.mark.timeout(10)


def test_all_is_pinned() -> None:
    assert sorted(broker.external.__all__) == [
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
    for name in broker.external.__all__:
        value = getattr(broker.external, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, BrokerError), name
    assert issubclass(broker.external.PolledExternalService, ExternalService)
    assert issubclass(broker.external.SkipExternalService, ExternalService)
