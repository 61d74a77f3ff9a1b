"""README.md and docs/*.md point only at things this repository has: every relative link, and
every file path they name (`broker/serving/app.py`, `docker/compose.yml`, `skiff.js`, ...)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from skiff.commands.dev import DEFAULT_PORT

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_EXTENSIONS = "py|md|yml|yaml|toml|js|html|css|sh|json|png|txt|lua|cfg|ini"
# A file name, alone or after folders: `PROTOCOL.md`, `shared/CONTAINERS.md`, `.ci/run.sh`; not
# the end of a URL or a route (`/static/skiff.js`: preceded by a slash).
_FILE = re.compile(rf"(?<![\w./:-])\.?[\w-]+(?:[./][\w-]+)*\.(?:{_EXTENSIONS})(?![\w/-])")
# A path with at least one folder: `broker/serving/`, `tests/web`, `.ci/run`.
_ROOTED = re.compile(r"(?<![\w./:-])\.?[\w-]+(?:/[\w.-]+)+/?|(?<![\w./:-])\.?[\w-]+/(?![\w.])")
# Where commands write (git-ignored): named as where a run puts its output, not shipped.
_WRITTEN_BY_RUNS = (".venv/", "test-artifacts/", "bench/results/", "build/")
#: Words that look like file names and are not: product names. (`path/to/...` is a placeholder.)
_NOT_FILES = {"Node.js"}
_SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@cache
def _repository_paths() -> frozenset[str]:
    """Every file and folder of the working tree, relative, folders with a trailing slash."""
    found: set[str] = set()
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        parts = set(relative.parts)
        if _SKIPPED_DIRS & parts or any(p.endswith(".egg-info") for p in parts):
            continue
        found.add(relative.as_posix() + ("/" if path.is_dir() else ""))
    return frozenset(found)


def _top_level() -> set[str]:
    """The repository's top-level folders, `broker/`, `.ci/`, ..."""
    return {p.split("/")[0] + "/" for p in _repository_paths() if "/" in p}


def _exists(token: str, document: Path) -> bool:
    """A path names something of the repository: from its root, from the document's folder,
    or (a path inside a package, `serving/app.py`; a bare file name) as the end of one."""
    token = token.removeprefix("./")
    if token.startswith(_WRITTEN_BY_RUNS):
        return True
    if (ROOT / token).exists() or (document.parent / token).exists():
        return True
    suffix = token if token.endswith("/") or "." in token.rsplit("/", 1)[-1] else token + "/"
    return any(p == suffix or p.endswith("/" + suffix) for p in _repository_paths())


def _named_paths(text: str) -> set[str]:
    """The paths a document names, in prose, code spans and code blocks alike: file names
    (with an extension), and paths whose first folder is a top-level one of the repository
    (`tests/web`, `proxy/static/`; `skiff/Skip` in prose is a comparison, not a path: in prose
    a folder path counts when it ends with a slash)."""
    top = _top_level()
    names = {m.group(0) for m in _FILE.finditer(text)}
    spans = " ".join(_CODE.findall(text))
    for source, folder_only in ((text, True), (spans, False)):
        for match in _ROOTED.finditer(source):
            name = match.group(0)
            if name.removeprefix("./").split("/")[0] + "/" not in top:
                continue
            if folder_only and not name.endswith("/") and "." not in name.rsplit("/", 1)[-1]:
                continue
            names.add(name)
    return {n.rstrip(".") for n in names if not n.startswith("path/to/")} - _NOT_FILES


def _links(text: str) -> set[str]:
    targets = set()
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        targets.add(target.split("#")[0])
    return targets


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    broken = [t for t in _links(document.read_text()) if not (document.parent / t).exists()]
    assert broken == [], f"{document.name} links to missing files"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_paths_exist(document: Path) -> None:
    missing = sorted(p for p in _named_paths(document.read_text()) if not _exists(p, document))
    assert missing == [], f"{document.name} names paths this repository does not have"


def test_the_checks_catch_what_they_should() -> None:
    doc = ROOT / "docs" / "proxy.md"
    text = (
        "see [the protocol](protocol.md) and [gone](PROTOCOL.md#x); PROTOCOL.md records it "
        "(shared/CONTAINERS.md), `broker/serving/nothing.py`, `tests/nowhere` and "
        "`nothing_here.py`; not paths: `text/plain`, skiff/Skip, GET /static/skiff.js, "
        "http://example.com/a.md, `path/to/file.py:service`"
    )
    assert _links(text) == {"protocol.md", "PROTOCOL.md"}
    assert _named_paths(text) == {
        "protocol.md",  # the links' targets too
        "PROTOCOL.md",
        "shared/CONTAINERS.md",
        "broker/serving/nothing.py",
        "tests/nowhere",
        "nothing_here.py",
    }
    for name in ("PROTOCOL.md", "shared/CONTAINERS.md", "tests/nowhere", "nothing_here.py"):
        assert not _exists(name, doc), name
    for name in ("broker/serving/app.py", "serving/app.py", "skiff.js", "img/web-app.png"):
        assert _exists(name, doc), name


def test_the_readme_tour_does_not_take_make_devs_port() -> None:
    # Someone running `make dev` and then the tour must not find the port taken.
    ports = re.findall(r"skiff serve \S+ --port (\d+)", (ROOT / "README.md").read_text())
    assert ports and all(int(p) != DEFAULT_PORT for p in ports)
