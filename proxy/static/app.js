// The hackernews example's front end (examples/hackernews.py), on skiff.js. Served by the proxy.
//
// Logging in asks the proxy's demo login (`POST /demo/login`, on under `make dev`) for a token:
// the streams, posts and upvotes then carry it, and the service takes the user from it. When
// the demo login is off (404) the page works as before, without tokens.
import { openStream, patchInput } from "/static/skiff.js";

const USERS = ["alice", "bob", "carol", "dave"];
const LIMIT = 30;
const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  posts: null, // SkiffStream of `posts {limit, session_id}`
  session: null, // SkiffStream of `session {session_id}`
  entries: [],
  previous: new Map(), // post id -> JSON of what was last rendered, to flash changes
  simulator: null,
  auth: null, // {user, token, expiresAt} while logged in with a token
};

// A token for the logged-in user, fetched again a minute before it expires; null without one.
async function tokenFor(user) {
  if (!user) return null;
  const now = Date.now() / 1000;
  if (state.auth && state.auth.user === user && state.auth.expiresAt - now > 60) {
    return state.auth.token;
  }
  const response = await fetch("/demo/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (response.status === 404) return null; // the demo login is off: no tokens
  if (!response.ok) throw new Error(`login failed: ${response.status}`);
  const body = await response.json();
  state.auth = { user, token: body.token, expiresAt: body.expires_at };
  return body.token;
}

function sessionOf(user) {
  return `session-${user}`;
}

function login(user) {
  state.user = USERS.includes(user) ? user : null;
  $("user").value = state.user ?? "";
  if (state.user) localStorage.setItem("skiff-news-user", state.user);
  else localStorage.removeItem("skiff-news-user");
  $("post-button").disabled = !state.user;
  for (const s of [state.posts, state.session]) if (s) s.close();
  const params = { limit: LIMIT };
  if (state.user) params.session_id = sessionOf(state.user);
  state.previous = new Map();
  const who = state.user;
  const token = () => tokenFor(who);
  state.posts = openStream("posts", params, { token });
  state.posts.onStatus(showConnection);
  state.posts.subscribe((entries, info) => {
    state.entries = entries;
    render(entries);
    $("stream-id").textContent = info.streamId ?? "–";
    $("event-id").textContent = info.run ? `${info.run}/${info.version}` : "–";
    document.body.dataset.version = info.version ?? "";
  });
  $("whoami").textContent = "";
  state.session = null;
  if (state.user) {
    state.session = openStream("session", { session_id: sessionOf(state.user) }, { token });
    state.session.subscribe((entries) => {
      const who = entries.length ? entries[0][1][0] : null;
      $("whoami").textContent = who ? who.name : "(no such session)";
    });
  }
}

function showConnection(status, error) {
  const conn = $("conn");
  conn.dataset.state = status;
  conn.textContent = error ? `${status}: ${error.message}` : status;
  document.body.dataset.connection = status;
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}

function render(entries) {
  const list = $("posts");
  const items = [];
  const seen = new Map();
  entries.forEach(([, values], index) => {
    const post = values[0];
    const json = JSON.stringify(post);
    seen.set(post.id, json);
    const li = document.createElement("li");
    li.className = "post";
    li.dataset.postId = post.id;
    li.dataset.upvotes = String(post.upvotes);
    li.dataset.upvoted = String(Boolean(post.upvoted));
    const old = state.previous.get(post.id);
    if (state.previous.size && old !== json) li.classList.add("changed");

    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `${index + 1}.`;

    const vote = document.createElement("button");
    vote.className = "vote";
    vote.type = "button";
    vote.textContent = "▲";
    vote.title = post.upvoted ? "un-upvote" : "upvote";
    vote.setAttribute("aria-pressed", String(Boolean(post.upvoted)));
    vote.disabled = !state.user;
    vote.addEventListener("click", () => toggleUpvote(post));

    const body = document.createElement("div");
    const title = document.createElement("div");
    title.className = "title";
    const link = document.createElement("a");
    link.textContent = post.title;
    if (post.url) link.href = post.url;
    link.rel = "noopener";
    title.append(link);
    const host = hostOf(post.url);
    if (host) {
      const h = document.createElement("span");
      h.className = "host";
      h.textContent = `(${host})`;
      title.append(h);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    const points = document.createElement("span");
    points.className = "points";
    points.textContent = `${post.upvotes} point${post.upvotes === 1 ? "" : "s"}`;
    meta.append(points, ` by ${post.author_name}`);
    body.append(title, meta);

    li.append(rank, vote, body);
    items.push(li);
  });
  list.replaceChildren(...items);
  state.previous = seen;
  // Let the highlight fade (the CSS transition runs when the class goes).
  requestAnimationFrame(() => setTimeout(() => {
    for (const li of list.querySelectorAll(".changed")) li.classList.remove("changed");
  }, 50));
}

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

async function toggleUpvote(post) {
  if (!state.user) return;
  const key = `${post.id}:${state.user}`;
  const values = post.upvoted ? [] : [{ post: post.id, user: state.user }];
  try {
    await patchInput("upvotes", [[key, values]], { token: await tokenFor(state.user) });
  } catch (err) {
    say(`could not vote: ${err.message}`, true);
  }
}

async function submitPost(event) {
  event.preventDefault();
  if (!state.user) return;
  const title = $("title").value.trim();
  const url = $("url").value.trim();
  if (!title) return;
  const id = `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  try {
    await patchInput("posts", [[id, [{ title, url, author: state.user }]]],
      { token: await tokenFor(state.user) });
    $("title").value = "";
    $("url").value = "";
    say(`submitted “${title}”`);
  } catch (err) {
    say(`could not submit: ${err.message}`, true);
  }
}

// "simulate activity": every 400 ms a random user upvotes (or, less often, un-upvotes) a random
// post of the list, so the ranking moves on its own.
function simulate(on) {
  clearInterval(state.simulator);
  state.simulator = null;
  if (!on) return;
  state.simulator = setInterval(async () => {
    if (!state.entries.length) return;
    const [, values] = state.entries[Math.floor(Math.random() * state.entries.length)];
    const post = values[0];
    const user = USERS[Math.floor(Math.random() * USERS.length)];
    const upvote = Math.random() < 0.65;
    try {
      await patchInput("upvotes", [[`${post.id}:${user}`, upvote ? [{ post: post.id, user }] : []]],
        { token: await tokenFor(state.user) });
    } catch (err) {
      say(`simulation: ${err.message}`, true);
    }
  }, 400);
}

$("user").addEventListener("change", (event) => login(event.target.value));
$("submit").addEventListener("submit", submitPost);
$("simulate").addEventListener("change", (event) => simulate(event.target.checked));

const requested = new URLSearchParams(location.search).get("user");
login(requested ?? localStorage.getItem("skiff-news-user"));
