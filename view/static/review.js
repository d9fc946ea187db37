// Alert review: the newest unjudged alerts; "confirmed defect" or "false alarm" (with a note)
// writes one entry to the feedback stream, and the alert leaves the queue.
import {
  $, h, api, post, cameraUrl, fmt, fmtTime, frameView, header, live, overlayMode, query, setPending,
} from "/static/common.js";

let config = {};
let mode = overlayMode();
const cards = new Map(); // alert stream id -> card element

function card(a) {
  const note = h("textarea", { class: "note", rows: 2, maxlength: config.note_max, placeholder: "note (optional)" });
  const status = h("p", { class: "status", role: "status" });
  const judge = (verdict) => async () => {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const reply = await post("/api/feedback", {
        camera: a.camera, frame_id: a.frame_id, verdict, note: note.value, user: $("#user").value,
      });
      setPending(reply.pending);
      cards.get(a.id)?.remove();
      cards.delete(a.id);
      $("#none").hidden = cards.size > 0;
    } catch (err) {
      status.textContent = `not saved: ${err.message}`;
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  const buttons = [
    h("button", { class: "confirm", type: "button", on: { click: judge("confirmed") } }, "Confirmed defect"),
    h("button", { class: "false-alarm", type: "button", on: { click: judge("false_alarm") } }, "False alarm"),
  ];
  const el = h("article", { class: "alert-card", data: { id: a.id, camera: a.camera, frameId: a.frame_id } },
    frameView({
      frameSrc: `/img/frame?${query({ camera: a.camera, frame_id: a.frame_id })}`,
      overlaySrc: mode === "off" ? "" : `/img/overlay?${query({ camera: a.camera, frame_id: a.frame_id, mode })}`,
      boxes: a.boxes, mapSize: a.mask_size, missingText: "frame image expired",
    }),
    h("div", { class: "meta" },
      h("div", { class: "row" }, h("span", { class: "verdict ng" }, "NG"),
        h("a", { class: "cam", href: cameraUrl(a.camera) }, a.camera)),
      h("div", { class: "row small" }, `${fmtTime(a.t)} · frame ${a.frame_id} · seq ${a.seq}`),
      h("div", { class: "row" }, `score ${fmt(a.score)} / threshold ${fmt(a.threshold)}`),
      h("div", { class: "row small" }, a.model, ` · ${a.boxes.length} box${a.boxes.length === 1 ? "" : "es"}`),
      note, h("div", { class: "row buttons" }, buttons), status));
  return el;
}

async function load() {
  const data = await api("/api/alerts", { limit: 100 });
  setPending(data.pending);
  const ids = new Set(data.alerts.map((a) => a.id));
  for (const [id, el] of cards) {
    if (!ids.has(id)) { el.remove(); cards.delete(id); }
  }
  // Newest first; cards already shown stay (a note being typed is not lost).
  let before = $("#queue").firstChild;
  for (const a of data.alerts) {
    let el = cards.get(a.id);
    if (!el) {
      el = card(a);
      cards.set(a.id, el);
      $("#queue").insertBefore(el, before);
    }
    before = el.nextSibling;
  }
  $("#none").hidden = cards.size > 0;
}

header("review", (m) => {
  mode = m;
  cards.forEach((el) => el.remove());
  cards.clear();
  load();
});
config = await api("/api/config");
if (!config.user) {
  $("#who").hidden = false;
  $("#user").value = localStorage.getItem("lw-user") || "";
  $("#user").addEventListener("change", () => localStorage.setItem("lw-user", $("#user").value));
}
await load();
let version = "";
live({
  snapshot(data) { version = data.alerts.version; load(); },
  update(data) {
    if (data.alerts && data.alerts.version !== version) {
      version = data.alerts.version;
      load();
    }
  },
});
