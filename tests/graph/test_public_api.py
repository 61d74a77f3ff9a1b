"""Pins graph's public API: adding or removing a name must be a deliberate change here."""

from __future__ import annotations

import ast
import pathlib

import graph

PUBLIC = [
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


def test_all_is_pinned() -> None:
    assert graph.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in graph.__all__:
        assert getattr(graph, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in graph.__all__:
        obj = getattr(graph, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, graph.GraphError), name
    assert issubclass(graph.CycleError, graph.UserCodeError)


def test_graph_does_no_io() -> None:
    """graph/ imports neither redis nor starlette nor anything that does I/O."""
    forbidden = {
        "redis",
        "starlette",
        "uvicorn",
        "sse_starlette",
        "httpx",
        "asyncio",
        "socket",
        "threading",
        "broker",
        "proxy",
        "skiff",
    }
    package = pathlib.Path(graph.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & forbidden, f"{path.name} imports {roots & forbidden}"
