// Camera wall: one tile per camera, updated in place from the live feed.
import {
  $, h, api, clock, cameraUrl, fmt, fmtAge, header, live, overlayMode, query, scoreBar, setPending,
  setScoreBar, verdictWord, LatestImage,
} from "/static/common.js";

const tiles = new Map(); // camera -> tile
let config = { stale_s: 10 };
let mode = overlayMode();

// Tile size follows the number of cameras, so 1 camera fills the screen and 64 still fit.
function sizeFor(n) {
  if (n <= 1) return "640px";
  if (n <= 4) return "420px";
  if (n <= 9) return "320px";
  if (n <= 16) return "250px";
  if (n <= 36) return "190px";
  return "150px";
}

function makeTile(camera) {
  const shot = h("img", { class: "shot", alt: `latest frame of ${camera}` });
  const over = h("img", { class: "overlay", alt: "" });
  const bar = scoreBar();
  const t = {
    camera, state: null, bar,
    el: h("article", { class: "tile nodata", data: { camera } },
      h("a", { class: "frame-link", href: cameraUrl(camera), title: `open ${camera}` },
        h("div", { class: "frame" }, shot, over, h("div", { class: "noimg" }, "no preview"))),
      h("div", { class: "meta" },
        h("div", { class: "row" },
          h("span", { class: "verdict" }, "NO DATA"),
          h("a", { class: "cam", href: cameraUrl(camera) }, camera)),
        h("div", { class: "row" }, bar.el, h("span", { class: "score" }, "–")),
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
  names.forEach((name) => wall.append(tiles.get(name).el));
  document.documentElement.style.setProperty("--tile", sizeFor(names.length));
  $("#empty").hidden = names.length > 0;
}

function setImages(t) {
  const v = t.state.preview;
  t.shot.want(v ? `/img/preview?${query({ camera: t.camera, v })}` : "");
  t.over.want(v && mode !== "off" ? `/img/overlay?${query({ camera: t.camera, mode, v })}` : "");
}

function render(t) {
  const st = t.state;
  const word = verdictWord(st, config.stale_s * 1000, clock.now());
  t.el.className = `tile ${word.toLowerCase().replace(" ", "")}`;
  t.el.querySelector(".verdict").textContent = word;
  t.el.querySelector(".score").textContent = `${fmt(st.score)} / ${fmt(st.threshold)}`;
  t.el.querySelector(".score").title = "normalised score / threshold";
  setScoreBar(t.bar, st.score, st.threshold);
  t.el.querySelector(".model").textContent = st.model;
  t.el.querySelector(".part").textContent = st.part ? `part ${st.part}` : "";
  t.el.querySelector(".age").textContent = st.published_ms === null ? "" : fmtAge(clock.now() - st.published_ms);
}

function apply(states) {
  let added = false;
  for (const st of states) {
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
live({
  snapshot(data) {
    remove([...tiles.keys()].filter((c) => !data.cameras.some((s) => s.camera === c)));
    apply(data.cameras);
    setPending(data.alerts.pending);
  },
  update(data) {
    remove(data.removed);
    apply(data.cameras);
    tiles.forEach((t) => render(t)); // ages and STALE move on even when nothing arrives
  },
});
