// Shadow reports: each candidate scored beside production on the line's frames (the figures of
// `linewatch-models shadow report`; the promotion gate itself runs in `promote --require-shadow`).
import { $, h, api, fmt, header } from "/static/common.js";

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(2)} %`);

function row(label, value) {
  return h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, value));
}

function report(r) {
  const t = r.table;
  const interval = r.alarm_interval ? ` (${pct(r.alarm_interval[0])} – ${pct(r.alarm_interval[1])})` : "";
  const cost = (k) => (r.compute_ms[k] && r.compute_ms[k].mean !== undefined ? `${fmt(r.compute_ms[k].mean, 2)} ms` : "–");
  const cams = Object.entries(r.frames).map(([c, n]) => `${c}: ${n} (${pct(r.agreement_per_camera[c])} agree)`).join(", ");
  return h("article", { class: "card shadow", data: { candidate: r.candidate } },
    h("h2", {}, `${r.candidate} against ${r.production ?? "–"}`),
    h("table", {},
      row("frames compared", `${r.total_frames} · ${cams || "none yet"}`),
      row("verdict agreement", pct(r.agreement)),
      row("production OK / NG × candidate OK / NG", `OK·OK ${t.ok_ok} · OK·NG ${t.ok_ng} · NG·OK ${t.ng_ok} · NG·NG ${t.ng_ng}`),
      row("rank correlation (Spearman)", r.spearman === null ? "–" : fmt(r.spearman, 3)),
      row("candidate alarms on production-normal frames",
        `${r.alarms_on_normal} of ${r.normal_frames} = ${pct(r.alarm_rate)}${interval}, bound ${pct(r.alarm_upper_bound)}`),
      row("operator-confirmed defects", `${r.confirmed.marked} marked, candidate NG on ${r.confirmed.candidate_ng}, ` +
        `missed where production caught: ${r.confirmed.missed_production_caught.length}`),
      row("operator-marked false alarms", `${r.false_alarms.marked} marked, candidate NG on ${r.false_alarms.candidate_ng}`),
      row("compute per frame", `candidate ${cost("candidate")} · production ${cost("production")}`),
      row("skipped", `against another production version ${r.skipped.other_production ?? 0}, unreadable ${r.skipped.unreadable ?? 0}`)));
}

async function load() {
  const status = $("#status");
  try {
    const data = await api("/api/shadow");
    status.textContent = data.reports.length
      ? `${data.reports.length} candidate(s); newest ${data.frames_per_camera} entries per camera`
      : "No shadow is running: start one with `linewatch-models shadow start CANDIDATE`.";
    $("#reports").replaceChildren(...data.reports.map(report));
  } catch (err) {
    status.textContent = `shadow reports unavailable: ${err.message}`;
  }
}

header("shadow");
load();
setInterval(load, 10000);
