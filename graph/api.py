"""The base classes user code derives from: Mapper, Reducer, LazyCompute, Resource."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from graph.claims import ClaimsAttribute

if TYPE_CHECKING:
    from graph.collections import EagerCollection
    from graph.context import Context
    from graph.nodes.lazy import LazyCollection
    from graph.values import Values


class Mapper(ABC):
    """Maps one entry of a collection to any number of (key, value) pairs.

    `map_entry` must not mutate the values it is given: they are the engine's own. It may take
    a third argument, `context` (graph.context.Context), as Skip's `mapEntry(key, values,
    context)` does: `def map_entry(self, key, values, context)` is given it.
    """

    @abstractmethod
    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]: ...


class Reducer(ABC):
    """Folds the values of each key into one accumulator, incrementally.

    `remove` may return None to mean "recompute this key from `initial`": the engine then
    folds `add` over the key's current values.

    `add` and `remove` must return a new accumulator, never mutate `acc` (nor `initial`): the
    engine keeps old accumulators to detect changes and to roll a failed tick back.
    """

    initial: Any = None

    @abstractmethod
    def add(self, acc: Any, value: Any) -> Any: ...

    def remove(self, acc: Any, value: Any) -> Any:
        return None


class LazyCompute(ABC):
    """Computes the values of a lazy collection at one key, on demand."""

    @abstractmethod
    def compute(
        self, self_collection: LazyCollection, key: Any, context: Context
    ) -> Iterable[Any]: ...


class Resource(ABC):
    """A parameterised live query. The constructor receives the client's JSON params and may
    raise to reject them; `instantiate` builds the resource's collection from the shared ones.

    With identity tokens configured (docs/security.md), a request for a resource needs a valid
    token unless the class says `public = True`. The verified claims of the request are
    `self.claims` in the constructor and `context.claims` in `instantiate` (empty with auth
    off, or for an anonymous request of a public resource); what is read of them decides which
    requests share an instance (graph/claims.py). Raise graph.ForbiddenError to refuse params
    the caller may not see (HTTP 403).
    """

    #: Whether requests without a token may read this resource when auth is on.
    public: ClassVar[bool] = False
    #: The claims of the request being built (graph/claims.py); read-only.
    claims = ClaimsAttribute()

    def __init__(self, params: Any) -> None:
        self.params = params

    @abstractmethod
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection: ...
