"""The PostgreSQL adapter's pure parts, as tables: params validation (Skip's validateKeyParam),
key bounds, object names, quoting, notification payloads, rows as JSON."""

from __future__ import annotations

import re
from typing import Any

import pytest

from broker.external.postgres_params import (
    InvalidPostgresKeyError,
    InvalidPostgresParamsError,
    PostgresParams,
)
from broker.external.postgres_rows import entries, json_value
from broker.external.postgres_sql import (
    ObjectNames,
    install_sql,
    object_base_name,
    parse_payload,
    quote_ident,
)

pytestmark = pytest.mark.timeout(10)

KEY = {"col": "id", "type": "SERIAL"}


@pytest.mark.parametrize(
    ("resource", "params", "message"),
    [
        ("t", None, "no key specified"),
        ("t", {}, "no key specified"),
        ("t", {"key": "id"}, "no key specified"),
        ("t", {"key": {"type": "TEXT"}}, "no key column"),
        ("t", {"key": {"col": 3, "type": "TEXT"}}, "no key column"),
        ("t", {"key": {"col": "id"}}, "no key type"),
        ("t", {"key": {"col": "id", "type": "UUID"}}, "unsupported PostgreSQL key type 'UUID'"),
        ("t", {"key": {"col": "id", "type": "serial"}}, "unsupported"),
        ("t", {"key": KEY, "syncHistoricData": "no"}, "syncHistoricData must be a boolean"),
        ("t", {"key": KEY, "sync": False}, "unknown params ['sync']"),
        ("", {"key": KEY}, "resource (a table name) must be a non-empty string"),
        ("a\x00b", {"key": KEY}, "NUL"),
        ("t" * 64, {"key": KEY}, "63-byte"),
        ("t", {"key": {"col": "é" * 32, "type": "TEXT"}}, "63-byte"),
    ],
)
def test_invalid_params_are_refused(resource: str, params: Any, message: str) -> None:
    with pytest.raises(InvalidPostgresParamsError, match=re.escape(message)):
        PostgresParams.from_json(resource, params)


def test_valid_params() -> None:
    parsed = PostgresParams.from_json("posts", {"key": {"col": "author", "type": "TEXT"}})
    assert (parsed.table, parsed.key.col, parsed.key.is_text, parsed.sync_historic) == (
        "posts",
        "author",
        True,
        True,
    )
    later = PostgresParams.from_json("posts", {"key": KEY, "syncHistoricData": False})
    assert later.sync_historic is False


@pytest.mark.parametrize(
    ("key_type", "text", "expected"),
    [
        ("TEXT", "12", "12"),
        ("TEXT", "", ""),
        ("INT", "-2147483648", -2147483648),
        ("INTEGER", "2147483647", 2147483647),
        ("INT4", "2147483648", None),
        ("SMALLINT", "-32768", -32768),
        ("INT2", "32768", None),
        ("BIGINT", "-9223372036854775808", -(2**63)),
        ("INT8", "9223372036854775808", None),
        ("SERIAL", "1", 1),
        ("SERIAL4", "0", None),
        ("SERIAL", "2147483648", None),
        ("SMALLSERIAL", "32767", 32767),
        ("SERIAL2", "32768", None),
        ("BIGSERIAL", "9223372036854775807", 2**63 - 1),
        ("SERIAL8", "-1", None),
        ("INT", "1.5", None),
        ("INT", "1e3", None),
        ("INT", " 1", None),
    ],
)
def test_keys_are_parsed_within_their_types_bounds(
    key_type: str, text: str, expected: object
) -> None:
    key = PostgresParams.from_json("t", {"key": {"col": "k", "type": key_type}}).key
    if expected is None:
        with pytest.raises(InvalidPostgresKeyError):
            key.parse(text)
    else:
        assert key.parse(text) == expected


@pytest.mark.parametrize(
    "instance",
    [
        "svc/posts/0123456789abcdef",
        "A" * 500,
        "é/ü/日本",
        "",
        'x"; DROP TABLE users; --',
    ],
)
def test_object_names_are_bounded_plain_identifiers(instance: str) -> None:
    name = object_base_name(instance, "salt:1")
    assert re.fullmatch(r"skiff_[a-z0-9_]+", name)
    assert len((name + "_t").encode()) <= 63
    # Another salt (another service, or the next subscription of the instance): another name.
    assert object_base_name(instance, "salt:2") != name
    assert object_base_name(instance, "salt:1") == name


def test_names_keep_a_readable_part_of_the_instance() -> None:
    assert object_base_name("svc/posts/ab12", "s").startswith("skiff_svc_posts_ab12_")


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("posts", '"posts"'), ('we"ird', '"we""ird"'), ("a b", '"a b"'), ("$x$", '"$x$"')],
)
def test_identifiers_are_always_quoted(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


def test_the_function_body_cannot_be_closed_by_a_column_name() -> None:
    names = ObjectNames("public", "t", "skiff_t_0011")
    sql = install_sql(names, "a$skiff$b", 7, 10.0)
    # The dollar-quote tag is one the body does not contain.
    assert "AS $skiff1$" in sql
    assert sql.count("$skiff1$") == 2


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ("k42", ("key", "42")),
        ("k", ("key", "")),
        ("kk'x", ("key", "k'x")),
        ("*", ("all", "")),
        ("h" + "a" * 64, ("digest", "a" * 64)),
        ("h123", None),
        ("", None),
        ("42", None),
    ],
)
def test_payloads(payload: str, parsed: object) -> None:
    assert parse_payload(payload) == parsed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (2**63 - 1, 2**63 - 1),
        (1.5, 1.5),
        ("2024-01-02 01:04:05.5+00", "2024-01-02 01:04:05.5+00"),
        ({"a": [1]}, {"a": [1]}),
        ([1, [2, None]], [1, [2, None]]),
        ((1, 2), [1, 2]),
        (b"\x01\xff", "\\x01ff"),
    ],
)
def test_json_values(value: object, expected: object) -> None:
    assert json_value(value) == expected


def test_uuid_and_others_become_their_text() -> None:
    import ipaddress
    import uuid

    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert json_value(value) == "12345678-1234-5678-1234-567812345678"
    assert json_value(ipaddress.ip_address("10.0.0.1")) == "10.0.0.1"


def test_entries_name_deleted_keys_with_no_rows() -> None:
    assert entries({1: [{"id": 1}]}, [1, 2]) == [(1, [{"id": 1}]), (2, [])]


def test_triggers_are_replaced_in_place_from_postgresql_14() -> None:
    names = ObjectNames("public", "t", "skiff_t_0011")
    replacing = install_sql(names, "id", 7, 10.0)
    assert 'CREATE OR REPLACE TRIGGER "skiff_t_0011" AFTER INSERT' in replacing
    assert "DROP TRIGGER" not in replacing
    older = install_sql(names, "id", 7, 10.0, or_replace=False)
    assert 'DROP TRIGGER IF EXISTS "skiff_t_0011_t" ON "public"."t";' in older
    assert "OR REPLACE TRIGGER" not in older
    assert 'COMMENT ON FUNCTION "public"."skiff_t_0011"() IS \'skiff-postgres owner 7\'' in older


def test_the_postgres_names_are_public() -> None:
    import broker.external
    from broker.errors import BrokerError
    from graph.external import ExternalService

    names = {
        "InvalidPostgresParamsError",
        "PostgresAdapterError",
        "PostgresConfig",
        "PostgresExternalService",
        "PostgresSubscribeError",
        "PostgresUnavailableError",
    }
    assert names <= set(broker.external.__all__)
    for name in names:
        value = getattr(broker.external, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, BrokerError), name
    assert issubclass(broker.external.PostgresExternalService, ExternalService)
