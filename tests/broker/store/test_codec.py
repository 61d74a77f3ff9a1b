from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from broker.store.codec import (
    CodecError,
    DeltaEntry,
    InputLogEntry,
    LeaseRecord,
    Meta,
    decode_entries,
    encode_entries,
    new_epoch,
)
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from tests.support.redis_server import stream_entries

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("entries", "encoded"),
    [
        ((), b"[]"),
        (((1, ["a"]),), b'[[1,["a"]]]'),
        (((None, []), (True, [1, 2])), b"[[null,[]],[true,[1,2]]]"),
        ((([1, "x"], [{"k": 1.5}]),), b'[[[1,"x"],[{"k":1.5}]]]'),
        ([(2**70, [1])], b"[[1180591620717411303424,[1]]]"),  # beyond orjson's 64 bits
    ],
)
def test_entries_table(entries: Any, encoded: bytes) -> None:
    assert encode_entries(entries) == encoded
    assert decode_entries(encoded) == tuple((key, values) for key, values in entries)


@pytest.mark.parametrize(
    "bad", [b"", b"{}", b"[1]", b"[[1]]", b"[[1,2]]", b"[[1,[2],3]]", b"[[1,{}]]", b"nope"]
)
def test_entries_rejects(bad: bytes) -> None:
    with pytest.raises(CodecError):
        decode_entries(bad)


DELTA = DeltaEntry(
    version=7,
    epoch="lz1-abc",
    term=3,
    ts_ms=1700000000123,
    changes={"ranked": ((1, [10]), (2, [])), "a": (("k", ["v"]),)},
)


def test_delta_entry_fields() -> None:
    assert DELTA.encode() == {
        b"version": b"7",
        b"epoch": b"lz1-abc",
        b"term": b"3",
        b"ts": b"1700000000123",
        b"c:a": b'[["k",["v"]]]',
        b"c:ranked": b"[[1,[10]],[2,[]]]",
    }
    assert DeltaEntry.decode(DELTA.encode()) == DELTA


def test_empty_delta_has_no_collection_fields() -> None:
    empty = DeltaEntry(version=1, epoch="e", term=1, ts_ms=0)
    assert set(empty.encode()) == {b"version", b"epoch", b"term", b"ts"}
    assert DeltaEntry.decode(empty.encode()) == empty


@pytest.mark.parametrize(
    "fields",
    [
        {b"epoch": b"e", b"term": b"1", b"ts": b"0"},
        {b"version": b"x", b"epoch": b"e", b"term": b"1", b"ts": b"0"},
        {b"version": b"1", b"epoch": b"e", b"term": b"1", b"ts": b"0", b"c:x": b"{}"},
        {b"version": b"1", b"epoch": b"\xff", b"term": b"1", b"ts": b"0"},
    ],
)
def test_delta_entry_rejects(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(CodecError):
        DeltaEntry.decode(fields)


@pytest.mark.parametrize(
    ("entry", "fields"),
    [
        (
            InputLogEntry(version=5, term=2, ts_ms=9, writes={"posts": ((1, [{"t": "a"}]),)}),
            {b"version": b"5", b"term": b"2", b"ts": b"9", b"c:posts": b'[[1,[{"t":"a"}]]]'},
        ),
        (
            InputLogEntry(version=6, term=2, ts_ms=9, writes={"v": ()}, idempotency_key="k1"),
            {b"version": b"6", b"term": b"2", b"ts": b"9", b"idem": b"k1", b"c:v": b"[]"},
        ),
    ],
)
def test_input_log_entry_table(entry: InputLogEntry, fields: dict[bytes, bytes]) -> None:
    assert entry.encode() == fields
    assert InputLogEntry.decode(fields) == entry


META = Meta(
    service="hn",
    epoch="e1",
    shared=("ranked", "posts"),
    inputs=("posts",),
    head=12,
    snapshot=10,
    created_ms=100,
    head_ms=200,
    snapshot_ms=150,
)


def test_meta_fields() -> None:
    assert META.encode() == {
        b"format": b"1",
        b"service": b"hn",
        b"epoch": b"e1",
        b"shared": b'["ranked","posts"]',
        b"inputs": b'["posts"]',
        b"head": b"12",
        b"head_ms": b"200",
        b"snapshot": b"10",
        b"snapshot_ms": b"150",
        b"created_ms": b"100",
    }
    assert Meta.decode(META.encode()) == META


@pytest.mark.parametrize(
    ("field", "value"),
    [(b"format", b"2"), (b"shared", b'"x"'), (b"inputs", b"[1]"), (b"head", b"1.5")],
)
def test_meta_rejects(field: bytes, value: bytes) -> None:
    with pytest.raises(CodecError):
        Meta.decode({**META.encode(), field: value})


@pytest.mark.parametrize(
    ("record", "encoded"),
    [
        (LeaseRecord(1, "leader-0/12-ab"), b"1:leader-0/12-ab"),
        (LeaseRecord(42, "a:b"), b"42:a:b"),
    ],
)
def test_lease_record_table(record: LeaseRecord, encoded: bytes) -> None:
    assert record.encode() == encoded
    assert LeaseRecord.decode(encoded) == record
    assert LeaseRecord.decode(encoded.decode()) == record


@pytest.mark.parametrize("bad", [b"", b"x:y", b"1", b":h", b"0:h", b"5:"])
def test_lease_record_rejects(bad: bytes) -> None:
    with pytest.raises(CodecError):
        LeaseRecord.decode(bad)


NODE = NodeRecord(
    node_id="f-0",
    role="follower",
    epoch="e1",
    applied=41,
    ts_ms=5,
    started_ms=1,
    ready=True,
    url="http://10.0.0.2:8080",
)


def test_node_record_table() -> None:
    assert NODE.encode() == (
        b'{"node_id":"f-0","role":"follower","epoch":"e1","applied":41,"ts_ms":5,'
        b'"started_ms":1,"ready":true,"url":"http://10.0.0.2:8080"}'
    )
    assert NodeRecord.decode(NODE.encode()) == NODE


def test_node_record_load_fields_are_optional() -> None:
    loaded = dataclasses.replace(NODE, streams=12, capacity=500, draining=True)
    assert loaded.encode() == NODE.encode()[:-1] + (
        b',"streams":12,"capacity":500,"draining":true}'
    )
    assert NodeRecord.decode(loaded.encode()) == loaded
    # A record without them (an older node) reads as no streams, no bound, not draining.
    assert NodeRecord.decode(NODE.encode()).streams == 0
    with pytest.raises(CodecError):
        NodeRecord.decode(loaded.encode().replace(b'"draining":true', b'"draining":1'))


@pytest.mark.parametrize(
    "bad",
    [
        b"[]",
        b'{"node_id":"f"}',
        NODE.encode().replace(b'"follower"', b'"boss"'),
        NODE.encode().replace(b'"applied":41', b'"applied":true'),
        NODE.encode().replace(b'"ready":true', b'"ready":1'),
    ],
)
def test_node_record_rejects(bad: bytes) -> None:
    with pytest.raises(CodecError):
        NodeRecord.decode(bad)


def test_new_epochs_are_distinct_and_safe_in_keys_and_event_ids() -> None:
    epochs = {new_epoch() for _ in range(200)}
    assert len(epochs) == 200
    assert all(re.fullmatch(r"[0-9a-z]+-[0-9a-f]{6}", e) for e in epochs)


json_keys = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # wider ints come back as floats (json_bytes)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
entries = st.lists(st.tuples(json_keys, st.lists(json_keys, max_size=3)), max_size=5).map(tuple)
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)


@given(
    version=st.integers(1, 2**62),
    term=st.integers(1, 2**62),
    changes=st.dictionaries(names, entries, max_size=4),
)
def test_delta_round_trip(version: int, term: int, changes: Any) -> None:
    delta = DeltaEntry(version=version, epoch="e", term=term, ts_ms=version, changes=changes)
    assert DeltaEntry.decode(delta.encode()) == delta


@given(writes=st.dictionaries(names, entries, max_size=4), key=st.none() | names)
def test_input_log_round_trip(writes: Any, key: str | None) -> None:
    entry = InputLogEntry(version=3, term=1, ts_ms=0, writes=writes, idempotency_key=key)
    assert InputLogEntry.decode(entry.encode()) == entry


async def test_entries_read_back_from_a_real_stream(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    await redis_client.xadd(keyspace.deltas, DELTA.encode(), id="7-0")  # type: ignore[arg-type]
    [(stream_id, fields)] = await stream_entries(redis_client, keyspace.deltas)
    assert stream_id == b"7-0"
    assert DeltaEntry.decode(fields) == DELTA
    await redis_client.hset(keyspace.meta, mapping=META.encode())  # type: ignore[arg-type]
    assert Meta.decode(await redis_client.hgetall(keyspace.meta)) == META
