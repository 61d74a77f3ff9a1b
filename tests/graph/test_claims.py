"""Claims in the engine: a resource sees the verified claims of the request building it, and
instances are shared only by requests whose claims give the same values of what the build read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from graph import (
    Context,
    EagerCollection,
    Engine,
    ForbiddenError,
    Mapper,
    ParamsRejectedError,
    Resource,
    Service,
    Values,
)
from graph.claims import TrackedClaims, current_claims, matches

pytestmark = pytest.mark.timeout(10)

ALICE = {"sub": "alice", "exp": 100, "role": "user"}
ALICE_LATER = {"sub": "alice", "exp": 200, "role": "user"}
BOB = {"sub": "bob", "exp": 100, "role": "user"}


class OwnedBy(Mapper):
    def __init__(self, user: Any) -> None:
        self.user = user

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for value in values:
            if value.get("owner") == self.user:
                yield key, value


class Everything(Resource):
    """Reads no claims: one instance for everybody."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].take(100)


class Mine(Resource):
    """The caller's documents, from the token's `sub`, not from params."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].map(OwnedBy, context.claims.get("sub"))


class Checked(Resource):
    """Refuses, in the constructor, a `user` param that is not the caller."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if self.claims.get("sub") != params.get("user"):
            raise ForbiddenError("not your documents")

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].map(OwnedBy, self.params["user"])


class Gated(Resource):
    """Refuses in instantiate, after reading a shared collection."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        if context.claims.get("sub") not in collections["admins"].get_array("all"):
            raise ForbiddenError("admins only")
        return collections["docs"].take(100)


class ReadsWhenFlagged(Resource):
    """Reads `sub` only while the shared flag is set: a rebuild may read more than the first
    build did."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        if collections["admins"].get_array("flag"):
            return collections["docs"].map(OwnedBy, context.claims.get("sub"))
        return collections["docs"].take(100)


class Listing(Resource):
    """Iterates over the claims: depends on all of them."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        self.names = sorted(context.claims)
        return collections["docs"].take(1)


class AssignsClaims(Resource):
    """Older code may have an attribute of its own named `claims`."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.claims = ["mine"]  # type: ignore[assignment]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].take(len(self.claims))


DOCS = [
    ("d1", [{"owner": "alice", "text": "a"}]),
    ("d2", [{"owner": "bob", "text": "b"}]),
    ("d3", [{"owner": "alice", "text": "c"}]),
]


def engine() -> Engine:
    def create(inputs: Mapping[str, EagerCollection], context: Context) -> dict[str, Any]:
        return dict(inputs)

    return Engine.for_service(
        Service(
            inputs={"docs": DOCS, "admins": [("all", ["root"])]},
            resources={
                "everything": Everything,
                "mine": Mine,
                "checked": Checked,
                "gated": Gated,
                "flagged": ReadsWhenFlagged,
                "listing": Listing,
                "assigns": AssignsClaims,
            },
            create_graph=create,
        )
    )


def keys(inst: Any) -> list[Any]:
    return [key for key, _ in inst.entries()]


def test_an_instance_that_reads_no_claims_is_shared_by_everybody() -> None:
    e = engine()
    a = e.instantiate("everything", {}, ALICE)
    b = e.instantiate("everything", {}, BOB)
    anonymous = e.instantiate("everything", {}, {})
    auth_off = e.instantiate("everything", {})
    assert a is b is anonymous is auth_off
    assert a.claim_reads == () and e.instance_count == 1


def test_an_instance_built_from_sub_is_the_callers_only() -> None:
    e = engine()
    alice = e.instantiate("mine", {}, ALICE)
    bob = e.instantiate("mine", {}, BOB)
    assert alice is not bob
    assert keys(alice) == ["d1", "d3"] and keys(bob) == ["d2"]
    # Same sub, other claims it did not read (a refreshed token): shared.
    assert e.instantiate("mine", {}, ALICE_LATER) is alice
    assert alice.claim_reads == (("sub", b'"alice"'),)
    assert e.instance_count == 2
    # Anonymous: its own instance, keyed by the absence of sub.
    nobody = e.instantiate("mine", {}, {})
    assert nobody not in (alice, bob) and keys(nobody) == []


def test_releasing_one_variant_keeps_the_others() -> None:
    e = engine()
    alice = e.instantiate("mine", {}, ALICE)
    bob = e.instantiate("mine", {}, BOB)
    e.release(alice)
    assert e.instance_count == 1 and e.instances() == [bob]
    assert e.instantiate("mine", {}, BOB) is bob
    again = e.instantiate("mine", {}, ALICE)
    assert again is not alice and keys(again) == ["d1", "d3"]
    e.release(bob)
    e.release(bob)
    e.release(again)
    assert e.instance_count == 0 and e.instances() == []


def test_claims_are_in_the_constructors_reach_and_forbidden_passes_through() -> None:
    e = engine()
    inst = e.instantiate("checked", {"user": "alice"}, ALICE)
    assert keys(inst) == ["d1", "d3"]
    with pytest.raises(ForbiddenError, match="not your documents"):
        e.instantiate("checked", {"user": "alice"}, BOB)
    with pytest.raises(ForbiddenError):
        e.instantiate("gated", {}, ALICE)
    assert keys(e.instantiate("gated", {}, {"sub": "root"})) == ["d1", "d2", "d3"]
    # Nothing of the refused builds is left behind.
    assert e.instance_count == 2


def test_claims_are_empty_outside_a_build_and_with_auth_off() -> None:
    e = engine()
    assert dict(current_claims()) == {}
    assert dict(e.context.claims) == {}
    assert dict(Everything({}).claims) == {}
    with pytest.raises(ForbiddenError):
        e.instantiate("checked", {"user": "alice"})  # auth off: no sub, the resource refuses
    with pytest.raises(ParamsRejectedError):
        e.instantiate("checked", [])  # any other exception is a rejection of the params
    assert keys(e.instantiate("mine", {})) == []


def test_a_rebuild_runs_with_the_claims_the_instance_was_built_with() -> None:
    e = engine()
    alice = e.instantiate("mine", {}, ALICE)
    result = e.apply({"docs": [("d4", [{"owner": "alice", "text": "d"}])]})
    assert result.instances[alice.id] == [("d4", [{"owner": "alice", "text": "d"}])]
    # A read of a shared collection in instantiate rebuilds it, still as alice.
    gated = e.instantiate("gated", {}, {"sub": "root"})
    e.apply({"admins": [("all", ["root", "alice"])]})
    assert gated.claims == {"sub": "root"} and keys(gated) == ["d1", "d2", "d3", "d4"]


def test_a_shared_instance_whose_rebuild_reads_a_new_claim_fails() -> None:
    e = engine()
    first = e.instantiate("flagged", {}, ALICE)
    assert e.instantiate("flagged", {}, BOB) is first and first.mixed
    result = e.apply({"admins": [("flag", [True])]})
    # Rebuilt as alice it would show bob alice's documents: it fails instead, and its readers
    # get instances of their own.
    assert first.id in result.failed


def test_an_unshared_instance_whose_rebuild_reads_a_new_claim_is_keyed_anew() -> None:
    e = engine()
    first = e.instantiate("flagged", {}, ALICE)
    assert not first.mixed
    result = e.apply({"admins": [("flag", [True])]})
    assert first.id not in result.failed
    assert first.claim_reads == (("sub", b'"alice"'),) and keys(first) == ["d1", "d3"]
    bob = e.instantiate("flagged", {}, BOB)
    assert bob is not first and keys(bob) == ["d2"]
    assert e.instantiate("flagged", {}, ALICE_LATER) is first


def test_an_aborted_rebuild_puts_the_claim_reads_back() -> None:
    e = engine()
    first = e.instantiate("flagged", {}, ALICE)
    pending = e.begin({"admins": [("flag", [True])]})
    assert first.claim_reads == (("sub", b'"alice"'),)
    pending.abort()
    assert first.claim_reads == ()
    # Shared again by anybody, as before the tick.
    assert e.instantiate("flagged", {}, BOB) is first


def test_iterating_the_claims_reads_them_all() -> None:
    e = engine()
    inst = e.instantiate("listing", {}, ALICE)
    assert e.instantiate("listing", {}, ALICE_LATER) is not inst
    assert e.instantiate("listing", {}, dict(ALICE)) is inst


def test_a_resource_may_have_its_own_claims_attribute() -> None:
    e = engine()
    assert len(e.instantiate("assigns", {}, ALICE)) == 1


def test_tracked_claims_record_absence_and_presence() -> None:
    view = TrackedClaims({"sub": "alice", "skiff": {"write": ["a"]}})
    assert view.get("missing") is None
    assert "sub" in view
    assert view["skiff"] == {"write": ["a"]}
    reads = view.reads()
    assert reads == (("missing", b""), ("skiff", b'{"write":["a"]}'), ("sub", b'"alice"'))
    assert matches(reads, {"sub": "alice", "skiff": {"write": ["a"]}, "exp": 1})
    assert not matches(reads, {"sub": "alice", "skiff": {"write": ["a"]}, "missing": 0})
    assert not matches(reads, None)
