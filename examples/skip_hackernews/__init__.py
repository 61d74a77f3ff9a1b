"""Skip's hackernews reactive service on skiff (see service.py and README.md).

    skiff serve examples.skip_hackernews:service      (PG_HOST, PG_PORT, ... name the database)

`SKIFF_SERVICE_NAME` renames the service (its Redis keyspace): several deployments, or tests,
can share one Redis."""

from __future__ import annotations

import os

from examples.skip_hackernews.service import make_service

service = make_service(name=os.environ.get("SKIFF_SERVICE_NAME") or "skip-hackernews")

__all__ = ["make_service", "service"]
