"""IntervalIndex: which of many inclusive ranges contain a point (a stabbing query).

A treap — a binary search tree kept balanced by random priorities — ordered by (low, uid),
where every node also holds the largest `high` of its subtree, so that a query skips each
subtree whose ranges all end before the point and each right subtree that starts after it.
Adding or removing a range is O(log n) expected; a query that finds m ranges visits the search
path and the paths down to those m, O((1 + m) log n) expected.

(intervaltree on PyPI was considered: its point query scans every stored interval that spans
the center of each node it visits, so a query can cost O(n) while finding nothing.)
"""

from __future__ import annotations

import random
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Priorities only need to be independent of the keys; a fixed seed keeps runs reproducible.
_priorities = random.Random(0x5EED)


class _Span(Generic[T]):
    __slots__ = ("high", "item", "key", "left", "prio", "right", "top")

    def __init__(self, low: Any, uid: int, high: Any, item: T) -> None:
        self.key = (low, uid)
        self.high = high
        self.top = high  # the largest high in this subtree
        self.item = item
        self.prio = _priorities.random()
        self.left: _Span[T] | None = None
        self.right: _Span[T] | None = None


def _fix(node: _Span[T]) -> None:
    top = node.high
    left, right = node.left, node.right
    if left is not None and left.top > top:
        top = left.top
    if right is not None and right.top > top:
        top = right.top
    node.top = top


def _split(node: _Span[T] | None, key: Any) -> tuple[_Span[T] | None, _Span[T] | None]:
    """(the spans before `key`, the others)."""
    if node is None:
        return None, None
    if node.key < key:
        before, after = _split(node.right, key)
        node.right = before
        _fix(node)
        return node, after
    before, after = _split(node.left, key)
    node.left = after
    _fix(node)
    return before, node


def _merge(a: _Span[T] | None, b: _Span[T] | None) -> _Span[T] | None:
    """Join two trees, every key of `a` before every key of `b`."""
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        a.right = _merge(a.right, b)
        _fix(a)
        return a
    b.left = _merge(a, b.left)
    _fix(b)
    return b


def _insert(node: _Span[T] | None, new: _Span[T]) -> _Span[T]:
    if node is None:
        return new
    if new.prio > node.prio:
        new.left, new.right = _split(node, new.key)
        _fix(new)
        return new
    if new.key < node.key:
        node.left = _insert(node.left, new)
    else:
        node.right = _insert(node.right, new)
    if new.top > node.top:
        node.top = new.top
    return node


def _remove(node: _Span[T] | None, key: Any) -> _Span[T] | None:
    if node is None:
        raise KeyError(key)
    if key == node.key:
        return _merge(node.left, node.right)
    if key < node.key:
        node.left = _remove(node.left, key)
    else:
        node.right = _remove(node.right, key)
    _fix(node)
    return node


class IntervalIndex(Generic[T]):
    """Inclusive ranges [low, high] of mutually comparable bounds, each with an item; a range
    is named by (low, uid), which must be unique."""

    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root: _Span[T] | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, low: Any, high: Any, uid: int, item: T) -> None:
        self._root = _insert(self._root, _Span(low, uid, high, item))
        self._size += 1

    def remove(self, low: Any, uid: int) -> None:
        """Remove the range named (low, uid); KeyError if there is none."""
        self._root = _remove(self._root, (low, uid))
        self._size -= 1

    def stab(self, point: Any) -> list[T]:
        """The items of every range with low <= point <= high."""
        found: list[T] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node is None or node.top < point:
                continue
            stack.append(node.left)
            if node.key[0] <= point:
                if point <= node.high:
                    found.append(node.item)
                stack.append(node.right)
        return found
