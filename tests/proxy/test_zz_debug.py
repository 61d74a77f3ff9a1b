import asyncio, sys
import httpx
from tests.proxy.nodes import node_factory, proxy_config, running_proxy
from tests.proxy.test_app import until_serving

async def test_dbg(redis_client, keyspace, redis_url):
    async def watchdog():
        await asyncio.sleep(8)
        for t in asyncio.all_tasks():
            print("TASK", t.get_name(), file=sys.stderr)
            t.print_stack(file=sys.stderr)
    w = asyncio.create_task(watchdog())
    for i in range(3):
        async with node_factory(redis_client, keyspace) as start:
            async with running_proxy(proxy_config(redis_url, keyspace)) as proxy:
                async with httpx.AsyncClient(base_url=proxy.url) as http:
                    lead = await start("lead-0", role="leader")
                    f = await start("f-0")
                    await until_serving(proxy, 2)
                    r = await http.post("/v1/streams/top", json={"limit": 2})
                    assert r.status_code == 201
                    assert (await http.post("/v1/streams/nope", json={})).status_code == 404
            print("proxy closed", i, file=sys.stderr)
        print("nodes closed", i, file=sys.stderr)
    w.cancel()
