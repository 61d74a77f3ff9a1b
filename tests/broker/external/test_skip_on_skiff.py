"""SkipExternalService against a real skiff node: a resource of one service as the external
collection of another (service chaining), followed through writes, dropped connections,
failures the server reports, and the node restarting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broker import RunningNode, ServeConfig, SkiffClient, running
from broker.errors import ConfigError
from broker.external import (
    ExternalFetchError,
    ExternalStreamError,
    SkipExternalService,
    UnknownExternalResourceError,
)
from graph import Service
from skiff.dev.embedded_redis import free_port
from tests.chaos.faultproxy import FaultLink
from tests.support.json_api import Recorder
from tests.support.polling import eventually
from tests.support.reading_resource import Picked

pytestmark = pytest.mark.timeout(20)


def make_service() -> Service:
    return Service(
        inputs={"input1": [(1, [1, 2])], "input2": [(1, [1]), (2, [3])]},
        resources={"picked": Picked},
        create_graph=lambda inputs, context: dict(inputs),
    )


def config(port: int = 0) -> ServeConfig:
    return ServeConfig(port=port, shutdown_timeout_s=1, heartbeat_s=1)


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    async with running(make_service(), config()) as node:
        yield node


@pytest.fixture
async def client(node: RunningNode) -> AsyncIterator[SkiffClient]:
    async with SkiffClient(node.url) as client:
        yield client


@pytest.fixture
async def remote(node: RunningNode) -> AsyncIterator[SkipExternalService]:
    remote = SkipExternalService(node.url, idle_timeout_s=5, max_reconnect_delay_s=0.2)
    yield remote
    await remote.shutdown()


async def test_init_then_updates(
    node: RunningNode, client: SkiffClient, remote: SkipExternalService
) -> None:
    seen = Recorder()
    await remote.subscribe("s1", "picked", 1, seen)
    assert seen.updates == [([(1, [1])], True)]  # delivered before subscribe returned
    await client.patch("input2", [(2, [1]), (3, [2])])
    await eventually(lambda: seen.content == {1: [1], 2: [1], 3: [2]})
    await client.patch("input2", [(1, [])])
    await eventually(lambda: seen.content == {2: [1], 3: [2]})
    assert [is_init for _, is_init in seen.updates] == [True, False, False]
    assert seen.updates[2] == ([(1, [])], False)
    assert node.hub.reader_count == 1 and not seen.errors


async def test_unknown_resource_and_failing_params_raise(
    node: RunningNode, remote: SkipExternalService
) -> None:
    with pytest.raises(UnknownExternalResourceError, match="nope"):
        await remote.subscribe("s1", "nope", 1, Recorder())
    dead = SkipExternalService(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    with pytest.raises(ExternalFetchError) as caught:
        await dead.subscribe("s1", "picked", 1, Recorder())
    assert caught.value.status is None
    await dead.shutdown()
    assert node.hub.stream_count == 0


async def test_unsubscribe_closes_and_deletes_the_stream(
    node: RunningNode, client: SkiffClient, remote: SkipExternalService
) -> None:
    seen = Recorder()
    await remote.subscribe("s1", "picked", 1, seen)
    await remote.subscribe("s2", "picked", 1, Recorder())
    assert node.hub.stream_count == 2
    remote.unsubscribe("s1")
    remote.unsubscribe("s1")
    remote.unsubscribe("nobody")
    await eventually(lambda: node.hub.stream_count == 1 and node.hub.reader_count == 1)
    await client.patch("input2", [(2, [1])])
    await eventually(lambda: node.hub.reader_count == 1)
    assert len(seen.updates) == 1  # nothing delivered after unsubscribe
    await remote.shutdown()
    await eventually(lambda: node.hub.stream_count == 0)


async def test_a_dropped_connection_resumes_from_the_last_event(
    node: RunningNode, client: SkiffClient, remote: SkipExternalService
) -> None:
    seen = Recorder()
    await remote.subscribe("s1", "picked", 1, seen)
    [stream_id] = node.hub.connected_stream_ids()
    assert node.hub.disconnect(stream_id)
    await client.patch("input2", [(2, [1])])
    await eventually(lambda: seen.content == {1: [1], 2: [1]})
    # Resumed with Last-Event-ID on the same stream: an update, no second init.
    assert seen.inits == 1
    assert node.hub.connected_stream_ids() == [stream_id]


async def test_a_broken_link_is_an_error_then_resumes(
    node: RunningNode, client: SkiffClient
) -> None:
    port = int(node.url.rsplit(":", 1)[1])
    link = FaultLink(upstream_port=port)
    await link.start()
    remote = SkipExternalService(f"http://127.0.0.1:{link.port}", max_reconnect_delay_s=0.1)
    seen = Recorder()
    try:
        await remote.subscribe("s1", "picked", 1, seen)
        link.partition()
        await client.patch("input2", [(2, [1])])
        await eventually(lambda: len(seen.errors) >= 2)
        link.heal()
        await eventually(lambda: seen.content == {1: [1], 2: [1]})
        assert seen.inits == 1
        assert all(isinstance(e, ExternalFetchError) for e in seen.errors)
    finally:
        await remote.shutdown()
        await link.close()


async def test_a_failure_the_server_reports_is_an_error_and_the_subscription_recovers(
    node: RunningNode, client: SkiffClient, remote: SkipExternalService
) -> None:
    seen = Recorder()
    await remote.subscribe("s1", "picked", 1, seen)
    await client.patch("input1", [("fail", [True])])
    await eventually(lambda: seen.errors)
    assert isinstance(seen.errors[0], ExternalStreamError)
    assert "input1 says fail" in str(seen.errors[0])
    # The stream is gone with its instance; recreating it fails while input1 says fail...
    await eventually(lambda: len(seen.errors) >= 3)
    # ...and succeeds once it does not: a fresh init.
    await client.patch("input1", [("fail", []), (1, [3])])
    await eventually(lambda: seen.inits == 2)
    assert seen.content == {2: [3]}
    assert node.hub.stream_count == 1


async def test_the_node_restarting_is_survived() -> None:
    port = free_port()
    seen = Recorder()
    remote = SkipExternalService(f"http://127.0.0.1:{port}", max_reconnect_delay_s=0.1)
    try:
        async with running(make_service(), config(port)) as node:
            await remote.subscribe("s1", "picked", 1, seen)
            async with SkiffClient(node.url) as client:
                await client.patch("input2", [(2, [1])])
            await eventually(lambda: seen.content == {1: [1], 2: [1]})
        await eventually(lambda: seen.errors)  # the node is gone: refused connections
        async with running(make_service(), config(port)) as node:
            # A new process knows no stream: the adapter creates one and gets a fresh init
            # (the new node started from its initial inputs).
            await eventually(lambda: seen.inits == 2)
            assert seen.content == {1: [1]}
            async with SkiffClient(node.url) as client:
                await client.patch("input2", [(5, [2])])
            await eventually(lambda: seen.content == {1: [1], 5: [2]})
    finally:
        await remote.shutdown()


async def test_heartbeats_keep_a_quiet_stream_alive_and_are_not_updates() -> None:
    quiet = ServeConfig(port=0, shutdown_timeout_s=1, heartbeat_s=0.2)  # a beat every 0.1 s
    async with running(make_service(), quiet) as node:
        # Trusting a silent connection for 0.4 s: without the beats it would time out.
        remote = SkipExternalService(node.url, idle_timeout_s=0.4)
        seen = Recorder()
        try:
            await remote.subscribe("s1", "picked", 1, seen)
            await asyncio.sleep(1.0)
            assert seen.updates == [([(1, [1])], True)] and not seen.errors
        finally:
            await remote.shutdown()


def test_direct_builds_both_urls() -> None:
    plain = SkipExternalService.direct("svc", 8080, 8081)
    assert (plain.settings.url, plain.settings.control_url) == (
        "http://svc:8080",
        "http://svc:8081",
    )
    secured = SkipExternalService.direct("svc", 443, 8443, secured=True, timeout_s=2)
    assert secured.settings.control_url == "https://svc:8443"
    assert secured.settings.timeout_s == 2
    assert SkipExternalService("http://a/").settings.control_url == "http://a"
    with pytest.raises(ConfigError, match="idle_timeout_s"):
        SkipExternalService("http://a", idle_timeout_s=0)
