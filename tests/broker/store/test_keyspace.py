from __future__ import annotations

import pytest

from broker.errors import BrokerError
from broker.store.keyspace import (
    Keyspace,
    KeyspaceError,
    snapshot_chunk_field,
    stream_id_of,
    version_of,
)

pytestmark = pytest.mark.timeout(10)

KS = Keyspace("hn")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (KS.prefix, "skiff:{hn}:"),
        (KS.meta, "skiff:{hn}:meta"),
        (KS.lease, "skiff:{hn}:lease"),
        (KS.fence, "skiff:{hn}:fence"),
        (KS.deltas, "skiff:{hn}:deltas"),
        (KS.inputs, "skiff:{hn}:inputs"),
        (KS.nodes, "skiff:{hn}:nodes"),
        (KS.snapshot("lq2k8f3a-1b2c3d", 120), "skiff:{hn}:snap:lq2k8f3a-1b2c3d:120"),
        (KS.snapshot("e", 0), "skiff:{hn}:snap:e:0"),
        (KS.idempotency("req-1"), "skiff:{hn}:idem:req-1"),
        (KS.idempotency("a}{b"), "skiff:{hn}:idem:a}{b"),
        (KS.node("follower-0"), "skiff:{hn}:node:follower-0"),
        (KS.stream("5f0c"), "skiff:{hn}:stream:5f0c"),
        (KS.placement("9a8b"), "skiff:{hn}:placement:9a8b"),
        (KS.pattern, "skiff:{hn}:*"),
        (Keyspace("a_b-c.d").prefix, "skiff:{a_b-c.d}:"),
    ],
)
def test_key_names(key: str, expected: str) -> None:
    assert key == expected


def _hash_tag(key: str) -> str:
    # Redis Cluster: the first {...} with a non-empty body is what gets hashed.
    start = key.index("{")
    return key[start + 1 : key.index("}", start + 1)]


def test_every_key_shares_the_service_hash_tag() -> None:
    keys = [
        KS.meta,
        KS.lease,
        KS.fence,
        KS.deltas,
        KS.inputs,
        KS.nodes,
        KS.snapshot("e", 1),
        KS.idempotency("{x}"),
        KS.node("n"),
        KS.stream("s"),
        KS.placement("p"),
    ]
    assert {_hash_tag(key) for key in keys} == {"hn"}


@pytest.mark.parametrize("service", ["", "a{b", "a}b", "a b", "a:b", "x" * 101, "é", "a\nb"])
def test_rejected_service_names(service: str) -> None:
    with pytest.raises(KeyspaceError):
        Keyspace(service)


@pytest.mark.parametrize(
    "build",
    [
        lambda: KS.idempotency(""),
        lambda: KS.idempotency("x" * 201),
        lambda: KS.node(""),
        lambda: KS.stream("é" * 101),  # 202 bytes
        lambda: KS.snapshot("", 1),
        lambda: KS.snapshot("e", -1),
        lambda: snapshot_chunk_field("shared", "c", -1),
        lambda: stream_id_of(0),
    ],
)
def test_rejected_ids(build: object) -> None:
    with pytest.raises(KeyspaceError):
        build()  # type: ignore[operator]


def test_keyspace_error_is_a_broker_error() -> None:
    assert issubclass(KeyspaceError, BrokerError)


@pytest.mark.parametrize(
    ("part", "collection", "index", "expected"),
    [
        ("shared", "ranked", 0, "shared:ranked:0"),
        ("input", "posts", 12, "input:posts:12"),
        ("input", "a:b", 3, "input:a:b:3"),
    ],
)
def test_snapshot_chunk_fields(part: str, collection: str, index: int, expected: str) -> None:
    assert snapshot_chunk_field(part, collection, index) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "stream_id"), [(1, "1-0"), (42, "42-0"), (10**15, "1000000000000000-0")]
)
def test_stream_ids(version: int, stream_id: str) -> None:
    assert stream_id_of(version) == stream_id
    assert version_of(stream_id) == version
    assert version_of(stream_id.encode()) == version


@pytest.mark.parametrize("bad", ["1", "1-1", "a-0", "-0", "1-0-0", b"x"])
def test_foreign_stream_ids(bad: str | bytes) -> None:
    with pytest.raises(KeyspaceError):
        version_of(bad)


def test_pattern_escapes_glob_characters() -> None:
    # Service names cannot hold glob characters today; the escape keeps `pattern` exact if the
    # accepted alphabet ever grows.
    assert Keyspace("a.b").pattern == "skiff:{a.b}:*"
