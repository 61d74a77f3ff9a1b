"""The SSE wire format: the encoder and the parser as tables of inputs and expected outputs."""

from __future__ import annotations

from typing import Any

import pytest

from broker import ConfigError
from broker.http.sse import (
    HEARTBEAT,
    SseMessage,
    SseParser,
    check_run_id,
    encode_event,
    format_event_id,
    new_run_id,
    parse_event_id,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("kind", "run", "version", "entries", "expected"),
    [
        ("init", "r1", 0, [], b"event: init\nid: r1/0\ndata: []\n\n"),
        (
            "init",
            "r1",
            7,
            [(1, [{"a": 1}]), ("k", ["x", "y"])],
            b'event: init\nid: r1/7\ndata: [[1,[{"a":1}]],["k",["x","y"]]]\n\n',
        ),
        (
            "update",
            "ab-12",
            42,
            [("gone", [])],
            b'event: update\nid: ab-12/42\ndata: [["gone",[]]]\n\n',
        ),
        (
            "update",
            "r",
            1,
            [([1, None, True], ["line\nbreak"])],
            b'event: update\nid: r/1\ndata: [[[1,null,true],["line\\nbreak"]]]\n\n',
        ),
        (
            "update",
            "r",
            2,
            [({"o": 1.5}, [2**70])],
            b'event: update\nid: r/2\ndata: [[{"o":1.5},[1180591620717411303424]]]\n\n',
        ),
        (
            "update",
            "r",
            3,
            [("é", ["ü"])],
            'event: update\nid: r/3\ndata: [["é",["ü"]]]\n\n'.encode(),
        ),
    ],
)
def test_encode_event(kind: Any, run: str, version: int, entries: Any, expected: bytes) -> None:
    assert encode_event(kind, run, version, entries) == expected


def test_heartbeat_is_an_empty_update_without_id() -> None:
    assert HEARTBEAT == b"event: update\ndata: []\n\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("r1/0", ("r1", 0)),
        ("r1/12345", ("r1", 12345)),
        ("a/b/3", ("a/b", 3)),
        (" r/5 ", ("r", 5)),
        ("r/", None),
        ("/5", None),
        ("r5", None),
        ("r/-1", None),
        ("r/1.5", None),
        ("r/x", None),
        ("r/\u0661", None),  # an Arabic-Indic digit: isdigit() but not an id
        ("", None),
    ],
)
def test_parse_event_id(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_event_id(value) == expected


def test_format_and_parse_round_trip() -> None:
    run = new_run_id()
    assert parse_event_id(format_event_id(run, 99)) == (run, 99)


@pytest.mark.parametrize("run", ["abc", "0123456789abcdef", "epoch-3", "a.b:c_d"])
def test_check_run_id_accepts(run: str) -> None:
    assert check_run_id(run) == run


@pytest.mark.parametrize("run", ["", "a b", "a/b", "a\nb", "x" * 65, "é"])
def test_check_run_id_rejects(run: str) -> None:
    with pytest.raises(ConfigError):
        check_run_id(run)


def test_new_run_ids_are_valid_and_distinct() -> None:
    runs = {new_run_id() for _ in range(100)}
    assert len(runs) == 100
    for run in runs:
        check_run_id(run)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["event: init", "id: r/1", "data: []", ""], [SseMessage("init", "[]", "r/1")]),
        (["event: update", "data: []", ""], [SseMessage("update", "[]", None)]),
        (["data: x", ""], [SseMessage("message", "x", None)]),
        (["data:x", ""], [SseMessage("message", "x", None)]),
        (["data:  two spaces", ""], [SseMessage("message", " two spaces", None)]),
        (["data: a", "data: b", ""], [SseMessage("message", "a\nb", None)]),
        ([": a comment", "data: a", ""], [SseMessage("message", "a", None)]),
        (["event: init", ""], []),  # no data: nothing dispatched
        (["id: bad\0id", "data: a", ""], [SseMessage("message", "a", None)]),
        (["retry: 100", "unknown: 1", "data: a", ""], [SseMessage("message", "a", None)]),
        (["data", ""], [SseMessage("message", "", None)]),
        (
            ["event: init", "data: 1", "", "event: update", "data: 2", ""],
            [SseMessage("init", "1"), SseMessage("update", "2")],
        ),
        ([""], []),
    ],
)
def test_parser(lines: list[str], expected: list[SseMessage]) -> None:
    parser = SseParser()
    got = [m for m in map(parser.feed, lines) if m is not None]
    assert got == expected


def test_parser_reads_what_the_encoder_writes() -> None:
    entries = [("k\nk", ["v: 1", {"x": "\r"}])]
    wire = encode_event("update", "run", 3, entries) + HEARTBEAT
    parser = SseParser()
    got = [m for m in map(parser.feed, wire.decode().split("\n")) if m is not None]
    assert got == [
        SseMessage("update", '[["k\\nk",["v: 1",{"x":"\\r"}]]]', "run/3"),
        SseMessage("update", "[]", None),
    ]
