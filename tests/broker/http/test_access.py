"""Access: where a token is taken from, and the rules of writes, reads and stream ownership —
with identity tokens off (the rules of before) and on."""

from __future__ import annotations

import logging

import pytest

from broker.http.access import ANONYMOUS, Access, Caller, cookie_value, query_value
from broker.http.errors import HttpError
from broker.http.identity import TokenRejectedError
from broker.http.redaction import REDACTED, RedactTokens, redact
from tests.support.tokens import hs_config, hs_token, writer

pytestmark = pytest.mark.timeout(10)

CONTROL = "control-token-0123456789"


def status(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except HttpError as err:
        return err.status
    return 200


async def test_with_auth_off_only_the_control_token_counts() -> None:
    access = Access(CONTROL)
    assert not access.enabled
    bearer = {"authorization": f"Bearer {hs_token()}"}
    assert await access.caller(bearer) == ANONYMOUS
    operator = await access.caller({"authorization": f"Bearer {CONTROL}"})
    assert operator.operator and operator.identity is None
    assert access.claims(operator) is None
    assert status(lambda: access.require_write(ANONYMOUS, "votes")) == 401
    assert status(lambda: access.require_write(operator, "votes")) == 200
    assert status(lambda: access.require_reader(ANONYMOUS, "top", public=False)) == 200
    assert status(lambda: access.require_stream(ANONYMOUS, "s", None)) == 200
    assert status(lambda: access.require_stream(ANONYMOUS, "s", None, deleting=True)) == 401
    # Without a control token, as before, everything is open.
    assert status(lambda: Access(None).require_write(ANONYMOUS, "votes")) == 200


async def test_where_the_identity_token_comes_from() -> None:
    access = Access(CONTROL, hs_config())
    alice, bob = hs_token("alice"), hs_token("bob")
    assert (await access.caller({"authorization": f"Bearer {alice}"})).subject == "alice"
    # The proxy's way: its control token, and the user's token beside it.
    forwarded = await access.caller(
        {"authorization": f"Bearer {CONTROL}", "x-skiff-user-token": bob}
    )
    assert forwarded.operator and forwarded.subject == "bob" and forwarded.token == bob
    assert bob not in repr(forwarded)
    cookie = {"cookie": f"theme=dark; skiff_token={alice}"}
    assert (await access.caller(cookie)).subject == "alice"
    assert (await access.caller(cookie, cookie=False)).identity is None
    query = f"x=1&access_token={alice}"
    assert (await access.caller({}, query)).identity is None
    assert (await access.caller({}, query, in_query=True)).subject == "alice"
    assert access.caller_now({}, query).subject == "alice"
    with pytest.raises(TokenRejectedError):
        await access.caller({"authorization": "Bearer not-a-token"})


async def test_writes_need_a_scope_or_the_control_token() -> None:
    access = Access(CONTROL, hs_config())
    may = await access.caller({"authorization": f"Bearer {writer('alice', 'upvotes')}"})
    every = await access.caller({"authorization": f"Bearer {writer('root', '*')}"})
    reader = await access.caller({"authorization": f"Bearer {hs_token('bob')}"})
    operator = await access.caller({"authorization": f"Bearer {CONTROL}"})
    assert status(lambda: access.require_write(may, "upvotes")) == 200
    assert status(lambda: access.require_write(may, "posts")) == 403
    assert status(lambda: access.require_write(every, "posts")) == 200
    assert status(lambda: access.require_write(reader, "upvotes")) == 403
    assert status(lambda: access.require_write(ANONYMOUS, "upvotes")) == 401
    assert status(lambda: access.require_write(operator, "upvotes")) == 200
    # A user's token beside the control token: the user's rules.
    both = Caller(True, reader.identity, "t")
    assert status(lambda: access.require_write(both, "upvotes")) == 403


async def test_reads_and_stream_ownership() -> None:
    access = Access(CONTROL, hs_config())
    alice = await access.caller({"authorization": f"Bearer {hs_token('alice')}"})
    bob = await access.caller({"authorization": f"Bearer {hs_token('bob')}"})
    operator = Caller(operator=True)
    assert status(lambda: access.require_reader(ANONYMOUS, "session", public=False)) == 401
    assert status(lambda: access.require_reader(operator, "session", public=False)) == 401
    assert status(lambda: access.require_reader(ANONYMOUS, "posts", public=True)) == 200
    assert status(lambda: access.require_reader(alice, "session", public=False)) == 200
    assert status(lambda: access.require_stream(alice, "s", "alice")) == 200
    assert status(lambda: access.require_stream(bob, "s", "alice")) == 404
    assert status(lambda: access.require_stream(bob, "s", "alice", deleting=True)) == 404
    assert status(lambda: access.require_stream(ANONYMOUS, "s", "alice")) == 401
    assert status(lambda: access.require_stream(operator, "s", "alice")) == 401
    assert status(lambda: access.require_stream(operator, "s", "alice", deleting=True)) == 200
    assert status(lambda: access.require_stream(bob, "s", None)) == 200
    anonymous = access.claims(ANONYMOUS)
    assert anonymous is not None and dict(anonymous) == {}
    assert (access.claims(alice) or {})["sub"] == "alice"


def test_cookie_and_query_parsing() -> None:
    assert cookie_value('a=1; skiff_token="t.o.k"; b=2', "skiff_token") == "t.o.k"
    assert cookie_value("skiff_token=", "skiff_token") is None
    assert query_value("access_token=a%2Eb&x=1", "access_token") == "a.b"
    assert query_value("x=1", "access_token") is None


def test_access_tokens_are_scrubbed_from_log_records() -> None:
    token = hs_token("alice")
    line = f'127.0.0.1:5 - "GET /v1/streams/abc?x=1&access_token={token}&y=2 HTTP/1.1" 200'
    assert token not in redact(line) and f"access_token={REDACTED}&y=2" in redact(line)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', ("ip", "GET",
        f"/v1/streams/x?access_token={token}"), None,
    )  # fmt: skip
    assert RedactTokens().filter(record)
    assert token not in record.getMessage()
    assert redact("no token here") == "no token here"
