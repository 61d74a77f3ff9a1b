"""Routing decisions, as tables over Cluster views (no I/O)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from broker.store.node_record import NodeRecord
from proxy import Cluster, NoNodeError
from proxy.cluster.routing import (
    PlacementLedger,
    choose_reader,
    choose_rehome_host,
    choose_stream_host,
    choose_writer,
    find,
    serving,
    stream_hosts,
)

pytestmark = pytest.mark.timeout(10)


def node(node_id: str, **fields: Any) -> NodeRecord:
    base: dict[str, Any] = {
        "role": "follower", "epoch": "e1", "applied": 10, "ts_ms": 1_000, "started_ms": 1,
        "ready": True, "url": f"http://{node_id}:8080",
    }  # fmt: skip
    return NodeRecord(node_id=node_id, **{**base, **fields})


def cluster(*nodes: NodeRecord, holder: str | None = None) -> Cluster:
    return Cluster({n.node_id: n for n in nodes}, holder)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (node("f"), True),
        (node("l", role="leader"), True),
        (node("c", role="candidate"), False),
        (node("f", ready=False), False),
        (node("f", draining=True), False),
        (node("f", url=None), False),
        (node("f/1"), False),  # cannot appear in a stream id
    ],
)
def test_serving(record: NodeRecord, expected: bool) -> None:
    assert serving(record) is expected


def test_followers_host_streams_and_the_leader_only_when_alone() -> None:
    lead = node("lead", role="leader")
    view = cluster(lead, node("f-0"), node("f-1", draining=True), node("c", role="candidate"))
    assert [n.node_id for n in stream_hosts(view)] == ["f-0"]
    assert [n.node_id for n in stream_hosts(cluster(lead, node("f-1", ready=False)))] == ["lead"]
    assert stream_hosts(cluster(node("c", role="candidate"))) == []


def test_new_stream_goes_to_its_instance_host_when_it_has_room() -> None:
    view = cluster(node("f-0", streams=50), node("f-1", streams=1), node("f-2", streams=9))
    assert choose_stream_host(view, preferred="f-0").node_id == "f-0"
    full = cluster(node("f-0", streams=50, capacity=50), node("f-1", streams=1))
    assert choose_stream_host(full, preferred="f-0").node_id == "f-1"
    # A hint naming a node that is gone or draining is ignored.
    assert choose_stream_host(view, preferred="gone").node_id == "f-1"


def test_new_stream_goes_to_the_least_loaded() -> None:
    view = cluster(node("f-0", streams=3), node("f-1", streams=2), node("f-2", streams=7))
    assert choose_stream_host(view).node_id == "f-1"
    assert choose_stream_host(view, exclude={"f-1"}).node_id == "f-0"


def test_ties_are_spread_at_random() -> None:
    view = cluster(*(node(f"f-{i}") for i in range(4)))
    rng = random.Random(7)
    picks = Counter(choose_stream_host(view, rng=rng).node_id for _ in range(400))
    assert set(picks) == {"f-0", "f-1", "f-2", "f-3"}


def test_ledger_counts_placements_the_heartbeat_has_not_reported() -> None:
    ledger = PlacementLedger()
    now = time.time_ns() // 1_000_000
    f0, f1 = node("f-0", streams=0, ts_ms=now - 500), node("f-1", streams=1, ts_ms=now - 500)
    for _ in range(3):
        ledger.add("f-0", now_ms=now - 100)
    ledger.add("f-1", now_ms=now - 600)  # before f-1's last heartbeat: already in its count
    assert ledger.pending(f0, now_ms=now) == 3
    assert ledger.pending(f1, now_ms=now) == 0
    assert choose_stream_host(cluster(f0, f1), ledger=ledger).node_id == "f-1"
    # Placements older than the horizon are forgotten.
    assert ledger.pending(node("f-0", ts_ms=0), now_ms=now + 60_000) == 0


def test_full_cluster_refuses_new_streams() -> None:
    view = cluster(node("f-0", streams=2, capacity=2))
    with pytest.raises(NoNodeError, match="capacity"):
        choose_stream_host(view)
    with pytest.raises(NoNodeError, match="no ready follower"):
        choose_stream_host(cluster(node("f-0", draining=True)))


def test_rehome_prefers_a_caught_up_host_and_never_refuses_for_capacity() -> None:
    view = cluster(
        node("dead"),
        node("behind", applied=5, streams=0),
        node("ahead", applied=12, streams=40),
        node("other-epoch", epoch="e0", applied=99, streams=0),
    )
    chosen = choose_rehome_host(view, exclude={"dead"}, since=("e1", 10))
    assert chosen.node_id == "ahead"
    # A client of an older epoch gets an init anywhere: least loaded.
    assert choose_rehome_host(view, exclude={"dead"}, since=("e-old", 3)).streams == 0
    full = cluster(node("f-0", streams=9, capacity=9))
    assert choose_rehome_host(full, exclude=()).node_id == "f-0"
    with pytest.raises(NoNodeError):
        choose_rehome_host(cluster(node("dead")), exclude={"dead"})


def test_reads_go_to_any_serving_follower() -> None:
    view = cluster(node("lead", role="leader"), node("f-0"), node("f-1", ready=False))
    assert {choose_reader(view).node_id for _ in range(50)} == {"f-0"}
    with pytest.raises(NoNodeError):
        choose_reader(view, exclude={"f-0", "lead"})


def test_writes_go_to_the_lease_holder() -> None:
    lead = node("lead-1", role="leader")
    view = cluster(node("lead-0", role="candidate"), lead, holder="lead-1/4242-abcdef")
    assert view.leader_id == "lead-1"
    assert choose_writer(view) == lead
    with pytest.raises(NoNodeError):
        choose_writer(cluster(lead))  # no lease
    with pytest.raises(NoNodeError):
        choose_writer(cluster(node("f-0"), holder="lead-9/1-a"))  # holder not a member


def test_find_only_returns_serving_members() -> None:
    view = cluster(node("f-0"), node("f-1", draining=True))
    assert find(view, "f-0") is not None
    assert find(view, "f-1") is None
    assert find(view, "nope") is None
