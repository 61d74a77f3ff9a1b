"""Stream ids: `<node id>.<22 base64url chars>`, 128 random bits, one spelling per id."""

from __future__ import annotations

import base64

import pytest

from proxy import InvalidStreamIdError
from proxy.stream_ids import RANDOM_BYTES, StreamId, can_host, mint, parse

pytestmark = pytest.mark.timeout(10)


def test_minted_ids_name_their_node_and_carry_128_random_bits() -> None:
    ids = {mint("follower-0") for _ in range(1000)}
    assert len(ids) == 1000
    for stream_id in ids:
        parsed = parse(stream_id)
        assert parsed.node_id == "follower-0"
        assert len(parsed.token) == RANDOM_BYTES == 16  # >= 122 bits, a UUIDv4's
        assert str(parsed) == stream_id


@pytest.mark.parametrize(
    ("node_id", "token", "expected"),
    [
        ("f-0", bytes(16), "f-0.AAAAAAAAAAAAAAAAAAAAAA"),
        ("pod.ns.svc", b"\xff" * 16, "pod.ns.svc._____________________w"),
        ("a", bytes(range(16)), "a.AAECAwQFBgcICQoLDA0ODw"),
    ],
)
def test_encoding_table(node_id: str, token: bytes, expected: str) -> None:
    assert str(StreamId(node_id, token)) == expected
    assert parse(expected) == StreamId(node_id, token)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "f-0",
        ".AAAAAAAAAAAAAAAAAAAAAA",  # no node
        "f-0.AAAAAAAAAAAAAAAAAAAAA",  # 21 chars
        "f-0.AAAAAAAAAAAAAAAAAAAAAAA",  # 23 chars
        "f-0.AAAAAAAAAAAAAAAAAAAAAB",  # non-canonical: spare bits set
        "f-0.AAAAAAAAAAAAAAAAAAAA==",  # padding
        "f-0.AAAAAAAAAAAAAAAAAAAA+/",  # not the URL-safe alphabet
        "f/0.AAAAAAAAAAAAAAAAAAAAAA",  # node id with a slash
        "-f.AAAAAAAAAAAAAAAAAAAAAA",  # node id must start alphanumeric
        "f 0.AAAAAAAAAAAAAAAAAAAAAA",
        "é.AAAAAAAAAAAAAAAAAAAAAA",
        "x" * 101 + ".AAAAAAAAAAAAAAAAAAAAAA",  # node id too long
        "123e4567-e89b-42d3-a456-426614174000",  # a node's own uuid4 id
    ],
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(InvalidStreamIdError):
        parse(bad)


def test_node_ids_that_cannot_host() -> None:
    assert can_host("web-1.default.svc")
    assert not can_host("node/1")
    assert not can_host("")
    with pytest.raises(InvalidStreamIdError):
        mint("has space")


def test_every_suffix_decodes_to_the_token() -> None:
    stream_id = mint("n")
    suffix = stream_id.rpartition(".")[2]
    assert base64.urlsafe_b64decode(suffix + "==") == parse(stream_id).token
