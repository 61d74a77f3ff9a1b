"""The Makefile's install steps (`make -n`: printed, not run): `make dev` installs what running
skiff needs, `make test` adds the test toolchain, each says what it does while pip works."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH"),
]

ROOT = Path(__file__).resolve().parents[1]
DEV = "install -e '.[dev]'"
TEST = "install -e '.[dev,test]'"


def planned(target: str, venv: Path) -> str:
    # Under `make test` this runs inside a make: its MAKELEVEL/MAKEFLAGS would make the inner one
    # print "Entering directory" lines around the plan (as CI's did).
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", f"VENV={venv}", target],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_fresh_make_dev_installs_only_what_running_needs(tmp_path: Path) -> None:
    plan = planned("dev", tmp_path / "venv")
    assert "-m venv" in plan and DEV in plan and "test]" not in plan and "toolchain" not in plan
    assert plan.index('echo "make: installing skiff') < plan.index(DEV)
    # setuptools' "Editable installation" notice is filtered (the Makefile says why).
    assert "PYTHONWARNINGS='ignore:Editable installation'" in plan
    assert plan.rstrip().endswith("skiff dev")


def test_a_fresh_make_test_installs_both(tmp_path: Path) -> None:
    plan = planned("test", tmp_path / "venv")
    assert plan.index(DEV) < plan.index(TEST) < plan.index("-m pytest")


def test_make_test_after_make_dev_only_adds_the_test_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-dev").touch()
    later = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(venv / ".installed-dev", (later, later))
    plan = planned("test", venv)
    assert DEV not in plan and "-m venv" not in plan
    assert "adding the test toolchain" in plan and TEST in plan
    assert planned("dev", venv).strip() == f"{venv}/bin/skiff dev"
