// Part search: every result whose frame carried this part id (lw-part), newest first, with its
// verdict and, when kept, the frame with its overlay.
import { $, h, api, cameraUrl, fmt, fmtTime, frameView, header, overlayMode, query } from "/static/common.js";

const mode = overlayMode();

function card(r) {
  const frameSrc = r.frame ? `/img/frame?${query({ camera: r.camera, frame_id: r.frame_id })}` : "";
  const overlaySrc = r.has_heat || r.has_mask ? `/img/overlay?${query({ camera: r.camera, frame_id: r.frame_id, mode })}` : "";
  return h("article", { class: `card ${r.anomalous ? "ng" : "ok"}`, data: { frame: r.frame_id } },
    frameView({ frameSrc, overlaySrc: mode === "off" ? "" : overlaySrc,
      missingText: r.anomalous ? "frame image expired" : "only anomalous frames keep their image" }),
    h("div", { class: "meta" },
      h("div", { class: "row" },
        h("span", { class: "verdict" }, r.anomalous ? "NG" : "OK"),
        h("a", { class: "cam", href: cameraUrl(r.camera) }, r.camera)),
      h("div", { class: "row small" }, `${fmtTime(r.t)} · frame ${r.frame_id} · seq ${r.seq}`),
      h("div", { class: "row small" }, `score ${fmt(r.score, 3)} / ${fmt(r.threshold, 3)} · ${r.model}`),
      h("div", { class: "row small" }, `operator verdict: ${r.verdict ?? "–"}`)));
}

async function search(id) {
  const status = $("#status");
  const results = $("#results");
  results.replaceChildren();
  if (!id) {
    status.textContent = "Type a part id (serial, lot or trigger id) to find its verdict and image.";
    return;
  }
  status.textContent = "searching…";
  try {
    const data = await api("/api/part", { id });
    status.textContent = data.results.length
      ? `${data.results.length} result(s) for part ${data.part}`
      : `No result for part ${data.part} in the newest ${data.searched} entries of each camera.`;
    results.replaceChildren(...data.results.map(card));
  } catch (err) {
    status.textContent = `search failed: ${err.message}`;
  }
}

header("part");
const input = $("#part-id");
input.value = new URLSearchParams(location.search).get("id") || "";
$("#search").addEventListener("submit", (event) => {
  event.preventDefault();
  history.replaceState(null, "", `/part?${query({ id: input.value })}`);
  search(input.value.trim());
});
search(input.value.trim());
