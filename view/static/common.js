// Shared by the three pages. Every value that came from Redis is inserted as text (textContent,
// createTextNode) or as an attribute set through the DOM, never parsed as markup: camera ids and
// model names are chosen by senders. The server's Content-Security-Policy backs this up.

export const $ = (selector, root = document) => root.querySelector(selector);

// h("div", {class: "x", data: {camera: id}}, "text", child) -> element
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

// SVG element with attributes (numbers and plain strings only).
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function applyProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "data") Object.assign(el.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k.startsWith("on")) throw new Error("use props.on for handlers");
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

export async function api(path, params = {}) {
  const reply = await fetch(`${path}?${query(params)}`, { headers: { accept: "application/json" } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.error || `${reply.status} ${reply.statusText}`);
  return body;
}

export async function post(path, data) {
  const reply = await fetch(path, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data),
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.error || `${reply.status} ${reply.statusText}`);
  return body;
}

// The server's clock: ages compare worker timestamps with the server's time, not the browser's.
export const clock = {
  offset: 0,
  seen(serverMs) { this.offset = serverMs - Date.now(); },
  now() { return Date.now() + this.offset; },
};

export function fmtAge(ms) {
  if (ms === null || ms === undefined) return "no time";
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return "now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

export const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

export function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export const cameraUrl = (camera) => `/camera?${query({ id: camera })}`;

// Overlay mode, shared by all pages and remembered by the browser.
const MODES = ["heat", "mask", "outline", "off"];
const LABELS = { heat: "Heatmap", mask: "Mask", outline: "Outline", off: "Off" };
export function overlayMode() {
  const saved = localStorage.getItem("lw-overlay");
  return MODES.includes(saved) ? saved : "heat";
}

export function modeSwitch(onChange) {
  const box = h("fieldset", { class: "modes", "aria-label": "overlay" }, h("legend", {}, "Overlay"));
  for (const mode of MODES) {
    const input = h("input", { type: "radio", name: "overlay", value: mode, id: `mode-${mode}` });
    input.checked = mode === overlayMode();
    input.addEventListener("change", () => {
      localStorage.setItem("lw-overlay", mode);
      onChange(mode);
    });
    box.append(h("label", { for: `mode-${mode}` }, input, LABELS[mode]));
  }
  return box;
}

// Page header: navigation, overlay switch, connection state and pending alerts.
export function header(active, onMode) {
  const nav = h("nav", {},
    h("a", { href: "/", class: active === "wall" ? "active" : "" }, "Camera wall"),
    h("a", { href: "/review", class: active === "review" ? "active" : "", id: "review-link" },
      "Alert review ", h("span", { id: "pending", class: "badge" }, "0")),
    h("a", { href: "/part", class: active === "part" ? "active" : "" }, "Part search"),
    h("a", { href: "/recipes", class: active === "recipes" ? "active" : "" }, "Recipes"),
    h("a", { href: "/shadow", class: active === "shadow" ? "active" : "" }, "Shadow"));
  const bar = h("header", { class: "top" },
    h("span", { class: "brand" }, "linewatch"), nav,
    onMode ? modeSwitch(onMode) : null,
    h("span", { id: "conn", class: "conn", role: "status" }, "connecting…"));
  document.body.prepend(bar);
}

export function setPending(n) {
  const badge = $("#pending");
  if (badge) {
    badge.textContent = String(n);
    badge.classList.toggle("hot", n > 0);
  }
}

function setConnection(ok, text) {
  const conn = $("#conn");
  if (!conn) return;
  conn.textContent = text;
  conn.classList.toggle("down", !ok);
}

// The live feed: snapshot first, then coalesced updates; EventSource reconnects by itself and the
// server answers a reconnect with a fresh snapshot.
export function live({ snapshot, update }) {
  const source = new EventSource("/api/events");
  const handle = (fn) => (event) => {
    const data = JSON.parse(event.data);
    clock.seen(data.now_ms);
    setConnection(data.redis_ok, data.redis_ok ? "live" : "Redis unreachable: last known state");
    if (data.alerts) setPending(data.alerts.pending);
    fn(data);
  };
  source.addEventListener("snapshot", handle(snapshot));
  source.addEventListener("update", handle(update));
  source.addEventListener("error", () => setConnection(false, "disconnected: reconnecting…"));
  return source;
}

// An <img> that loads at most one version at a time: while one loads, only the newest requested
// version is remembered, so a slow network skips frames instead of queueing them.
export class LatestImage {
  constructor(img, onState = () => {}) {
    this.img = img;
    this.onState = onState;
    this.loading = false;
    this.wanted = null;
    this.shown = null;
    img.addEventListener("load", () => this.done(true));
    img.addEventListener("error", () => this.done(false));
  }
  want(url) {
    this.wanted = url;
    if (!this.loading) this.next();
  }
  next() {
    if (this.wanted === null || this.wanted === this.shown) return;
    this.loading = true;
    this.shown = this.wanted;
    if (this.wanted === "") {
      this.img.removeAttribute("src");
      this.done(false);
      return;
    }
    this.img.src = this.wanted;
  }
  done(ok) {
    this.loading = false;
    this.img.classList.toggle("missing", !ok);
    this.onState(ok);
    this.next();
  }
}

// A frame with its overlay and boxes stacked over it. `mapSize` = [w, h] of the model map the
// boxes are measured in; `frameSrc` may be "" when the frame image is not kept.
export function frameView({ frameSrc, overlaySrc, boxes = [], mapSize = null, missingText = "" }) {
  const wrap = h("div", { class: "frame" });
  const shot = h("img", { class: "shot", alt: "" });
  const over = h("img", { class: "overlay", alt: "" });
  const note = h("div", { class: "noimg" }, missingText || "frame not kept");
  wrap.append(shot, over, note);
  if (frameSrc) {
    shot.src = frameSrc;
    shot.addEventListener("error", () => wrap.classList.add("no-frame"));
  } else {
    wrap.classList.add("no-frame");
  }
  if (overlaySrc) {
    over.src = overlaySrc;
    over.addEventListener("error", () => over.classList.add("missing"));
  } else {
    over.classList.add("missing");
  }
  if (mapSize && boxes.length) {
    const [w, hgt] = mapSize;
    const layer = s("svg", { class: "boxes", viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none" });
    for (const [x, y, bw, bh] of boxes) {
      layer.append(s("rect", { x, y, width: bw, height: bh, "vector-effect": "non-scaling-stroke" }));
    }
    wrap.append(layer);
  }
  return wrap;
}

export function verdictWord(state, staleMs, now) {
  if (!state || state.published_ms === null) return "NO DATA";
  if (now - state.published_ms > staleMs) return "STALE";
  return state.anomalous ? "NG" : "OK";
}

// Score bar: the fill is the score, the tick the threshold, both on 0..1 (scores above 1 are clipped).
export function scoreBar() {
  const fill = h("span", { class: "fill" });
  const tick = h("span", { class: "thr" });
  return { el: h("span", { class: "scorebar", "aria-hidden": "true" }, fill, tick), fill, tick };
}

export function setScoreBar(bar, score, threshold) {
  const pct = (x) => `${Math.max(0, Math.min(1, x ?? 0)) * 100}%`;
  bar.fill.style.width = pct(score);
  bar.tick.style.left = pct(threshold);
}
