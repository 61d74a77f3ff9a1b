from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.store.codec import CodecError, decode_entries
from broker.store.snapshot_codec import CollectionChunks, SnapshotManifest, snapshot_fields
from broker.types import Entry

pytestmark = pytest.mark.timeout(30)

INPUTS: dict[str, list[Entry]] = {"posts": [(i, [{"t": str(i)}]) for i in range(5)]}
SHARED: dict[str, list[Entry]] = {"ranked": [(i, [i * 10]) for i in range(3)], "empty": []}


def _manifest(chunk_size: int = 2) -> SnapshotManifest:
    return SnapshotManifest.plan(
        epoch="e1",
        version=9,
        term=4,
        created_ms=77,
        chunk_size=chunk_size,
        inputs=INPUTS,
        shared=SHARED,
    )


def test_plan_counts_chunks_per_collection_in_name_order() -> None:
    assert _manifest().collections == (
        CollectionChunks("input", "posts", 5, 3),
        CollectionChunks("shared", "empty", 0, 0),
        CollectionChunks("shared", "ranked", 3, 2),
    )


def test_manifest_encoding() -> None:
    assert _manifest().encode() == (
        b'{"epoch":"e1","version":9,"term":4,"created_ms":77,"chunk_size":2,"collections":'
        b'[["input","posts",5,3],["shared","empty",0,0],["shared","ranked",3,2]]}'
    )
    assert SnapshotManifest.decode(_manifest().encode()) == _manifest()


def test_fields_cut_entries_in_order() -> None:
    fields = dict(snapshot_fields(_manifest(), INPUTS, SHARED))
    assert list(fields) == [
        "input:posts:0",
        "input:posts:1",
        "input:posts:2",
        "shared:ranked:0",
        "shared:ranked:1",
    ]
    assert fields["input:posts:2"] == b'[[4,[{"t":"4"}]]]'
    assert fields["shared:ranked:1"] == b"[[2,[20]]]"
    posts = [
        e
        for f in ("input:posts:0", "input:posts:1", "input:posts:2")
        for e in decode_entries(fields[f])
    ]
    assert posts == INPUTS["posts"]


def test_part_selects_one_side() -> None:
    assert [c.name for c in _manifest().part("shared")] == ["empty", "ranked"]
    assert [c.name for c in _manifest().part("input")] == ["posts"]
    assert _manifest().collections[2].fields() == ["shared:ranked:0", "shared:ranked:1"]


def test_contents_changing_under_the_manifest_are_refused() -> None:
    with pytest.raises(CodecError):
        list(snapshot_fields(_manifest(), {"posts": INPUTS["posts"][:4]}, SHARED))


@pytest.mark.parametrize(
    "bad",
    [
        b"[]",
        b'{"epoch":"e","version":1,"term":1,"created_ms":0,"chunk_size":1}',
        b'{"epoch":"e","version":-1,"term":1,"created_ms":0,"chunk_size":1,"collections":[]}',
        b'{"epoch":1,"version":1,"term":1,"created_ms":0,"chunk_size":1,"collections":[]}',
        b'{"epoch":"e","version":1,"term":1,"created_ms":0,"chunk_size":1,'
        b'"collections":[["other","x",0,0]]}',
        b'{"epoch":"e","version":1,"term":1,"created_ms":0,"chunk_size":1,'
        b'"collections":[["input","x",0]]}',
    ],
)
def test_manifest_rejects(bad: bytes) -> None:
    with pytest.raises(CodecError):
        SnapshotManifest.decode(bad)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(CodecError):
        _manifest(chunk_size=0)


@given(
    sizes=st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 40), max_size=4),
    chunk_size=st.integers(1, 7),
)
def test_chunks_reassemble_every_collection(sizes: dict[str, int], chunk_size: int) -> None:
    shared: dict[str, Any] = {name: [(i, [name]) for i in range(n)] for name, n in sizes.items()}
    manifest = SnapshotManifest.plan(
        epoch="e", version=1, term=1, created_ms=0, chunk_size=chunk_size, inputs={}, shared=shared
    )
    fields = dict(snapshot_fields(manifest, {}, shared))
    for collection in manifest.part("shared"):
        rebuilt = [e for f in collection.fields() for e in decode_entries(fields[f])]
        assert rebuilt == shared[collection.name]
        assert all(len(decode_entries(fields[f])) <= chunk_size for f in collection.fields())
    assert SnapshotManifest.decode(manifest.encode()) == manifest
