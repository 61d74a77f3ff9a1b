"""The broker test service under a name from the environment, for `skiff` processes a test
starts: `tests.support.named_service:service` with SKIFF_TEST_SERVICE_NAME set."""

from __future__ import annotations

import dataclasses
import os

from graph import Service
from tests.support.services import make_service


def service() -> Service:
    return dataclasses.replace(make_service(), name=os.environ["SKIFF_TEST_SERVICE_NAME"])
