"""Built-in reducers."""

from __future__ import annotations

from typing import Any

from graph.api import Reducer


class Count(Reducer):
    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        return acc + 1

    def remove(self, acc: Any, value: Any) -> Any:
        return acc - 1


class Sum(Reducer):
    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        return acc + value

    def remove(self, acc: Any, value: Any) -> Any:
        return acc - value


class Min(Reducer):
    initial = None

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is None or value < acc else acc

    def remove(self, acc: Any, value: Any) -> Any:
        # Removing the current minimum leaves no way to know the next one: recompute.
        return None if value <= acc else acc


class Max(Reducer):
    initial = None

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is None or value > acc else acc

    def remove(self, acc: Any, value: Any) -> Any:
        return None if value >= acc else acc
