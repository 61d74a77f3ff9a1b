"""ClaimVariants: the instances of one (resource, params) that differ by the claims they read.

Most instances read no claims and are shared by every request with their params, held directly
in the registry's table as before. When a build reads claims (graph/claims.py), its instance
joins the variants of its (resource, params), indexed by the names it read and their values: a
request reuses the variant whose recorded values its own claims give, so one lookup per distinct
set of names read (usually one: `sub`) finds alice's instance among ten thousand users'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from graph.claims import ClaimReads, value_of

if TYPE_CHECKING:
    from graph.resources.instance import ResourceInstance

#: An instance's place in the registry: (resource, canonical params).
Key = tuple[str, bytes]
_Names = tuple[str, ...]
_Values = tuple[bytes, ...]


class ClaimVariants:
    __slots__ = ("_by_names",)

    def __init__(self) -> None:
        # names read -> their values -> the instances built with them (an ordered set: two
        # rebuilt instances may come to read the same, and each is removed on its own).
        self._by_names: dict[_Names, dict[_Values, dict[ResourceInstance, None]]] = {}

    def find(self, claims: Mapping[str, Any] | None) -> ResourceInstance | None:
        """An instance whose build read only what `claims` also give."""
        for names, by_values in self._by_names.items():
            found = by_values.get(tuple(value_of(claims, name) for name in names))
            if found:
                return next(iter(found))
        return None

    def add(self, inst: ResourceInstance, reads: ClaimReads) -> None:
        names, values = _split(reads)
        self._by_names.setdefault(names, {}).setdefault(values, {})[inst] = None

    def remove(self, inst: ResourceInstance, reads: ClaimReads) -> None:
        names, values = _split(reads)
        by_values = self._by_names.get(names)
        if by_values is None:
            return
        found = by_values.get(values)
        if found is None:
            return
        found.pop(inst, None)
        if not found:
            del by_values[values]
            if not by_values:
                del self._by_names[names]

    def __bool__(self) -> bool:
        return bool(self._by_names)

    def __iter__(self) -> Iterator[ResourceInstance]:
        for by_values in self._by_names.values():
            for found in by_values.values():
                yield from found


def index(live: dict[Key, ResourceInstance | ClaimVariants], inst: ResourceInstance) -> None:
    """Enter `inst` in the registry's table under its key and what it read of its claims."""
    key = (inst.resource, inst.canonical_params)
    entry = live.get(key)
    if entry is None and not inst.claim_reads:
        live[key] = inst
        return
    if isinstance(entry, ClaimVariants):
        variants = entry
    else:
        variants = live[key] = ClaimVariants()
        if entry is not None:
            variants.add(entry, entry.claim_reads)
    variants.add(inst, inst.claim_reads)


def unindex(
    live: dict[Key, ResourceInstance | ClaimVariants], inst: ResourceInstance, reads: ClaimReads
) -> None:
    """Remove `inst`, entered with `reads`, from the registry's table."""
    key = (inst.resource, inst.canonical_params)
    entry = live.get(key)
    if entry is inst:
        del live[key]
    elif isinstance(entry, ClaimVariants):
        entry.remove(inst, reads)
        if not entry:
            del live[key]


def _split(reads: ClaimReads) -> tuple[_Names, _Values]:
    return tuple(name for name, _ in reads), tuple(value for _, value in reads)


def reads_more(new: ClaimReads, old: ClaimReads) -> bool:
    """Whether `new` reads a claim name `old` did not."""
    before = {name for name, _ in old}
    return any(name not in before for name, _ in new)
