// Unit tests of proxy/static/skiff.js under node's built-in test runner, driven by
// tests/web/test_skiff_js.py: SKIFF_JS is a copy of the module, SKIFF_KEY_TABLE the keys in the
// order Python's graph.keys puts them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const skiff = await import(pathToFileURL(process.env.SKIFF_JS).href);
const { compareKeys, KeyedMap, parseEventId } = skiff;
const table = JSON.parse(readFileSync(process.env.SKIFF_KEY_TABLE, "utf8"));

test("compareKeys agrees with Python on every pair of the table", () => {
  for (let i = 0; i < table.length; i++) {
    for (let j = 0; j < table.length; j++) {
      const expected = Math.sign(i - j);
      assert.equal(compareKeys(table[i], table[j]), expected,
        `compare(${JSON.stringify(table[i])}, ${JSON.stringify(table[j])})`);
    }
  }
});

test("sorting a shuffled table gives Python's order", () => {
  const shuffled = table.map((k, i) => [(i * 7919) % 104729, k]).sort((a, b) => a[0] - b[0]).map((p) => p[1]);
  assert.deepEqual(shuffled.slice().sort(compareKeys), table);
  assert.deepEqual(table.slice().reverse().sort(compareKeys), table);
});

test("1 and 1.0 are one key; true and 1 are two", () => {
  assert.equal(compareKeys(1, 1.0), 0);
  assert.notEqual(compareKeys(true, 1), 0);
  assert.equal(compareKeys({ b: 1, a: 2 }, { a: 2, b: 1 }), 0);
});

test("KeyedMap: init replaces, update inserts in key order, [] removes", () => {
  const map = new KeyedMap([[[-1, "p2"], ["b"]], [[-2, "p1"], ["a"]], ["gone", []]]);
  assert.deepEqual(map.entries(), [[[-2, "p1"], ["a"]], [[-1, "p2"], ["b"]]]);
  map.apply([[[-3, "p3"], ["c"]], [[-1, "p2"], []], [[-2, "p1"], ["a2"]], ["absent", []]]);
  assert.deepEqual(map.entries(), [[[-3, "p3"], ["c"]], [[-2, "p1"], ["a2"]]]);
  map.apply([]); // a heartbeat
  assert.equal(map.size, 2);
  assert.deepEqual(map.get([-2, "p1"]), ["a2"]);
  map.replace([[null, [1]]]); // a resync
  assert.deepEqual(map.entries(), [[null, [1]]]);
});

test("parseEventId", () => {
  assert.deepEqual(parseEventId("ep-1/42"), { run: "ep-1", version: 42 });
  assert.deepEqual(parseEventId("a/b/7"), { run: "a/b", version: 7 });
  assert.equal(parseEventId(""), null);
  assert.equal(parseEventId("/3"), null);
  assert.equal(parseEventId("run/x"), null);
});

// -- SkiffStream against a fake EventSource and fetch -----------------------------------------

class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = {};
    FakeEventSource.instances.push(this);
  }

  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  emit(type, data, lastEventId = "") {
    if (type === "open") this.readyState = FakeEventSource.OPEN;
    const event = { data: data === undefined ? undefined : JSON.stringify(data), lastEventId };
    for (const listener of this.listeners[type] ?? []) listener(event);
  }
}

function fakeNetwork() {
  const created = [];
  globalThis.EventSource = FakeEventSource;
  FakeEventSource.instances = [];
  globalThis.fetch = async (url, init) => {
    created.push([url, init.method, init.body]);
    return { ok: true, status: 201, statusText: "Created", text: async () => `s-${created.length}` };
  };
  return created;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("SkiffStream: init, updates, heartbeats, resync", async () => {
  const created = fakeNetwork();
  const stream = skiff.openStream("posts", { limit: 2 }, { baseUrl: "http://proxy" });
  const seen = [];
  stream.subscribe((entries, info) => seen.push([entries, info.kind, info.version]));
  await tick();
  assert.deepEqual(created, [["http://proxy/v1/streams/posts", "POST", '{"limit":2}']]);
  const source = FakeEventSource.instances[0];
  assert.equal(source.url, "http://proxy/v1/streams/s-1");
  source.emit("open");
  source.emit("init", [["b", [2]], ["a", [1]]], "run1/5");
  source.emit("update", [["c", [3]], ["a", []]], "run1/6");
  source.emit("update", [], "run1/6"); // a heartbeat: lastEventId is still the last id
  assert.deepEqual(seen, [
    [[["a", [1]], ["b", [2]]], "init", 5],
    [[["b", [2]], ["c", [3]]], "update", 6],
  ]);
  source.emit("init", [["z", [26]]], "run2/1"); // a resync: a fresh init replaces everything
  assert.deepEqual(stream.entries(), [["z", [26]]]);
  assert.equal(stream.run, "run2");
  assert.equal(stream.status, "open");
  stream.close();
  assert.equal(source.readyState, FakeEventSource.CLOSED);
});

test("SkiffStream: a reconnecting EventSource keeps its stream; a closed one gets a new stream", async () => {
  const created = fakeNetwork();
  const stream = skiff.openStream("posts", {}, { retryMs: 1 });
  const statuses = [];
  stream.onStatus((status) => statuses.push(status));
  await tick();
  const first = FakeEventSource.instances[0];
  first.emit("open");
  first.emit("init", [["a", [1]]], "r/1");
  first.readyState = FakeEventSource.CONNECTING; // the browser retries by itself
  first.emit("error");
  assert.equal(created.length, 1);
  assert.equal(stream.status, "reconnecting");
  first.emit("open");
  first.emit("update", [["b", [2]]], "r/2"); // the resumed stream
  assert.deepEqual(stream.entries(), [["a", [1]], ["b", [2]]]);
  first.readyState = FakeEventSource.CLOSED; // 404: the stream id is gone, EventSource gave up
  first.emit("error");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(created.length, 2);
  const second = FakeEventSource.instances[1];
  assert.equal(second.url, "/v1/streams/s-2");
  second.emit("open");
  second.emit("init", [["c", [3]]], "r/9");
  assert.deepEqual(stream.entries(), [["c", [3]]]);
  assert.equal(stream.streamId, "s-2");
  assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "open", "reconnecting", "open"]);
  stream.close();
});

test("SkiffStream: a token goes in the header and the stream URL; expiry reopens with a fresh one", async () => {
  const created = fakeNetwork();
  const seenHeaders = [];
  const fetchCreated = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    seenHeaders.push(init.headers.Authorization);
    return fetchCreated(url, init);
  };
  let issued = 0;
  const token = async () => `tok-${++issued}`;
  const stream = skiff.openStream("session", {}, { token, retryMs: 1 });
  await tick();
  await tick();
  assert.deepEqual(seenHeaders, ["Bearer tok-1"]);
  const first = FakeEventSource.instances[0];
  assert.equal(first.url, "/v1/streams/s-1?access_token=tok-1");
  first.emit("open");
  first.emit("init", [["a", [1]]], "r/1");
  // The server ends the stream: its token expired. Same stream id, a fresh token, no new stream.
  first.emit("error", { error: "token expired: reconnect with a fresh token" });
  assert.equal(first.readyState, FakeEventSource.CLOSED);
  await tick();
  await tick();
  assert.equal(created.length, 1);
  const second = FakeEventSource.instances[1];
  assert.equal(second.url, "/v1/streams/s-1?access_token=tok-2");
  second.emit("open");
  second.emit("init", [["b", [2]]], "r/2");
  assert.deepEqual(stream.entries(), [["b", [2]]]);
  stream.close();
});
