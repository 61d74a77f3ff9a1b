"""The control token check shared by nodes and the proxy: exact match of a Bearer token, made
with hmac.compare_digest (constant time), never `==`."""

from __future__ import annotations

import hmac

import pytest

from broker.http import auth

TOKEN = b"s3cret-token"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer  s3cret-token ", True),
        ("Bearer s3cret-toke", False),
        ("Bearer s3cret-token2", False),
        ("Basic s3cret-token", False),
        ("s3cret-token", False),
        ("", False),
        ("Bearer ", False),
        ("Bearer s3cret-tökén", False),
    ],
)
def test_bearer_matches(header: str, ok: bool) -> None:
    assert auth.bearer_matches(header, TOKEN) is ok


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    assert auth.bearer_matches("Bearer wrong", TOKEN) is False
    assert auth.bearer_matches("Bearer s3cret-token", TOKEN) is True
    assert calls == [(b"wrong", TOKEN), (TOKEN, TOKEN)]
