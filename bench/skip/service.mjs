// skiff's benchmark workloads written as Skip services (our code, run against Skip's runtime).
// bench/skip_bench.py copies this file into a scratch folder that holds Skip's npm packages and
// runs:  node service.mjs WORKLOAD CONTROL_PORT STREAMING_PORT KEYS
// The workloads mirror bench/workloads.py and examples/hackernews.py one to one.
import { runService } from "@skipruntime/server";
import { Count, Sum } from "@skipruntime/helpers";

const [workload, controlPort, streamingPort, keysArg] = process.argv.slice(2);
const KEYS = Number(keysArg ?? "100000");
const GROUPS = 1000;

// ---- wide: events -> map(ByGroup) -> reduce(Sum) -> map(Ranked); resource top {limit}
class ByGroup {
  mapEntry(key, values) {
    const out = [];
    for (const v of values) out.push([v.g, v.v]);
    return out;
  }
}
class Ranked {
  mapEntry(key, values) {
    const total = values.getUnique();
    return [[[-total, key], { group: key, total }]];
  }
}
class Top {
  constructor(params) {
    this.limit = params && typeof params.limit === "number" ? params.limit : 10;
  }
  instantiate(collections) {
    return collections.ranked.take(this.limit);
  }
}
const wide = () => {
  const events = [];
  for (let i = 0; i < KEYS; i++) events.push([i, [{ g: i % GROUPS, v: i }]]);
  return {
    initialData: { events },
    resources: { top: Top },
    createGraph: (inputs) => ({ ranked: inputs.events.map(ByGroup).reduce(Sum).map(Ranked) }),
  };
};

// ---- items: KEYS items of ~100 bytes; resource probe {key} = the one-key slice
const itemValue = (i) => ({
  id: i,
  name: `item-${String(i).padStart(8, "0")}`,
  tags: ["alpha", "beta"],
  pad: "x".repeat(40),
});
class Probe {
  constructor(params) {
    this.key = params.key;
  }
  instantiate(collections) {
    return collections.items.slice(this.key, this.key);
  }
}
const items = () => {
  const rows = [];
  for (let i = 0; i < KEYS; i++) rows.push([i, [itemValue(i)]]);
  return {
    initialData: { items: rows },
    resources: { probe: Probe },
    createGraph: (inputs) => ({ items: inputs.items }),
  };
};

// ---- hackernews: examples/hackernews.py
class UpvotesByPost {
  mapEntry(key, values) {
    const out = [];
    for (const u of values) out.push([u.post, u.user]);
    return out;
  }
}
class RankedPosts {
  constructor(counts, users) {
    this.counts = counts;
    this.users = users;
  }
  mapEntry(key, values) {
    const post = values.getUnique();
    const upvotes = this.counts.getUnique(key, { ifNone: 0 });
    const author = this.users.getUnique(post.author ?? null, { ifNone: { name: "anonymous" } });
    return [
      [
        [-upvotes, key],
        { ...post, id: key, upvotes, author_name: author.name ?? "anonymous" },
      ],
    ];
  }
}
class FlagUpvoted {
  constructor(sessions, upvoters, sessionId) {
    this.sessions = sessions;
    this.upvoters = upvoters;
    this.sessionId = sessionId;
  }
  mapEntry(key, values) {
    const session = this.sessions.getUnique(this.sessionId, { ifNone: null });
    const user = session && typeof session === "object" ? session.user : null;
    const post = values.getUnique();
    const voted = user != null && this.upvoters.getArray(post.id).includes(user);
    return [[key, { ...post, upvoted: voted }]];
  }
}
class SessionUser {
  constructor(users) {
    this.users = users;
  }
  mapEntry(key, values) {
    const userId = values.getUnique().user;
    const user = this.users.getUnique(userId, { ifNone: null });
    return user === null ? [] : [[key, { user_id: userId, ...user }]];
  }
}
class TopPosts {
  constructor(params) {
    this.limit = params.limit ?? 10;
    this.sessionId = params.session_id ?? null;
  }
  instantiate(c) {
    const top = c.ranked.take(this.limit);
    if (this.sessionId === null) return top;
    return top.map(FlagUpvoted, c.sessions, c.upvoters, this.sessionId);
  }
}
class CurrentSession {
  constructor(params) {
    this.sessionId = params.session_id;
  }
  instantiate(c) {
    return c.sessions.slice(this.sessionId, this.sessionId).map(SessionUser, c.users);
  }
}
const hackernews = () => {
  const users = [["alice", "Alice"], ["bob", "Bob"], ["carol", "Carol"], ["dave", "Dave"]];
  return {
    initialData: {
      posts: [
        ["p1", [{ title: "Skip: reactive services", url: "https://skiplabs.io", author: "alice" }]],
        ["p2", [{ title: "Redis Streams explained", url: "https://redis.io", author: "bob" }]],
        ["p3", [{ title: "Server-Sent Events in practice", url: "https://example.com/sse", author: "carol" }]],
        ["p4", [{ title: "Incremental computation 101", url: "https://example.com/inc", author: "dave" }]],
      ],
      users: users.map(([k, name]) => [k, [{ name }]]),
      upvotes: [
        ["u1", [{ post: "p1", user: "bob" }]],
        ["u2", [{ post: "p1", user: "carol" }]],
        ["u3", [{ post: "p2", user: "alice" }]],
      ],
      sessions: users.map(([k]) => [`session-${k}`, [{ user: k }]]),
    },
    resources: { posts: TopPosts, session: CurrentSession },
    createGraph: (inputs) => {
      const upvoters = inputs.upvotes.map(UpvotesByPost);
      const counts = upvoters.reduce(Count);
      return {
        ranked: inputs.posts.map(RankedPosts, counts, inputs.users),
        upvoters,
        users: inputs.users,
        sessions: inputs.sessions,
      };
    },
  };
};

const WORKLOADS = { wide, items, hackernews };
const make = WORKLOADS[workload];
if (!make) {
  console.error(`unknown workload ${workload}; one of ${Object.keys(WORKLOADS).join(", ")}`);
  process.exit(2);
}
await runService(make(), {
  control_port: Number(controlPort),
  streaming_port: Number(streamingPort),
});
