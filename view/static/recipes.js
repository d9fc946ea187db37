// The line's recipes (model, regions, overrides), which cameras each covers, and the newest changes:
// read-only, from the model store (changes are made with `linewatch-models recipes`).
import { $, h, api, header } from "/static/common.js";

function table(el, heads, rows) {
  el.replaceChildren(h("tr", {}, ...heads.map((x) => h("th", {}, x))),
    ...rows.map((r) => h("tr", {}, ...r.map((x) => h("td", {}, x ?? "–")))));
}

const regions = (r) => r.regions.length ? r.regions.map((g) => `${g.x},${g.y} ${g.w}×${g.h}`).join("; ") : "whole frame";

async function load() {
  const status = $("#status");
  try {
    const data = await api("/api/recipes");
    status.textContent = data.recipes.length
      ? `table change ${data.seq} in ${data.root}`
      : `No recipes in ${data.root}: every camera is served the workers' LW_MODEL.`;
    table($("#recipes"), ["recipe", "model", "regions", "threshold", "debounce n/m", "note"],
      data.recipes.map((r) => [r.name, r.model, regions(r), r.threshold, r.debounce ? r.debounce.join("/") : null, r.note]));
    table($("#assignments"), ["camera or pattern", "recipe"], data.assignments.map((a) => [a.pattern, a.recipe]));
    table($("#history"), ["change", "time", "author", "action", "subject"],
      data.history.map((c) => [String(c.seq), c.time, c.author, c.action, c.subject]));
  } catch (err) {
    status.textContent = `recipes unreadable: ${err.message}`;
  }
}

header("recipes");
load();
