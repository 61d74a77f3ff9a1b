"""Loading a user's service from a `module:attribute` or `path/to/file.py:attribute` reference."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from broker.errors import ServiceLoadError
from graph import Service


def load_service(reference: str) -> Service:
    """Import `module:attribute` (dotted attributes allowed) with the working directory on
    sys.path, as `python -m` would; or run `path/to/file.py:attribute` from any directory, its
    folder on sys.path (so it may import its neighbours). A callable attribute is called with
    no arguments, so a factory works as well as a Service object."""
    module_name, sep, attribute = reference.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ServiceLoadError(f"expected MODULE:ATTRIBUTE, got {reference!r}")
    if module_name.endswith(".py"):
        target: Any = _import_file(Path(module_name))
    else:
        target = _import_module(module_name, attribute)
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


def _import_module(name: str, attribute: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        hint = ""
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            # The reference itself is not importable from here (not a missing dependency).
            path = name.replace(".", "/") + ".py"
            hint = (
                f" (modules are looked up from the working directory, {cwd}: run from the "
                f"folder that holds {err.name}, or name the file: .../{path}:{attribute})"
            )
        raise ServiceLoadError(f"cannot import {name!r}: {err}{hint}") from err
    except Exception as err:
        raise ServiceLoadError(f"cannot import {name!r}: {err!r}") from err


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ServiceLoadError(f"no file {str(path)!r} (from {os.getcwd()})")
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) == str(path):
            return existing
        raise ServiceLoadError(
            f"cannot load {str(path)!r} as module {name!r}: a module of that name is already "
            "imported; rename the file"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ServiceLoadError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: its classes name this module.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ServiceLoadError(f"cannot import {str(path)!r}: {err!r}") from err
    return module
