"""skiff.js under node's built-in test runner (`node --test tests/web/skiff.test.mjs`).

Its key order is the Python one: the table is the keys below sorted by
`graph.keys.json_sort_key` (the engine's order), and the JS side checks `compareKeys` on every
pair and sorts shuffled copies. The same run tests `KeyedMap` and `SkiffStream` (init, updates,
heartbeats, resyncs, reconnects, a new stream when the old id is gone) against a fake
EventSource and fetch.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from graph.keys import json_sort_key
from proxy.web import STATIC_DIR

HERE = Path(__file__).parent

KEYS = [
    None, False, True,
    -1e300, -(2**53), -10, -1.5, -1, -0.25, 0, 0.5, 1, 1.25, 2, 9, 10, 100, 2**53, 1e300,
    "", " ", "0", "10", "9", "A", "Z", "a", "aa", "ab", "b", "é", "ÿ", "Ā", "中", "\ue000",
    "\uffff", "😀", "😀a", "𝄞", "a😀", "a\uffff",
    [], [None], [False], [0], [0, 0], [0, "a"], [1], [-2, "p1"], [-1, "p1"], [-1, "p2"],
    ["a"], ["a", None], ["b"], [[]], [[0]], [{}],
    {}, {"a": None}, {"a": 0}, {"a": 1}, {"a": 1, "b": 0}, {"a": "x"}, {"a": []},
    {"b": 0}, {"b": 0, "a": 5}, {"\uffff": 0}, {"😀": 0}, {"a": {"b": 1}},
]  # fmt: skip


def test_keys_are_distinct() -> None:
    assert len({json.dumps(json_sort_key(k)) for k in KEYS}) == len(KEYS)


@pytest.mark.timeout(60)
def test_skiff_js_under_node(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: skiff.js's unit tests need node's test runner")
    keys = KEYS[:]
    random.Random(5).shuffle(keys)
    table = sorted(keys, key=json_sort_key)
    (tmp_path / "keys.json").write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    # A copy named .mjs: node 20 loads a .js file as CommonJS outside a "type": "module" package.
    shutil.copy(STATIC_DIR / "skiff.js", tmp_path / "skiff.mjs")
    result = subprocess.run(
        [node, "--test", str(HERE / "skiff.test.mjs")],
        env={
            "PATH": "/usr/bin:/bin",
            "SKIFF_JS": str(tmp_path / "skiff.mjs"),
            "SKIFF_KEY_TABLE": str(tmp_path / "keys.json"),
        },
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
