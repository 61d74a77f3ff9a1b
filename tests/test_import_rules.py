"""The import rules of docs/architecture.md, as import-linter contracts (pyproject.toml), and what
they are for: the proxy process never loads the graph engine; every error has its package's root.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("graph", "broker", "proxy", "skiff")


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports finds the packages from its working directory.
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=where, capture_output=True, text=True, timeout=100
    )


def test_the_import_contracts_hold() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("broker/store/keyspace.py", "import proxy.app", "broker is not allowed to import proxy"),
        ("proxy/cluster/routing.py", "import broker.serving.hub", "proxy is not allowed to import"),
        ("broker/leader/lease.py", "import broker.follower.sync", "not allowed to import"),
        ("broker/http/paths.py", "import redis", "broker.http is not allowed to import redis"),
        ("graph/keys.py", "import broker.errors", "graph is not allowed to import broker"),
        (
            "broker/store/keyspace.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import broker.store.codec",
            "No cycles are allowed in broker.store",
        ),
    ],
)
def test_a_broken_rule_is_caught(tmp_path: Path, module: str, line: str, broken: str) -> None:
    """The contracts fail on a deliberate violation (the test above cannot pass vacuously)."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout


def test_the_proxy_does_not_load_the_engine() -> None:
    """The proxy is stateless: importing all of it leaves graph (and the node's rooms) out."""
    code = (
        "import sys, proxy, proxy.app, proxy.server\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'graph'"
        " or m.startswith(('broker.serving', 'broker.leader', 'broker.follower')))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def _exception_classes(package: str) -> list[tuple[str, str, list[str]]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(b).endswith(("Error", "Exception", "Lost")) for b in node.bases
            ):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.append((module, node.name, [ast.unparse(b) for b in node.bases]))
    return found


@pytest.mark.parametrize(
    ("package", "root"),
    [
        ("graph", "graph.GraphError"),
        ("broker", "broker.BrokerError"),
        ("proxy", "proxy.ProxyError"),
    ],
)
def test_every_exception_derives_from_its_package_root(package: str, root: str) -> None:
    import importlib

    root_module, root_name = root.rsplit(".", 1)
    root_cls = getattr(importlib.import_module(root_module), root_name)
    classes = _exception_classes(package)
    assert classes
    for module, name, _ in classes:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, root_cls), f"{module}.{name} is not a {root}"
