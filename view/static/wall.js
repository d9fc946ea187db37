// Camera wall: one tile per camera, updated in place from the live feed, with each camera's counts,
// a summary bar, and alarms (alerts nobody judged or acknowledged) that stay until acknowledged.
// /?cameras=a,b or /?layout=<name> (LW_VIEW_LAYOUTS) shows only those cameras (a station's screen).
import {
  $, h, api, post, clock, cameraUrl, fmt, fmtAge, header, live, overlayMode, query, scoreBar, setPending,
  setScoreBar, verdictWord, LatestImage,
} from "/static/common.js";

const tiles = new Map(); // camera -> tile
let config = { stale_s: 10, layouts: {} };
let mode = overlayMode();
let chosen = null; // Set of cameras this screen shows, or null: all
let alarms = new Map(); // camera -> newest alarm
let heard = null; // alert ids already announced (null until the first summary: old alarms do not beep)
let shift = null;

const META_PX = 118; // a tile's text below its square frame (verdict, score, counts, model)
const GAP_PX = 10;
const MIN_TILE_PX = 150;

function choose() {
  const params = new URLSearchParams(location.search);
  const layout = params.get("layout");
  const listed = (params.get("cameras") || "").split(",").map((c) => c.trim()).filter(Boolean);
  if (layout && config.layouts[layout]) listed.push(...config.layouts[layout]);
  chosen = listed.length ? new Set(listed) : null;
}
const shown = (camera) => chosen === null || chosen.has(camera);

// Columns and tile width that fit n tiles into the space below the bars without scrolling, as
// large as possible; below MIN_TILE_PX per tile the wall scrolls instead.
function fit(n) {
  const wall = $("#wall");
  const width = wall.clientWidth;
  const height = window.innerHeight - wall.getBoundingClientRect().top - 12;
  let best = { cols: 1, size: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols += 1) {
    const rows = Math.ceil(n / cols);
    const size = Math.floor(Math.min((width - GAP_PX * (cols - 1)) / cols,
      (height - GAP_PX * (rows - 1)) / rows - META_PX));
    if (size > best.size) best = { cols, size };
  }
  if (best.size < MIN_TILE_PX) {
    wall.style.gridTemplateColumns = `repeat(auto-fill, minmax(${MIN_TILE_PX}px, 1fr))`;
  } else {
    wall.style.gridTemplateColumns = `repeat(${best.cols}, ${best.size}px)`;
  }
}

// The banner and the summary bar come and go (and wrap): fit again when the wall moved.
let fittedTop = null;
function refit() {
  const top = $("#wall").getBoundingClientRect().top;
  if (top !== fittedTop) {
    fittedTop = top;
    fit(tiles.size);
  }
}

function makeTile(camera) {
  const shot = h("img", { class: "shot", alt: `latest frame of ${camera}` });
  const over = h("img", { class: "overlay", alt: "" });
  const bar = scoreBar();
  const ack = h("button", { class: "ack", type: "button", on: { click: () => acknowledge(camera) } }, "Acknowledge");
  const t = {
    camera, state: null, bar,
    el: h("article", { class: "tile nodata", data: { camera } },
      h("a", { class: "frame-link", href: cameraUrl(camera), title: `open ${camera}` },
        h("div", { class: "frame" }, shot, over, h("div", { class: "noimg" }, "no preview"))),
      h("div", { class: "alarm-marker", role: "alert", hidden: true },
        h("span", { class: "alarm-text" }, ""), ack),
      h("div", { class: "meta" },
        h("div", { class: "row" },
          h("span", { class: "verdict" }, "NO DATA"),
          h("a", { class: "cam", href: cameraUrl(camera) }, camera)),
        h("div", { class: "row" }, bar.el, h("span", { class: "score" }, "–")),
        h("div", { class: "row small counts", title: "this shift: frames, OK, NG, reject rate; frames/s of the last minute" },
          h("span", { class: "c-frames" }, ""), h("span", { class: "c-ok" }, ""), h("span", { class: "c-ng" }, ""),
          h("span", { class: "c-rate" }, ""), h("span", { class: "c-fps" }, "")),
        h("div", { class: "row small" }, h("span", { class: "model" }, ""), h("span", { class: "part" }, ""),
          h("span", { class: "age" }, "")))),
  };
  t.frame = t.el.querySelector(".frame");
  t.shot = new LatestImage(shot, (ok) => t.frame.classList.toggle("no-frame", !ok));
  t.over = new LatestImage(over);
  return t;
}

function orderWall() {
  const wall = $("#wall");
  const names = [...tiles.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  wall.replaceChildren(...names.map((name) => tiles.get(name).el));
  $("#empty").hidden = names.length > 0;
  if (!names.length && chosen) $("#empty").textContent = `None of the chosen cameras (${[...chosen].join(", ")}) has sent a result yet.`;
  fit(names.length);
}

function setImages(t) {
  const v = t.state.preview;
  t.shot.want(v ? `/img/preview?${query({ camera: t.camera, v })}` : "");
  t.over.want(v && mode !== "off" ? `/img/overlay?${query({ camera: t.camera, mode, v })}` : "");
}

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`);

function renderCounts(t) {
  const c = t.state.counts;
  const q = (sel, text) => { t.el.querySelector(sel).textContent = text; };
  if (!c) return;
  q(".c-frames", `${c.shift.frames} frames`);
  q(".c-ok", `OK ${c.shift.ok}`);
  q(".c-ng", `NG ${c.shift.ng}`);
  q(".c-rate", pct(c.shift.reject_rate));
  q(".c-fps", `${fmt(c.fps, 1)} fps`);
}

function render(t) {
  const st = t.state;
  const word = verdictWord(st, config.stale_s * 1000, clock.now());
  const alarm = alarms.get(t.camera);
  t.el.className = `tile ${word.toLowerCase().replace(" ", "")}${alarm ? " alarm" : ""}`;
  t.el.querySelector(".verdict").textContent = word;
  t.el.querySelector(".score").textContent = `${fmt(st.score)} / ${fmt(st.threshold)}`;
  t.el.querySelector(".score").title = "normalised score / threshold";
  setScoreBar(t.bar, st.score, st.threshold);
  t.el.querySelector(".model").textContent = st.recipe ? `${st.recipe} · ${st.model}` : st.model;
  t.el.querySelector(".part").textContent = st.part ? `part ${st.part}` : "";
  t.el.querySelector(".age").textContent = st.published_ms === null ? "" : fmtAge(clock.now() - st.published_ms);
  const marker = t.el.querySelector(".alarm-marker");
  marker.hidden = !alarm;
  if (alarm) {
    marker.querySelector(".alarm-text").textContent =
      `ALARM · ${alarm.count} alert${alarm.count > 1 ? "s" : ""} · ${fmtAge(clock.now() - alarm.t)}`;
  }
  renderCounts(t);
}

function summarise() {
  const sum = { frames: 0, ok: 0, ng: 0, fps: 0, hf: 0, hng: 0, n: 0 };
  tiles.forEach((t) => {
    const c = t.state?.counts;
    if (!c) return;
    sum.n += 1;
    sum.frames += c.shift.frames; sum.ok += c.shift.ok; sum.ng += c.shift.ng; sum.fps += c.fps;
    sum.hf += c.hour.frames; sum.hng += c.hour.ng;
  });
  const bar = $("#summary");
  const item = (cls, label, value) => h("span", { class: `sum ${cls}` }, h("span", { class: "label" }, label),
    h("span", { class: "value" }, value));
  bar.replaceChildren(...[
    item("s-shift", "Shift", shift ? `${shift.id.replace("T", " ")}` : "–"),
    item("s-frames", "Frames", String(sum.frames)),
    item("s-ok", "OK", String(sum.ok)),
    item("s-ng", "NG", String(sum.ng)),
    item("s-rate", "Reject rate", pct(sum.frames ? sum.ng / sum.frames : null)),
    item("s-fps", "Frames/s", fmt(sum.fps, 1)),
    item("s-hour", "Last hour", `${sum.hf} frames · NG ${sum.hng} · ${pct(sum.hf ? sum.hng / sum.hf : null)}`),
    shift ? h("a", { class: "csv", href: `/api/shift.csv?${query({ shift: shift.id })}`, download: "" }, "Shift CSV") : null,
    chosen ? h("span", { class: "station" }, `station: ${[...chosen].join(", ")} · `, h("a", { href: "/" }, "all cameras")) : null,
    soundToggle(),
  ].filter(Boolean));
}

// Browser-side sound for new alarms: off until the operator turns it on (remembered by the browser).
function soundToggle() {
  const box = h("input", { type: "checkbox", id: "sound" });
  box.checked = localStorage.getItem("lw-sound") === "on";
  box.addEventListener("change", () => localStorage.setItem("lw-sound", box.checked ? "on" : "off"));
  return h("label", { class: "sound", for: "sound" }, box, "Sound");
}

function beep() {
  if (localStorage.getItem("lw-sound") !== "on") return;
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
  } catch (err) {
    // No audio device or autoplay refused before any click: the banner still shows the alarm.
  }
}

function renderBanner() {
  const banner = $("#banner");
  const list = [...alarms.values()].filter((a) => shown(a.camera));
  banner.hidden = list.length === 0;
  banner.replaceChildren(
    h("strong", {}, `${list.length === 1 ? "Alarm" : `${list.length} alarms`}: `),
    ...list.map((a) => h("span", { class: "banner-item", data: { camera: a.camera } },
      h("a", { href: cameraUrl(a.camera) }, a.camera), ` score ${fmt(a.score)} · ${fmtAge(clock.now() - a.t)} `,
      h("button", { class: "ack", type: "button", on: { click: () => acknowledge(a.camera) } }, "Acknowledge"))),
    h("a", { class: "to-review", href: "/review" }, "review"),
  );
}

function setAlarms(summary) {
  const list = (summary.alarms || []).filter((a) => shown(a.camera));
  alarms = new Map(list.map((a) => [a.camera, a]));
  const fresh = heard !== null && list.some((a) => !heard.has(a.id));
  heard = new Set(list.map((a) => a.id));
  if (fresh) beep();
  renderBanner();
  tiles.forEach((t) => t.state && render(t));
}

async function acknowledge(camera) {
  const reply = await post("/api/acknowledge", { camera });
  setAlarms({ alarms: reply.alarms });
}

function apply(states) {
  let added = false;
  for (const st of states) {
    if (!shown(st.camera)) continue;
    let t = tiles.get(st.camera);
    if (!t) {
      t = makeTile(st.camera);
      tiles.set(st.camera, t);
      added = true;
    }
    t.state = st;
    render(t);
    setImages(t);
  }
  if (added) orderWall();
}

function remove(cameras) {
  for (const c of cameras) {
    tiles.get(c)?.el.remove();
    tiles.delete(c);
  }
  if (cameras.length) orderWall();
}

header("wall", (m) => {
  mode = m;
  tiles.forEach(setImages);
});
config = await api("/api/config");
choose();
window.addEventListener("resize", () => fit(tiles.size));
live({
  snapshot(data) {
    shift = data.shift;
    remove([...tiles.keys()].filter((c) => !data.cameras.some((s) => s.camera === c)));
    apply(data.cameras);
    setPending(data.alerts.pending);
    setAlarms(data.alerts);
    summarise();
    refit();
  },
  update(data) {
    shift = data.shift || shift;
    remove(data.removed);
    apply(data.cameras);
    if (data.alerts) setAlarms(data.alerts);
    tiles.forEach((t) => render(t)); // ages and STALE move on even when nothing arrives
    renderBanner();
    summarise();
    refit();
  },
});
