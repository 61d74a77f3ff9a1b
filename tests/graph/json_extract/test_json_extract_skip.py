"""json_extract against Skip's own: seeded random patterns and objects, compared with what
`context.jsonExtract` returns on Skip's wasm runtime (bench/skip/json_extract.mjs).

Needs Node.js and Skip's npm packages (`make bench-skip` installs them outside the repository);
skipped without them. Skip's JavaScript binding cannot tell 1 from 1.0 and (in 0.0.15) returns
booleans as 0 and 1, so both sides are compared as JSON text with every number and boolean made
a float; Skip's own tables (tests/graph/json_extract/test_json_extract.py) pin the rest.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import skip_runtime
from graph import GraphError
from graph.json_extract.extract import extract
from graph.json_extract.pattern import ArrayPattern, Pattern, Var, parse_pattern
from graph.json_extract.pattern_types import ARRAY, BOOL, FLOAT, INT, NULL, OBJECT, STRING, JsonType

REASON = skip_runtime.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
    pytest.mark.timeout(300),
]

SCRIPT = Path(skip_runtime.__file__).parent / "skip" / "json_extract.mjs"
NAMES = ["a", "b", "c", "x", "y"]
SCALARS: list[Any] = [None, True, False, 0, 1, 2, 1.5, -3, "s", "a"]
TYPES = ["int", "float", "num", "string", "bool", "null"]
SPECIALS = ["%", "%.a", "%a", "a%", "%[]", "%[%]%", "x%[]", ".%", "%.a%", "%[0]", "%.b.c"]
PATHS = ["[]", "[0]", "[1]", ".a", "[].b", "[][]", ".b.c", "[0].a"]


def a_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice(SCALARS)
    if roll < 0.7:
        # Mostly two or three elements: products of several `[]` fields are where order shows.
        return [a_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 2, 3, 3]))]
    return {k: a_value(rng, depth + 1) for k in rng.sample(NAMES, rng.randint(0, 3))}


def a_type(rng: random.Random, depth: int = 0) -> str:
    alternatives = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        roll = rng.random()
        if depth > 2 or roll < 0.5:
            alternatives.append(rng.choice(TYPES))
        elif roll < 0.7:
            alternatives.append("[]" if rng.random() < 0.2 else f"[{a_type(rng, depth + 1)}]")
        else:
            fields = [
                ("?" if rng.random() < 0.4 else "") + f"{name}: {a_type(rng, depth + 1)}"
                for name in rng.sample(["a", "b", "c"], rng.randint(0, 3))
            ]
            alternatives.append("{" + ", ".join(fields) + "}")
    return " | ".join(alternatives)


def a_var(rng: random.Random) -> str:
    name = rng.choice(["v", "w", "z"])
    return f"{name}<{a_type(rng)}>" if rng.random() < 0.3 else name


def a_pattern(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.3:
        return a_var(rng)
    if roll < 0.45:
        if rng.random() < 0.3:
            return rng.choice(["[]", "{}"])
        return f"[{a_pattern(rng, depth + 1)}]"
    fields = []
    special = False
    for _ in range(rng.randint(0, 3)):
        optional = "?" if rng.random() < 0.3 else ""
        roll = rng.random()
        if roll < 0.15 and not special:
            special = True
            name = rng.choice(SPECIALS)
        elif roll < 0.3:
            name = rng.choice(["a", "b", "x"]) + rng.choice(PATHS)
        elif roll < 0.4:
            name = '"' + rng.choice(["a", "a.b", "x[0]", "c"]) + '"'
        else:
            name = rng.choice(NAMES)
            if rng.random() < 0.3:  # the short form: `{a}`, `{a<int>}`
                fields.append(optional + name + (f"<{a_type(rng)}>" if rng.random() < 0.4 else ""))
                continue
        fields.append(f"{optional}{name}: {a_pattern(rng, depth + 1)}")
    return "{" + ", ".join(fields) + "}"


def a_product(rng: random.Random) -> str:
    """Several fields with several matches each: the order of a product shows."""
    fields = []
    for name in rng.sample(NAMES, rng.randint(2, 3)):
        optional = "?" if rng.random() < 0.2 else ""
        path = rng.choice(["[]", "[]", "[][]", "[].a", "", ".a[]"])
        inner = rng.choice(["v", "w", "[z]", "{a[]: v, ?b: w}", "[{b: w}]", "v<int | string>"])
        fields.append(f"{optional}{name}{path}: {inner}")
    if rng.random() < 0.3:
        fields.append(rng.choice(["%: u", "%[]: u", "%.a: u"]))
    return "{" + ", ".join(fields) + "}"


def a_fit(rng: random.Random, pattern: Pattern, depth: int = 0) -> Any:
    """A value shaped after `pattern` (mostly): what makes matches, and products of them."""
    if depth > 4 or rng.random() < 0.1:
        return a_value(rng, 2)
    if isinstance(pattern, Var):
        return a_typed(rng, pattern.type, depth) if pattern.type else a_value(rng, 1)
    if isinstance(pattern, ArrayPattern):
        size = rng.choice([0, 1, 2, 3, 3]) if pattern.index is None else pattern.index + 1
        return [a_fit(rng, pattern.item, depth + 1) for _ in range(size)]
    out = {f.name: a_fit(rng, f.pattern, depth + 1) for f in pattern.fields if rng.random() < 0.9}
    if pattern.special is not None:
        for name in rng.sample(NAMES, 2):
            out.setdefault(name, a_fit(rng, pattern.special.pattern, depth + 1))
    return out


def a_typed(rng: random.Random, ty: JsonType, depth: int) -> Any:
    if not ty.entries or depth > 4:
        return a_value(rng, 3)
    _, simple = rng.choice(ty.entries)
    if simple.kind == ARRAY:
        assert simple.item is not None
        return [a_typed(rng, simple.item, depth + 1) for _ in range(rng.randint(0, 2))]
    if simple.kind == OBJECT:
        fields = [f for f in simple.fields if rng.random() < 0.9]
        return {f.name: a_typed(rng, f.type, depth + 1) for f in fields}
    return {NULL: None, BOOL: True, INT: 2, FLOAT: 1.5, STRING: "s"}[simple.kind]


def cases(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.25:
            pattern = a_product(rng)
        elif rng.random() < 0.2:
            pattern = rng.choice(["{a<%s>}", "{a[]: v<%s>}", "{?a: v<%s>}", "%%.a: v<%s>"])
            pattern %= a_type(rng)
        else:
            pattern = a_pattern(rng)
        value = {k: a_value(rng) for k in rng.sample(NAMES, rng.randint(0, 5))}
        if rng.random() < 0.6:
            try:
                fit = a_fit(rng, parse_pattern(pattern))
            except GraphError:
                fit = None
            if isinstance(fit, dict):
                value = fit
        out.append({"value": value, "pattern": pattern})
    return out


def as_js(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, list):
        return [as_js(item) for item in value]
    if isinstance(value, dict):
        return {name: as_js(item) for name, item in value.items()}
    return value


def ours(case: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": extract(case["value"], case["pattern"])}
    except GraphError as err:
        return {"error": str(err)}


def skips(batch: list[dict[str, Any]], folder: Path, work: Path) -> list[dict[str, Any]] | None:
    """Skip's results, or None when its runtime failed (after many caught errors in one
    process, 0.0.15's sometimes does: the caller then runs the cases one by one)."""
    path = work / "cases.json"
    path.write_text(json.dumps(batch))
    done = subprocess.run(
        ["node", "json_extract.mjs", str(path)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        return None
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_extract_agrees_with_skip(seed: int, tmp_path: Path) -> None:
    folder = skip_runtime.scratch_dir()
    shutil.copyfile(SCRIPT, folder / "json_extract.mjs")
    todo = cases(seed, 600)
    theirs: list[dict[str, Any]] = []
    for start in range(0, len(todo), 100):
        batch = todo[start : start + 100]
        got = skips(batch, folder, tmp_path)
        if got is None:
            got = []
            for case in batch:
                one = skips([case], folder, tmp_path)
                assert one is not None, f"Skip's runtime failed on {case}"
                got += one
        theirs += got
    disagreements = []
    matched = failed = 0
    for case, skip in zip(todo, theirs, strict=True):
        mine = ours(case)
        matched += bool(mine.get("ok"))
        failed += "error" in mine
        if ("error" in mine) != ("error" in skip) or (
            "ok" in mine and json.dumps(as_js(mine["ok"])) != json.dumps(as_js(skip["ok"]))
        ):
            disagreements.append((case, mine, skip))
    assert disagreements == []
    # The generator must exercise matching, not only refusals or empty results.
    assert matched > len(todo) // 5
    assert failed < len(todo) // 4
