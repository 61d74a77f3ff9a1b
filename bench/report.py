"""Printing result tables and writing results JSON for every benchmark."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}\n" + "-" * (width + 20))
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:>16}")


def write_json(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    path = RESULTS / f"{name}-{stamp}.json"
    payload = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "result": result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
