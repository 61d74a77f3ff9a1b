"""The character reader shared by json_extract's pattern and type parsers (Skip's SKJSON Lexer).

Skip's lexer drops blanks everywhere, even inside names (`{a b: x}` names the field `ab`), and
pushes back one character at a time; the parsers are written against exactly that, so it is
reproduced rather than replaced by a tokenizer.
"""

from __future__ import annotations

from typing import Final

from graph.errors import PatternError

_BLANKS: Final = frozenset(" \t\n")

# The characters that end a keyword (a type name such as `int`, or one step of a dotted field
# name). Skip's list: every ASCII punctuation character, `_` and `-` included.
KEYWORD_ENDS: Final = frozenset(" \t\n!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


class Lexer:
    """Reads `text` one non-blank character at a time, with push-back.

    A lexer over a piece of a pattern (a field name, parsed again as a path) reports its
    errors at `offset` in `source`, the whole pattern, since its own positions mean nothing to
    the caller.
    """

    __slots__ = ("_next", "_offset", "_pushed", "_source", "position", "text")

    def __init__(self, text: str, *, source: str | None = None, offset: int = 0) -> None:
        self.text = text
        self._source = source
        self._offset = offset
        self._next = 0
        self._pushed: list[tuple[str, int]] = []
        #: Index of the character last read (len(text) once the text is exhausted).
        self.position = 0

    def next(self) -> str | None:
        if self._pushed:
            char, self.position = self._pushed.pop()
            return char
        text = self.text
        while self._next < len(text):
            char = text[self._next]
            self._next += 1
            if char not in _BLANKS:
                self.position = self._next - 1
                return char
        self.position = len(text)
        return None

    def back(self, char: str) -> None:
        self._pushed.append((char, self.position))

    def expect(self, char: str) -> None:
        if self.next() != char:
            raise self.error(f"expected {char!r}")

    def error(self, message: str, position: int | None = None) -> PatternError:
        if self._source is not None:
            return PatternError(message, self._source, self._offset)
        return PatternError(message, self.text, self.position if position is None else position)

    def string(self) -> str:
        """The rest of a quoted string whose opening quote was just read.

        As in Skip, the characters are taken as they are (blanks kept), an escaped character
        keeps its backslash, and a missing closing quote ends the string at the end of the text.
        """
        chars: list[str] = []
        text = self.text
        while self._next < len(text):
            char = text[self._next]
            self._next += 1
            if char == '"':
                return "".join(chars)
            chars.append(char)
            if char == "\\":
                escaped = self.next()
                if escaped is None:
                    raise self.error("unterminated string")
                chars.append(escaped)
        self.position = len(text)
        return "".join(chars)

    def keyword(self) -> str:
        """Characters up to the next punctuation (which is left unread); may be empty."""
        chars: list[str] = []
        while True:
            char = self.next()
            if char is None:
                return "".join(chars)
            if char in KEYWORD_ENDS:
                self.back(char)
                return "".join(chars)
            chars.append(char)
