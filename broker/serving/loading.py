"""Loading a user's service from a `module:attribute` reference."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from broker.errors import ServiceLoadError
from graph import Service


def load_service(reference: str) -> Service:
    """Import `module:attribute` (dotted attributes allowed) with the working directory on
    sys.path, as `python -m` would. A callable attribute is called with no arguments, so a
    factory works as well as a Service object."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ServiceLoadError(f"expected MODULE:ATTRIBUTE, got {reference!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:
        raise ServiceLoadError(f"cannot import {module_name!r}: {err!r}") from err
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError as err:
            raise ServiceLoadError(f"{module_name!r} has no attribute {attribute!r}") from err
    if not isinstance(target, Service) and callable(target):
        try:
            target = target()
        except Exception as err:
            raise ServiceLoadError(f"{reference} raised: {err!r}") from err
    if not isinstance(target, Service):
        raise ServiceLoadError(f"{reference} is a {type(target).__name__}, not a graph.Service")
    return target
