"""skiff's incremental engine: Skip's reactive model in pure Python (no I/O)."""

from graph.api import LazyCompute, Mapper, Reducer, Resource
from graph.changeset import Changeset, Entry, TickResult
from graph.collections import EagerCollection
from graph.context import Context
from graph.engine import Engine
from graph.errors import (
    CycleError,
    ForbiddenError,
    GraphError,
    InvalidWriteError,
    KeyLookupError,
    NotJsonError,
    ParamsRejectedError,
    PatternError,
    UnknownCollectionError,
    UnknownResourceError,
    UserCodeError,
)
from graph.external import ExternalCallbacks, ExternalService
from graph.json_extract.extract import json_extract
from graph.keys import json_sort_key
from graph.nodes.lazy import LazyCollection
from graph.reducers import Count, Max, Min, Sum
from graph.resources.instance import ResourceInstance
from graph.service import Service
from graph.values import Values

__all__ = [
    "Changeset",
    "Context",
    "Count",
    "CycleError",
    "EagerCollection",
    "Engine",
    "Entry",
    "ExternalCallbacks",
    "ExternalService",
    "ForbiddenError",
    "GraphError",
    "InvalidWriteError",
    "KeyLookupError",
    "LazyCollection",
    "LazyCompute",
    "Mapper",
    "Max",
    "Min",
    "NotJsonError",
    "ParamsRejectedError",
    "PatternError",
    "Reducer",
    "Resource",
    "ResourceInstance",
    "Service",
    "Sum",
    "TickResult",
    "UnknownCollectionError",
    "UnknownResourceError",
    "UserCodeError",
    "Values",
    "json_extract",
    "json_sort_key",
]
