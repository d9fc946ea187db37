// Camera page: score timeline with the threshold, a clicked point's frame, the camera's alerts.
import {
  $, h, s, api, clock, fmt, fmtAge, fmtTime, frameView, header, live, overlayMode, query, verdictWord,
} from "/static/common.js";

const camera = new URLSearchParams(location.search).get("id") || "";
let config = {};
let mode = overlayMode();
let points = [];
let selected = null; // stream entry id
let minutes = 10;
let state = null;
let fetching = false;
let again = false;

$("#title").textContent = camera;
document.title = `linewatch · ${camera}`;

function renderNow() {
  const word = verdictWord(state, config.stale_s * 1000, clock.now());
  const badge = $("#now");
  badge.textContent = word;
  badge.className = `verdict ${word.toLowerCase().replace(" ", "")}`;
  if (!state) return;
  $("#now-score").textContent = `score ${fmt(state.score)} / threshold ${fmt(state.threshold)}`;
  $("#now-model").textContent = state.model;
  $("#now-age").textContent = state.published_ms === null ? "" : fmtAge(clock.now() - state.published_ms);
}

// ---- timeline ----
const W = () => Math.max(320, $("#timeline").clientWidth);
const H = 220, PAD = { l: 40, r: 10, t: 10, b: 24 };

function renderTimeline() {
  const width = W();
  const end = clock.now(), windowStart = end - minutes * 60_000;
  points = points.filter((p) => p.t >= windowStart);
  // A camera younger than the window gets the whole width rather than a sliver at the right edge.
  const start = points.length ? Math.max(windowStart, Math.min(points[0].t, end - 10_000) - 1000) : windowStart;
  const top = Math.max(1, ...points.map((p) => p.score ?? 0), ...points.map((p) => p.threshold ?? 0));
  const x = (t) => PAD.l + ((t - start) / (end - start)) * (width - PAD.l - PAD.r);
  const y = (v) => PAD.t + (1 - (v ?? 0) / top) * (H - PAD.t - PAD.b);
  const svg = s("svg", { width, height: H, class: "chart", role: "img", "aria-label": `scores of the last ${minutes} minutes` });
  for (const v of [0, 0.5, 1].filter((v) => v <= top)) {
    svg.append(s("line", { class: "grid", x1: PAD.l, x2: width - PAD.r, y1: y(v), y2: y(v) }),
      s("text", { class: "axis", x: 4, y: y(v) + 4 }, fmt(v, 1)));
  }
  for (const frac of [0, 0.5, 1]) {
    const t = start + frac * (end - start);
    svg.append(s("text", { class: "axis", x: x(t) - (frac === 1 ? 50 : frac === 0 ? 0 : 25), y: H - 6 }, fmtTime(t)));
  }
  if (points.length) {
    // Threshold as a step line: it can change at runtime (P:thresholds).
    let d = `M${x(points[0].t).toFixed(1)} ${y(points[0].threshold).toFixed(1)}`;
    for (const p of points.slice(1)) d += `H${x(p.t).toFixed(1)}V${y(p.threshold).toFixed(1)}`;
    svg.append(s("path", { class: "threshold", d: `${d}H${x(end).toFixed(1)}` }));
    svg.append(s("polyline", { class: "scoreline", points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ") }));
  }
  // Anomalous marks last, so they stay on top (and clickable) where points crowd together.
  for (const p of [...points.filter((q) => !q.anomalous), ...points.filter((q) => q.anomalous)]) {
    const cx = x(p.t), cy = y(p.score);
    const mark = p.anomalous
      ? s("path", { d: `M${cx} ${cy - 6}L${cx + 5.5} ${cy + 4}L${cx - 5.5} ${cy + 4}Z`, class: "pt anomalous" })
      : s("circle", { cx, cy, r: 3, class: "pt normal" });
    mark.dataset.id = p.id;
    if (p.id === selected) mark.classList.add("selected");
    mark.append(s("title", {}, `${fmtTime(p.t)} score ${fmt(p.score)}${p.anomalous ? " anomalous" : ""}`));
    mark.addEventListener("click", () => openEntry(p.id));
    svg.append(mark);
  }
  $("#timeline").replaceChildren(svg);
  const bad = points.filter((p) => p.anomalous).length;
  $("#points").textContent = `${points.length} frames, ${bad} anomalous`;
}

// Live points arrive every push interval; redrawing up to thousands of marks is kept to once a second.
let renderTimer = null;
function scheduleRender() {
  if (renderTimer === null) renderTimer = setTimeout(() => { renderTimer = null; renderTimeline(); }, 1000);
}

async function loadHistory(full) {
  if (fetching) { again = true; return; }
  fetching = true;
  try {
    const after = !full && points.length ? points[points.length - 1].id : "";
    const data = await api("/api/history", { camera, minutes, after });
    clock.seen(data.now_ms);
    points = full ? data.points : points.concat(data.points);
    if (full) renderTimeline(); else scheduleRender();
  } catch (err) {
    $("#timeline").replaceChildren(h("p", { class: "error" }, `timeline: ${err.message}`));
  } finally {
    fetching = false;
    if (again) { again = false; loadHistory(false); }
  }
}

// ---- the selected frame ----
async function openEntry(id) {
  selected = id;
  document.querySelectorAll(".pt.selected").forEach((el) => el.classList.remove("selected"));
  document.querySelector(`.pt[data-id="${CSS.escape(id)}"]`)?.classList.add("selected");
  const box = $("#detail");
  let e;
  try {
    e = await api("/api/entry", { camera, id });
  } catch (err) {
    box.replaceChildren(h("p", { class: "error" }, `frame: ${err.message}`));
    return;
  }
  const kept = e.frame_kept;
  const overlayKept = e.heat_kept || e.mask_kept;
  const view = frameView({
    frameSrc: kept ? `/img/frame?${query({ camera, frame_id: e.frame_id })}` : "",
    overlaySrc: overlayKept && mode !== "off" ? `/img/overlay?${query({ camera, frame_id: e.frame_id, mode })}` : "",
    boxes: e.boxes, mapSize: e.map_size,
    missingText: e.anomalous ? "frame image expired" : "only anomalous frames keep their image",
  });
  const rows = [
    ["verdict", e.anomalous ? "NG (anomalous)" : "OK"], ["time", fmtTime(e.t)], ["frame", e.frame_id], ["seq", e.seq],
    ["score / threshold", `${fmt(e.score, 3)} / ${fmt(e.threshold, 3)}`], ["raw score", fmt(e.score_raw, 4)],
    ["model", e.model], ["latency", e.latency_ms === null ? "–" : `${fmt(e.latency_ms, 1)} ms`],
    ["boxes", e.boxes.length ? e.boxes.map((b) => `[${b.join(", ")}]`).join(" ") : "none"],
    ["worker", e.worker], ["part", e.part || "–"], ["operator verdict", e.verdict ?? "–"],
  ];
  box.replaceChildren(
    h("h2", {}, `Frame ${e.frame_id}`), view,
    h("table", { class: "fields" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))));
  box.dataset.id = id;
}

// At 8 fps points crowd together: step through the anomalous ones instead of aiming at them.
function stepAnomalous(direction) {
  const bad = points.filter((p) => p.anomalous);
  if (!bad.length) return;
  const at = bad.findIndex((p) => p.id === selected);
  const next = at < 0 ? (direction < 0 ? bad.length - 1 : 0) : Math.max(0, Math.min(bad.length - 1, at + direction));
  openEntry(bad[next].id);
}

// ---- alerts of this camera ----
async function loadAlerts() {
  const data = await api("/api/alerts", { camera, limit: 50 });
  const body = $("#alerts tbody");
  body.replaceChildren(...data.alerts.map((a) => h("tr", {},
    h("td", {}, fmtTime(a.t)), h("td", {}, a.frame_id),
    h("td", {}, `${fmt(a.score)} / ${fmt(a.threshold)}`),
    h("td", {}, a.verdict === null ? h("a", { href: "/review" }, "pending review") : a.verdict.replace("_", " ")))));
  $("#no-alerts").hidden = data.alerts.length > 0;
}

header("camera", (m) => {
  mode = m;
  if (selected) openEntry(selected);
});
config = await api("/api/config");
minutes = config.timeline_minutes;
const select = $("#minutes");
if (![...select.options].some((o) => Number(o.value) === minutes)) select.append(h("option", { value: minutes }, `${minutes} min`));
select.value = String(minutes);
select.addEventListener("change", () => { minutes = Number(select.value); loadHistory(true); });
window.addEventListener("resize", renderTimeline);
$("#prev-bad").addEventListener("click", () => stepAnomalous(-1));
$("#next-bad").addEventListener("click", () => stepAnomalous(1));
await loadHistory(true);
loadAlerts();
let lastAlerts = "";
live({
  snapshot(data) {
    state = data.cameras.find((c) => c.camera === camera) ?? null;
    renderNow();
  },
  update(data) {
    const mine = data.cameras.find((c) => c.camera === camera);
    if (mine) {
      state = mine;
      loadHistory(false);
    }
    if (data.alerts && data.alerts.version !== lastAlerts) {
      lastAlerts = data.alerts.version;
      loadAlerts();
    }
    renderNow();
  },
});
