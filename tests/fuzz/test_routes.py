"""Property-based fuzzing of every route of a leader, a follower and the proxy (real processes
over a private Valkey): malformed JSON, wrong types, huge and deeply nested bodies, unicode
edge cases, unknown names, invalid stream ids, Last-Event-IDs from other runs.

Properties: no 5xx (503 aside: the proxy's "no node" answers are not expected here), every
process stays alive, and a rejected request (4xx) changes nothing: the leader's and follower's
`/v1/admin/state` (epoch, version, checksums) are the same before and after.

`FUZZ_EXAMPLES` (default 25 per test; 1000 for a deep run) sets the depth; the run is
derandomized (reproducible).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import Cluster, Proc

pytestmark = pytest.mark.timeout(600)

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class Background:
    """An event loop in a thread that owns the cluster, so the tests themselves stay sync (as
    hypothesis wants them)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    bg = Background()
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    redis = EmbeddedRedis(appendonly=False)
    cluster = Cluster("", tmp, env={"SKIFF_CONTROL_TOKEN": TOKEN})

    async def start() -> dict[str, Proc]:
        await redis.start()
        cluster.redis_url = redis.url
        return {
            "leader": await cluster.leader("L1"),
            "follower": await cluster.follower("F1"),
            "proxy": await cluster.proxy("proxy"),
        }

    try:
        procs = bg.run(start())
        yield procs
    finally:

        async def stop() -> None:
            await cluster.close(show_logs=True)
            await redis.close()

        bg.run(stop())
        bg.close()


# -- strategies ---------------------------------------------------------------------------------
UNICODE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=40
) | st.sampled_from(
    ["", "\u0000", "\ufeff", "\u202e", "é", "e\u0301", "\U0001f600", "\uffff", "a" * 300]
)
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | UNICODE
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(UNICODE, inner, max_size=5),
    max_leaves=20,
)


def _raw(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BODY = st.one_of(
    JSON.map(_raw),
    st.binary(max_size=64),  # malformed JSON, invalid UTF-8
    st.sampled_from(
        [b"", b"{", b"[[", b"NaN", b"[Infinity]", b'"\\ud800"', b"\xff\xfe", b"1e999999", b"-0"]
    ),
    st.integers(min_value=100, max_value=20000).map(_nested),
    st.just(b"[" + b'["k",[1]],' * 120000 + b'["k",[1]]]'),  # > 1 MiB: 413
    st.lists(st.tuples(JSON, st.lists(JSON, max_size=3)).map(list), max_size=4).map(
        _raw
    ),  # PATCH-shaped
)
NAME = st.sampled_from(["votes", "posts", "top", "post", "ranked", "counts"]) | UNICODE.filter(
    lambda s: "/" not in s and s not in {"", ".", ".."}
)
STREAM_ID = st.sampled_from(
    ["", "x", "L1." + "A" * 22, "../../etc/passwd", "%00", "F1.zzzzzzzzzzzzzzzzzzzzzz"]
) | st.text(alphabet="ABCDEFabcdef0123456789._-~", max_size=60)
EVENT_ID = st.one_of(
    st.none(),
    st.sampled_from(["", "other-run/5", "x/-1", "/", "run/99999999999999999999", "a/b/c", "\x7f"]),
    # Header values HTTP allows (httpx refuses to send surrounding whitespace).
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).filter(
        lambda s: s == s.strip()
    ),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.sampled_from([f"Bearer {TOKEN}", "Bearer nope", "Basic xx", ""]),
        "Idempotency-Key": st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=250
        ).filter(lambda s: s == s.strip()),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y; charset=utf-7"]),
        "X-Skiff-Stream-Id": st.text(alphabet="ABCDEFabc0123456789._-", max_size=40),
    },
)
TARGET = st.sampled_from(["leader", "follower", "proxy"])


# -- checks -------------------------------------------------------------------------------------
def _states(nodes: dict[str, Proc]) -> list[Any]:
    out = []
    for name in ("leader", "follower"):
        r = httpx.get(nodes[name].url + "/v1/admin/state", headers=AUTH, timeout=10)
        body = r.json()
        out.append((body["epoch"], body["version"], body["checksums"]))
    return out


def _settled(nodes: dict[str, Proc], expected: list[Any]) -> list[Any]:
    # The follower applies the leader's accepted writes asynchronously: let it catch up.
    for _ in range(50):
        now = _states(nodes)
        if now[0][1] == now[1][1]:
            return now
        time.sleep(0.05)
    return _states(nodes)


def _check(nodes: dict[str, Proc], response: httpx.Response, before: list[Any]) -> None:
    for name, proc in nodes.items():
        assert proc.alive(), f"{name} died:\n{proc.tail()}"
    assert response.status_code < 500 or response.status_code == 503, (
        response.status_code,
        response.text[:500],
    )
    if response.status_code == 503:
        assert response.json().get("error"), response.text
    # uvicorn's own answer to a request line or header HTTP forbids (e.g. \x7f in a header):
    # it never reaches the application.
    protocol_error = (
        response.status_code == 400 and response.text == "Invalid HTTP request received."
    )
    if response.status_code >= 400 and not protocol_error:
        assert response.headers.get("content-type", "").startswith("application/json"), response
        after = _settled(nodes, before)
        assert after == before, f"a rejected request ({response.status_code}) changed the state"


def _request(nodes: dict[str, Proc], method: str, target: str, path: str, **kwargs: Any) -> None:
    before = _settled(nodes, [])
    with httpx.Client(timeout=10) as http:
        response = http.request(method, nodes[target].url + path, **kwargs)
    _check(nodes, response, before)


# -- the routes ---------------------------------------------------------------------------------
@FUZZ
@given(target=TARGET, name=NAME, body=BODY, headers=HEADERS)
def test_patch_inputs(
    nodes: dict[str, Proc], target: str, name: str, body: bytes, headers: dict[str, str]
) -> None:
    _request(nodes, "PATCH", target, f"/v1/inputs/{_quote(name)}", content=body, headers=headers)


@FUZZ
@given(target=TARGET, name=NAME, body=BODY, headers=HEADERS, lookup=st.booleans())
def test_snapshot_and_lookup(
    nodes: dict[str, Proc],
    target: str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    lookup: bool,
) -> None:
    path = f"/v1/snapshot/{_quote(name)}" + ("/lookup" if lookup else "")
    _request(nodes, "POST", target, path, content=body, headers=headers)


@FUZZ
@given(target=TARGET, name=NAME, body=BODY, headers=HEADERS)
def test_create_stream(
    nodes: dict[str, Proc], target: str, name: str, body: bytes, headers: dict[str, str]
) -> None:
    _request(nodes, "POST", target, f"/v1/streams/{_quote(name)}", content=body, headers=headers)


@FUZZ
@given(
    target=TARGET,
    stream_id=STREAM_ID,
    event_id=EVENT_ID,
    accept=st.sampled_from(["text/event-stream", "*/*", "text/event-stream;q=0", ""]),
    real=st.booleans(),
)
def test_open_stream(
    nodes: dict[str, Proc],
    target: str,
    stream_id: str,
    event_id: str | None,
    accept: str,
    real: bool,
) -> None:
    with httpx.Client(timeout=10) as http:
        if real:  # a live stream, opened with a foreign or broken Last-Event-ID
            created = http.post(nodes[target].url + "/v1/streams/top", json={"limit": 3})
            assert created.status_code == 201, created.text
            stream_id = created.text
        headers = {"Accept": accept}
        if event_id is not None:
            headers["Last-Event-ID"] = event_id
        before = _settled(nodes, [])
        with http.stream(
            "GET", nodes[target].url + f"/v1/streams/{_quote(stream_id)}", headers=headers
        ) as response:
            if response.status_code == 200:
                first = next(response.iter_lines())
                assert first.startswith("event:"), first
            else:
                response.read()
        _check(nodes, response, before)
        if real:
            http.delete(nodes[target].url + f"/v1/streams/{stream_id}", headers=AUTH)


@FUZZ
@given(target=TARGET, stream_id=STREAM_ID, headers=HEADERS)
def test_delete_stream(
    nodes: dict[str, Proc], target: str, stream_id: str, headers: dict[str, str]
) -> None:
    _request(nodes, "DELETE", target, f"/v1/streams/{_quote(stream_id)}", headers=headers)


@FUZZ
@given(
    target=TARGET,
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from(
        [
            "/healthz",
            "/v1/healthcheck",
            "/metrics",
            "/v1/admin/state",
            "/v1/admin/nodes",
            "/v1/admin/drain",
            "/v1",
            "/v1/inputs",
            "/v1/streams",
            "/nope",
            "/v1/snapshot/top/x",
        ]
    ),
    body=BODY,
    wrong_token=st.sampled_from([{}, {"Authorization": "Bearer wrong"}]),
)
def test_other_routes_and_methods(
    nodes: dict[str, Proc],
    target: str,
    method: str,
    path: str,
    body: bytes,
    wrong_token: dict[str, str],
) -> None:
    # Never with the real token on /v1/admin/drain: that would (rightly) drain the node.
    content = None if method in {"GET", "HEAD", "OPTIONS"} else body
    before = _settled(nodes, [])
    with httpx.Client(timeout=10) as http:
        response = http.request(
            method, nodes[target].url + path, content=content, headers=wrong_token
        )
    for name, proc in nodes.items():
        assert proc.alive(), f"{name} died:\n{proc.tail()}"
    assert response.status_code < 500 or (
        response.status_code == 503 and path in {"/healthz", "/v1/healthcheck", "/v1/admin/state"}
    ), (method, path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert _settled(nodes, before) == before


def _quote(segment: str) -> str:
    return quote(segment, safe="")
