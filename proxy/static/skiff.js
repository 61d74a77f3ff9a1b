// skiff.js: a small browser client of skiff's HTTP/SSE protocol (docs/protocol.md), the twin of
// broker/client.py. No dependencies; an ES module served by the proxy at /static/skiff.js.
//
//   import { openStream, patchInput } from "/static/skiff.js";
//   const stream = openStream("posts", { limit: 10 });
//   const unsubscribe = stream.subscribe((entries, info) => render(entries));
//   await patchInput("upvotes", [["p1:alice", [{ post: "p1", user: "alice" }]]]);
//   stream.close();
//
// A stream keeps the resource as a map from key to values, in the protocol's key order. `init`
// replaces the map (a first connection, or a resync: a new run, a resume that was too old);
// `update` replaces the values of the keys it lists ([] removes one); heartbeats (empty updates)
// change nothing. The browser's EventSource reconnects by itself, with Last-Event-ID, and the
// proxy re-homes the stream when its follower is gone. When the stream id itself is gone (the
// proxy answers 404 after the stream expired; EventSource then gives up) the stream creates a new
// one with the same params and starts over from its init.
//
// Identity tokens (docs/security.md): pass `token`, a string or a function returning one (or a
// promise of one), called before each request so it can hand out a fresh token. Requests send
// it as `Authorization: Bearer`; a stream read sends it as `?access_token=` (EventSource cannot
// set headers; skiff never logs it). When the server ends a stream because its token expired,
// the stream is opened again at once with a fresh token.

const RANK = { null: 0, boolean: 1, number: 2, string: 3, array: 4, object: 5 };

function rank(value) {
  if (value === null) return RANK.null;
  if (Array.isArray(value)) return RANK.array;
  const r = RANK[typeof value];
  if (r === undefined) throw new TypeError(`not a JSON key: ${value}`);
  return r;
}

/** Compare strings by code point (JS's `<` compares UTF-16 code units). */
export function compareStrings(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only surrogates (0xD800-0xDFFF) sort differently by code point: they stand for code
    // points above 0xFFFF, which come after every BMP character.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * The protocol's total order on JSON keys: null < false < true < numbers < strings < arrays
 * < objects; numbers by value, strings by code point, arrays element by element, objects by
 * their (name, value) pairs sorted by name. Returns -1, 0 or 1.
 */
export function compareKeys(a, b) {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case RANK.null:
      return 0;
    case RANK.boolean:
    case RANK.number:
      return a === b ? 0 : a < b ? -1 : 1;
    case RANK.string:
      return compareStrings(a, b);
    case RANK.array:
      return compareSequences(a, b, compareKeys);
    default: {
      const pairs = (o) => Object.keys(o).sort(compareStrings).map((k) => [k, o[k]]);
      return compareSequences(pairs(a), pairs(b), (p, q) =>
        compareStrings(p[0], q[0]) || compareKeys(p[1], q[1]));
    }
  }
}

function compareSequences(a, b, compare) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compare(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** A collection: keys in the protocol's order, each with its list of values. */
export class KeyedMap {
  constructor(entries = []) {
    this._entries = [];
    this.replace(entries);
  }

  get size() {
    return this._entries.length;
  }

  /** The entries, [key, values], in key order (a copy). */
  entries() {
    return this._entries.slice();
  }

  get(key) {
    const i = this._find(key);
    return i >= 0 ? this._entries[i][1] : undefined;
  }

  /** Replace everything (an `init`). */
  replace(entries) {
    this._entries = entries
      .filter(([, values]) => values.length > 0)
      .sort((p, q) => compareKeys(p[0], q[0]));
  }

  /** Apply an `update`: each listed key gets its new values; [] removes it. */
  apply(entries) {
    for (const [key, values] of entries) {
      const i = this._find(key);
      if (i >= 0) {
        if (values.length > 0) this._entries[i] = [key, values];
        else this._entries.splice(i, 1);
      } else if (values.length > 0) {
        this._entries.splice(-i - 1, 0, [key, values]);
      }
    }
  }

  // Index of `key`, or -(insertion point) - 1 when absent.
  _find(key) {
    let lo = 0;
    let hi = this._entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareKeys(this._entries[mid][0], key);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }
}

/** Parse an event id `<run>/<version>`; null when malformed. */
export function parseEventId(id) {
  const slash = id ? id.lastIndexOf("/") : -1;
  if (slash <= 0) return null;
  const version = Number(id.slice(slash + 1));
  return Number.isInteger(version) ? { run: id.slice(0, slash), version } : null;
}

export class SkiffError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function resolveToken(token) {
  return typeof token === "function" ? await token() : token;
}

async function request(baseUrl, method, path, body, headers = {}, token = undefined) {
  const bearer = await resolveToken(token);
  if (bearer) headers = { ...headers, Authorization: `Bearer ${bearer}` };
  const response = await fetch(baseUrl + path, {
    method,
    headers: { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text || response.statusText;
    try {
      message = JSON.parse(text).error ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new SkiffError(response.status, message);
  }
  return text;
}

/** PATCH /v1/inputs/{collection}: returns the version of the write's tick. */
export async function patchInput(collection, entries, { baseUrl = "", idempotencyKey, token } = {}) {
  const headers = {};
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const text = await request(baseUrl, "PATCH", `/v1/inputs/${encodeURIComponent(collection)}`,
    entries, headers, token);
  return JSON.parse(text).version;
}

/** POST /v1/snapshot/{resource}: the whole resource, once. */
export async function snapshot(resource, params = {}, { baseUrl = "", token } = {}) {
  return JSON.parse(await request(baseUrl, "POST", `/v1/snapshot/${encodeURIComponent(resource)}`,
    params, {}, token));
}

/** POST /v1/streams/{resource}: a new stream id. */
export async function createStream(resource, params = {}, { baseUrl = "", token } = {}) {
  return request(baseUrl, "POST", `/v1/streams/${encodeURIComponent(resource)}`, params, {},
    token);
}

/**
 * A live resource: `subscribe(callback)` calls `callback(entries, info)` after every change
 * (and once at once when data is already there), where `entries` is [[key, values], ...] in key
 * order and `info` is {kind: "init"|"update", run, version, streamId}. Also:
 * `onStatus(callback)` for connection changes ("connecting", "open", "reconnecting", "closed"),
 * `entries()`, `get(key)`, `close()`.
 */
export class SkiffStream {
  constructor(resource, params = {},
    { baseUrl = "", retryMs = 1000, maxRetryMs = 10000, token } = {}) {
    this.resource = resource;
    this._token = token;
    this.params = params;
    this.baseUrl = baseUrl;
    this.map = new KeyedMap();
    this.streamId = null;
    this.run = null;
    this.version = null;
    this.status = "connecting";
    this._retryMs = retryMs;
    this._maxRetryMs = maxRetryMs;
    this._failures = 0;
    this._source = null;
    this._timer = null;
    this._closed = false;
    this._listeners = new Set();
    this._statusListeners = new Set();
    this._start();
  }

  subscribe(callback) {
    this._listeners.add(callback);
    if (this.version !== null) callback(this.map.entries(), this._info("init"));
    return () => this._listeners.delete(callback);
  }

  onStatus(callback) {
    this._statusListeners.add(callback);
    callback(this.status);
    return () => this._statusListeners.delete(callback);
  }

  entries() {
    return this.map.entries();
  }

  get(key) {
    return this.map.get(key);
  }

  /** Stop reading; deletes nothing (the server collects the stream once nobody reads it). */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    if (this._source) this._source.close();
    this._source = null;
    this._setStatus("closed");
  }

  async _start() {
    if (this._closed) return;
    this._setStatus(this.version === null ? "connecting" : "reconnecting");
    let token;
    try {
      token = await resolveToken(this._token);
      this.streamId = await createStream(this.resource, this.params,
        { baseUrl: this.baseUrl, token });
    } catch (err) {
      if (err instanceof SkiffError && err.status >= 400 && err.status < 500 && err.status !== 429) {
        // The resource or its params are wrong: retrying will not help.
        this._setStatus("closed", err);
        return;
      }
      this._retryLater();
      return;
    }
    this._open(token);
  }

  /** Open the stream again with a fresh token (the server ended it: its token expired). */
  async _reopen() {
    let token;
    try {
      token = await resolveToken(this._token);
    } catch {
      this._retryLater();
      return;
    }
    this._open(token);
  }

  _open(token) {
    if (this._closed) return;
    let url = `${this.baseUrl}/v1/streams/${encodeURIComponent(this.streamId)}`;
    if (token) url += `?access_token=${encodeURIComponent(token)}`;
    const source = (this._source = new EventSource(url));
    source.addEventListener("open", () => {
      this._failures = 0;
      this._setStatus("open");
    });
    source.addEventListener("init", (event) => this._onEvent("init", event));
    source.addEventListener("update", (event) => this._onEvent("update", event));
    source.addEventListener("error", (event) => {
      if (this._source !== source) return;
      if (typeof event.data === "string" && event.data.includes("token expired")) {
        // The server's own error event: reconnecting with the same URL would be refused.
        source.close();
        this._source = null;
        this._setStatus("reconnecting");
        this._reopen();
        return;
      }
      if (source.readyState === EventSource.CLOSED) {
        // EventSource gives up on a 404/410 (the stream id is gone), a non-SSE answer or a
        // 5xx: create a new stream; its init replaces everything.
        source.close();
        this._source = null;
        this._retryLater();
      } else {
        // CONNECTING: the browser reconnects by itself, sending Last-Event-ID.
        this._setStatus("reconnecting");
      }
    });
  }

  _onEvent(kind, event) {
    let entries;
    try {
      entries = JSON.parse(event.data);
    } catch {
      return; // a malformed event changes nothing
    }
    // MessageEvent.lastEventId is the stream's last id, which a heartbeat (no id) leaves as is.
    const parsed = parseEventId(event.lastEventId);
    this._failures = 0;
    if (this.status !== "open") this._setStatus("open");
    if (kind === "update" && entries.length === 0) {
      // A heartbeat, or a resume that found nothing changed: nothing to apply or announce.
      if (parsed) this.version = Math.max(this.version ?? 0, parsed.version);
      return;
    }
    if (kind === "init") this.map.replace(entries);
    else this.map.apply(entries);
    if (parsed) {
      this.run = parsed.run;
      this.version = parsed.version;
    }
    const snapshot = this.map.entries();
    const info = this._info(kind);
    for (const listener of this._listeners) listener(snapshot, info);
  }

  _info(kind) {
    return { kind, run: this.run, version: this.version, streamId: this.streamId };
  }

  _retryLater() {
    if (this._closed) return;
    this._setStatus("reconnecting");
    const delay = Math.min(this._retryMs * 2 ** this._failures, this._maxRetryMs);
    this._failures += 1;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._start(), delay);
  }

  _setStatus(status, error) {
    if (status === this.status && !error && this._statusSet) return;
    this._statusSet = true;
    this.status = status;
    for (const listener of this._statusListeners) listener(status, error);
  }
}

/** `new SkiffStream(resource, params, options)`. */
export function openStream(resource, params = {}, options = {}) {
  return new SkiffStream(resource, params, options);
}
