// The cluster status page (/_skiff/): renders the proxy's `status` events (proxy/status.py).
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const HISTORY = 120; // samples, one a second
const COLORS = ["#0969da", "#e8590c", "#1a7f37", "#8250df", "#bf3989", "#9a6700"];
const history = []; // [{time_ms, lags: {node_id: versions|null}}]
const colors = new Map();

function colorOf(nodeId) {
  if (!colors.has(nodeId)) colors.set(nodeId, COLORS[colors.size % COLORS.length]);
  return colors.get(nodeId);
}

function ago(now, then) {
  if (!then) return "never";
  const ms = Math.max(0, now - then);
  if (ms < 10000) return `${ms} ms ago`;
  if (ms < 3600000) return `${Math.floor(ms / 1000)} s ago`;
  return `${Math.floor(ms / 3600000)} h ago`;
}

function text(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function stateOf(node) {
  if (!node.alive) return "gone";
  if (node.draining) return "draining";
  if (node.serving || node.ready) return "serving";
  return "not-ready";
}

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = text(content);
  return td;
}

function render(status) {
  const now = status.time_ms;
  $("service").textContent = status.service ?? "";
  const redis = $("redis");
  redis.textContent = status.redis.ok ? "reachable" : "unreachable";
  redis.className = `value ${status.redis.ok ? "ok" : "bad"}`;
  redis.title = status.redis.error ?? "";
  document.body.dataset.redis = status.redis.ok ? "ok" : "down";

  const leader = status.leader;
  $("leader").textContent = leader ? leader.node_id : "none";
  $("leader").className = `value ${leader ? "" : "bad"}`;
  $("term").textContent = leader && leader.term !== null ? `term ${leader.term}` : "";
  $("epoch").textContent = text(status.epoch);
  $("head").textContent = text(status.head);
  $("head-age").textContent = status.head_ms ? `published ${ago(now, status.head_ms)}` : "";

  const nodes = status.nodes;
  const alive = nodes.filter((n) => n.alive);
  $("alive").textContent = `${alive.length} / ${nodes.length}`;
  const followers = alive.filter((n) => n.role === "follower");
  $("node-summary").textContent = `alive · ${followers.length} follower${followers.length === 1 ? "" : "s"}`;

  const rows = nodes.map((node) => {
    const tr = document.createElement("tr");
    const state = stateOf(node);
    tr.dataset.nodeId = node.node_id;
    tr.dataset.state = state;
    tr.dataset.role = node.role ?? "";
    tr.dataset.lag = node.alive && node.lag_versions !== null ? String(node.lag_versions) : "";
    const pill = document.createElement("span");
    pill.className = `pill ${state}`;
    pill.textContent = state.replace("-", " ");
    const name = document.createElement("span");
    name.textContent = node.node_id;
    if (node.role === "follower" || node.role === "leader") {
      const dot = document.createElement("i");
      dot.style.cssText = `display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:6px;background:${node.role === "follower" ? colorOf(node.node_id) : "#24292f"}`;
      name.prepend(dot);
    }
    const lag = node.lag_versions ?? (node.alive && node.epoch && node.epoch !== status.epoch ? `epoch ${node.epoch}` : null);
    tr.append(
      cell(name), cell(node.alive ? node.role : "gone"), cell(pill),
      cell(node.alive ? node.applied : null, "num"), cell(node.alive ? lag : null, "num"),
      cell(node.alive ? node.lag_ms : null, "num"), cell(node.alive ? node.streams : null, "num"),
      cell(node.alive ? node.instances : null, "num"), cell(node.alive ? node.readers : null, "num"),
      cell(node.alive ? node.url : null, "mono"), cell(ago(now, node.last_seen_ms)),
    );
    return tr;
  });
  $("nodes").replaceChildren(...rows);

  const lags = {};
  for (const node of nodes) {
    if (node.role === "follower" || (!node.alive && colors.has(node.node_id))) {
      lags[node.node_id] = node.alive ? node.lag_versions ?? null : null;
    }
  }
  history.push({ time_ms: now, lags });
  while (history.length > HISTORY) history.shift();
  drawChart();
}

function el(name, attrs, content) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (content !== undefined) node.textContent = content;
  return node;
}

function drawChart() {
  const svg = $("chart");
  const W = 800, H = 180, left = 36, bottom = 18, top = 8;
  const ids = [...new Set(history.flatMap((h) => Object.keys(h.lags)))].sort();
  let max = 1;
  for (const h of history) for (const v of Object.values(h.lags)) if (v !== null) max = Math.max(max, v);
  const parts = [];
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  // Until the window fills, the samples there are span the whole width.
  const span = Math.max(history.length, 30);
  const x = (i) => left + ((W - left - 4) * i) / (span - 1);
  for (const v of [0, max / 2, max]) {
    parts.push(el("line", { class: "grid", x1: left, x2: W, y1: y(v), y2: y(v) }));
    parts.push(el("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" },
      Number.isInteger(v) ? v : v.toFixed(1)));
  }
  parts.push(el("text", { class: "axis", x: left, y: H - 4 }, `${span} s ago`));
  parts.push(el("text", { class: "axis", x: W - 4, y: H - 4, "text-anchor": "end" }, "now"));
  const offset = span - history.length;
  for (const id of ids) {
    // A follower that is gone leaves a gap: one polyline per run of samples.
    let run = [];
    const flush = () => {
      if (run.length) parts.push(el("polyline", { points: run.join(" "), stroke: colorOf(id) }));
      run = [];
    };
    history.forEach((h, i) => {
      const v = h.lags[id];
      if (v === null || v === undefined) flush();
      else run.push(`${x(offset + i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
  }
  svg.replaceChildren(...parts);
  $("legend").replaceChildren(...ids.map((id) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = colorOf(id);
    span.append(swatch, id);
    return span;
  }));
}

function connect() {
  const live = $("live");
  const source = new EventSource("/_skiff/events");
  source.addEventListener("open", () => {
    live.dataset.state = "open";
    live.textContent = "live";
  });
  source.addEventListener("status", (event) => {
    live.dataset.state = "open";
    live.textContent = "live";
    render(JSON.parse(event.data));
    document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
  });
  source.addEventListener("error", () => {
    live.dataset.state = "lost";
    live.textContent = "proxy unreachable, retrying…";
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
}

connect();
