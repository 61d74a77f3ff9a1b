"""The exceptions of the graph package; all derive from GraphError."""

from __future__ import annotations


class GraphError(Exception):
    """Root of every error the engine raises."""


class NotJsonError(GraphError):
    """A key or value is not JSON (or not a valid key)."""


class InvalidWriteError(GraphError):
    """A write batch is malformed; nothing of it was applied."""


class UnknownCollectionError(GraphError, KeyError):
    """A write or read names a collection the service does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown collection"


class UnknownResourceError(GraphError, KeyError):
    """A resource name the service does not declare."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown resource"


class ParamsRejectedError(GraphError):
    """A resource refused its parameters (its constructor or instantiate raised)."""


class ForbiddenError(GraphError):
    """A resource refused the request for the identity it came with (HTTP 403): raised by a
    resource's constructor or `instantiate` after reading `claims`, e.g. for a session that is
    not the caller's. Unlike other exceptions of user code it is not turned into
    ParamsRejectedError."""


class UserCodeError(GraphError):
    """User code (a mapper, reducer or lazy compute) raised; the tick was rolled back."""


class KeyLookupError(GraphError, LookupError):
    """`get_unique` found no value or several values and no default was given."""


class CycleError(UserCodeError):
    """A lazy collection's computation depends on itself at the same key."""


class PatternError(GraphError, ValueError):
    """A json_extract pattern is malformed, or asks what Skip itself cannot evaluate.

    `position` is the 0-based index in `pattern` of the character the error was found at
    (`len(pattern)` when the pattern ended too early).
    """

    def __init__(self, message: str, pattern: str, position: int) -> None:
        super().__init__(f"json_extract pattern {pattern!r}, at position {position}: {message}")
        self.pattern = pattern
        self.position = position
