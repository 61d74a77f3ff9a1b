"""The example app and the status page in a real browser, against a real `skiff dev` cluster.

Debian's Chromium (`/usr/bin/chromium`, installed by `.ci/run`) driven headless by Playwright
for Python; nothing is downloaded. Screenshots go to `test-artifacts/web/`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.dev_cluster import ARTIFACTS, WebCluster

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: the browser tests need Debian's chromium "
        "(apt-get install chromium; .ci/run does it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# The flags that keep Chromium quiet on a machine with no outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 640}


@pytest.fixture(scope="module")
def cluster() -> Iterator[WebCluster]:
    with WebCluster() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


class AppPage:
    """One browser context with the example app open, logged in as `user`."""

    def __init__(
        self, browser: Any, cluster: WebCluster, user: str, requests: list[str] | None = None
    ) -> None:
        self.user = user
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        if requests is not None:
            self.page.on("request", lambda request: requests.append(request.url))
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.goto(f"{cluster.url}/?user={user}")
        self.page.wait_for_selector("li.post", timeout=10_000)
        self.page.wait_for_function(
            "name => document.getElementById('whoami').textContent === name",
            arg=user.capitalize(),
            timeout=10_000,
        )

    def post(self, post_id: str) -> Any:
        return self.page.locator(f"li.post[data-post-id='{post_id}']")

    def upvotes(self, post_id: str) -> int:
        return int(self.post(post_id).get_attribute("data-upvotes"))

    def wait_upvotes(self, post_id: str, count: int, timeout_ms: float) -> None:
        self.page.wait_for_selector(
            f"li.post[data-post-id='{post_id}'][data-upvotes='{count}']", timeout=timeout_ms
        )

    def toggle(self, post_id: str) -> None:
        self.post(post_id).locator("button.vote").click()

    def rows(self) -> list[tuple[str, int, bool]]:
        """What the page shows: (post id, upvotes, upvoted) in display order."""
        rows: list[tuple[str, int, bool]] = self.page.eval_on_selector_all(
            "li.post",
            "items => items.map(li => [li.dataset.postId, Number(li.dataset.upvotes),"
            " li.dataset.upvoted === 'true'])",
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    def stream_id(self) -> str:
        text: str = self.page.locator("[data-testid=stream-id]").inner_text()
        return text

    def close(self) -> None:
        self.context.close()


def login(http: httpx.Client, cluster: WebCluster, user: str) -> str:
    """A token for `user` from the app's demo login (on: the cluster has a demo key)."""
    reply = http.post(f"{cluster.url}/demo/login", json={"user": user})
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["token"]
    return token


def expected_rows(cluster: WebCluster, user: str) -> list[tuple[str, int, bool]]:
    entries = cluster.snapshot("posts", {"limit": 30, "session_id": f"session-{user}"})
    return [(v[0]["id"], v[0]["upvotes"], v[0]["upvoted"]) for _, v in entries]


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.timeout(90)
def test_an_upvote_in_one_tab_appears_in_the_other_within_a_second(
    cluster: WebCluster, browser: Any
) -> None:
    alice = AppPage(browser, cluster, "alice")
    bob = AppPage(browser, cluster, "bob")
    try:
        before = bob.upvotes("p4")
        started = time.monotonic()
        alice.toggle("p4")
        bob.wait_upvotes("p4", before + 1, timeout_ms=1000)
        seen_after = time.monotonic() - started
        assert seen_after < 1.0
        alice.page.wait_for_selector("li.post[data-post-id='p4'][data-upvoted='true']")
        assert bob.post("p4").get_attribute("data-upvoted") == "false"  # alice's, not bob's

        # Un-upvote: back to where it was, in both tabs.
        alice.toggle("p4")
        bob.wait_upvotes("p4", before, timeout_ms=1000)
        alice.page.wait_for_selector("li.post[data-post-id='p4'][data-upvoted='false']")

        # A post submitted in one tab shows up in the other; an upvote moves it up the ranking.
        alice.page.fill("#title", "Watching a broker react")
        alice.page.fill("#url", "https://example.com/react")
        alice.page.click("#post-button")
        bob.page.wait_for_selector("li.post:has-text('Watching a broker react')", timeout=2000)
        new_id = bob.page.locator("li.post:has-text('Watching a broker react')").get_attribute(
            "data-post-id"
        )
        for page in (alice, bob):
            page.toggle(new_id)
        alice.wait_upvotes(new_id, 2, timeout_ms=2000)
        wait_until(lambda: bob.rows() == expected_rows(cluster, "bob"), 2, "bob's page = snapshot")
        assert alice.rows() == expected_rows(cluster, "alice")
        ranks = [row[0] for row in bob.rows()]
        assert ranks.index(new_id) < ranks.index("p4")  # 2 points ahead of 0

        # "simulate activity" drives upvotes that both tabs see.
        head = cluster.health()
        alice.page.check("#simulate")
        version = int(alice.page.evaluate("document.body.dataset.version"))
        bob.page.wait_for_function(
            "v => Number(document.body.dataset.version) >= v + 3", arg=version, timeout=10_000
        )
        alice.page.uncheck("#simulate")
        assert head  # the cluster answered throughout
        time.sleep(0.8)  # the last simulated write lands
        wait_until(lambda: bob.rows() == expected_rows(cluster, "bob"), 5, "bob's page = snapshot")
        alice.page.screenshot(path=str(ARTIFACTS / "app.png"))
        assert not alice.errors and not bob.errors
    finally:
        alice.close()
        bob.close()


@pytest.mark.timeout(120)
def test_killing_the_follower_of_a_page_leaves_it_correct_and_shows_on_the_status_page(
    cluster: WebCluster, browser: Any
) -> None:
    alice = AppPage(browser, cluster, "alice")
    bob = AppPage(browser, cluster, "bob")
    status_context = browser.new_context(viewport={"width": 1100, "height": 760})
    status = status_context.new_page()
    try:
        status.goto(f"{cluster.url}/_skiff/")
        for name in cluster.follower_names:
            status.wait_for_selector(
                f"tr[data-node-id='{name}'][data-state='serving']", timeout=10_000
            )
        # The chart needs a few samples to show a line.
        status.wait_for_function("Number(document.body.dataset.updates) >= 3", timeout=10_000)

        stream_id = bob.stream_id()
        host = stream_id.split(".")[0]
        assert host in cluster.follower_names, f"bob's stream is on {host}, not a follower"
        cluster.kill_follower(host)

        # While bob's page reconnects, alice writes; bob must end up with exactly the truth.
        # (Whether alice has upvoted p3 depends on the earlier test's simulated activity.)
        was = alice.post("p3").get_attribute("data-upvoted")
        now = "false" if was == "true" else "true"
        alice.toggle("p3")
        alice.page.wait_for_selector(
            f"li.post[data-post-id='p3'][data-upvoted='{now}']", timeout=20_000
        )
        wait_until(
            lambda: bob.rows() == expected_rows(cluster, "bob"),
            30,
            "bob's page to match the snapshot after its follower died",
        )
        bob.page.wait_for_function("document.body.dataset.connection === 'open'", timeout=10_000)
        # EventSource's own reconnect (Last-Event-ID) was enough: the proxy re-homed the same
        # stream id; the page did not have to create a new stream.
        assert bob.stream_id() == stream_id

        # The status page sees it leave (its heartbeat record expires) ...
        status.wait_for_function(
            "name => { const row = document.querySelector(`tr[data-node-id='${name}']`);"
            " return !row || row.dataset.state === 'gone'; }",
            arg=host,
            timeout=15_000,
        )
        status.screenshot(path=str(ARTIFACTS / "status-follower-gone.png"), full_page=True)

        # ... and come back when it restarts.
        cluster.start_follower(host)
        status.wait_for_selector(f"tr[data-node-id='{host}'][data-state='serving']", timeout=30_000)
        for name in cluster.follower_names:  # caught up again
            status.wait_for_selector(f"tr[data-node-id='{name}'][data-lag='0']", timeout=30_000)
        status.wait_for_function("Number(document.body.dataset.updates) >= 6", timeout=10_000)
        status.screenshot(path=str(ARTIFACTS / "status.png"), full_page=True)
        assert status.locator("#redis").inner_text() == "reachable"
        assert status.locator("#leader").inner_text() == "leader"
        assert status.locator("#chart polyline").count() >= 1
        document = httpx.get(f"{cluster.url}/_skiff/status", timeout=5, trust_env=False).json()
        followers = [n for n in document["nodes"] if n["role"] == "follower"]
        assert sum(n["instances"] or 0 for n in followers) >= 1  # alice's and bob's streams
        assert sum(n["readers"] or 0 for n in followers) >= 2

        # Bob's page keeps following writes on its new home.
        alice.toggle("p3")
        alice.page.wait_for_selector(f"li.post[data-post-id='p3'][data-upvoted='{was}']")
        wait_until(lambda: bob.rows() == expected_rows(cluster, "bob"), 5, "bob after un-upvote")
        bob.page.screenshot(path=str(ARTIFACTS / "app-after-rehome.png"))
        assert not alice.errors and not bob.errors
    finally:
        status_context.close()
        alice.close()
        bob.close()


@pytest.mark.timeout(60)
def test_a_page_whose_stream_is_gone_opens_a_new_one(cluster: WebCluster, browser: Any) -> None:
    carol = AppPage(browser, cluster, "carol")
    try:
        stream_id = carol.stream_id()
        # DELETE (by its owner: the stream is carol's) ends the connected reader; EventSource's
        # reconnect then gets a 404 and gives up, and skiff.js creates a new stream with the same
        # params.
        with httpx.Client(timeout=5, trust_env=False) as http:
            token = login(http, cluster, "carol")
            url = f"{cluster.url}/v1/streams/{stream_id}"
            assert http.delete(url).status_code == 401
            reply = http.delete(url, headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200
        carol.page.wait_for_function(
            "old => { const id = document.querySelector('[data-testid=stream-id]').textContent;"
            " return id !== old && id.includes('.'); }",
            arg=stream_id,
            timeout=20_000,
        )
        carol.page.wait_for_function("document.body.dataset.connection === 'open'")
        was = carol.post("p2").get_attribute("data-upvoted")
        carol.toggle("p2")
        now = "false" if was == "true" else "true"
        carol.page.wait_for_selector(f"li.post[data-post-id='p2'][data-upvoted='{now}']")
        wait_until(lambda: carol.rows() == expected_rows(cluster, "carol"), 5, "carol = snapshot")
        assert not carol.errors
    finally:
        carol.close()


@pytest.mark.timeout(60)
def test_each_user_sees_only_their_session_and_no_log_holds_a_token(
    cluster: WebCluster, browser: Any
) -> None:
    urls: list[str] = []
    alice = AppPage(browser, cluster, "alice", requests=urls)
    bob = AppPage(browser, cluster, "bob", requests=urls)
    try:
        # Logged in with tokens: each page's session is its own.
        assert alice.page.locator("#whoami").inner_text() == "Alice"
        assert bob.page.locator("#whoami").inner_text() == "Bob"
        tokens = {url.split("access_token=", 1)[1] for url in urls if "access_token=" in url}
        assert len(tokens) >= 2, urls  # the stream reads carried the tokens in their URLs

        # Bob's page asks for alice's session: 403, with a clear message.
        refused = bob.page.evaluate(
            """async () => {
                const login = await fetch('/demo/login', {method: 'POST',
                    body: JSON.stringify({user: 'bob'})});
                const {token} = await login.json();
                const reply = await fetch('/v1/streams/session', {method: 'POST',
                    headers: {Authorization: `Bearer ${token}`},
                    body: JSON.stringify({session_id: 'session-alice'})});
                return [reply.status, await reply.json()];
            }"""
        )
        assert refused == [403, {"error": "session 'session-alice' is not yours"}]

        # Bob's token on alice's stream id: 404, as for a stream that does not exist.
        with httpx.Client(timeout=5, trust_env=False) as http:
            bob_token = login(http, cluster, "bob")
            stream_id = alice.stream_id()
            reply = http.get(
                f"{cluster.url}/v1/streams/{stream_id}?access_token={bob_token}",
                headers={"Accept": "text/event-stream"},
            )
            assert reply.status_code == 404
            reply = http.get(
                f"{cluster.url}/v1/streams/{stream_id}", headers={"Accept": "text/event-stream"}
            )
            assert reply.status_code == 401
        assert alice.page.locator("#whoami").inner_text() == "Alice"

        # The proxy and the nodes logged these requests, but never a token.
        time.sleep(0.5)
        logs = cluster.logs()
        assert "access_token=[redacted]" in logs
        for token in {*tokens, bob_token}:
            assert token not in logs
        assert not alice.errors and not bob.errors
    finally:
        alice.close()
        bob.close()
