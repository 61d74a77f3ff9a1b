"""Skip's defaultParamEncoder as a table: what JavaScript's URLSearchParams and JSON.stringify
would write for the same params."""

from __future__ import annotations

from typing import Any

import pytest

from broker.external import default_param_encoder

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("params", "query"),
    [
        ({}, "?"),
        ({"city": "Paris"}, "?city=Paris"),
        ({"city": "New York", "n": 3}, "?city=New+York&n=3"),
        ({"ok": True, "no": False}, "?ok=true&no=false"),
        ({"x": 2.0, "y": 2.5}, "?x=2&y=2.5"),
        ({"tags": ["a", "b"]}, "?tags=%5B%22a%22%2C%22b%22%5D"),
        ({"where": {"lat": 1}}, "?where=%7B%22lat%22%3A1%7D"),
        ({"nothing": None}, "?nothing=null"),
        ({"q": "a&b=c#d"}, "?q=a%26b%3Dc%23d"),
        ({"q": "*-._~"}, "?q=*-._%7E"),
        ({"é": "ü"}, "?%C3%A9=%C3%BC"),
        (["a", 1], "?0=a&1=1"),
        ("Paris", "?params=%22Paris%22"),
        (42, "?params=42"),
        (None, "?params=null"),
        (True, "?params=true"),
    ],
)
def test_default_param_encoder(params: Any, query: str) -> None:
    assert default_param_encoder(params) == query
