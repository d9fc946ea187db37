"""Which image score uses the anomaly map best: chosen from normal images only, then shown on the test set.

For each stored model (DRAEM, the baseline; default: the plain runs of bench/lighting_table.py)
it rebuilds the run's held-out calibration normals (same images, same seeded split), makes two
simulated-anomaly copies of each (DRAEM's simulation, model_store/models/_simulation.py: seeded,
25 % line masks, no clean samples), and scores normals and copies with every choice of
model_store/image_scores.py from the same maps. The choosing figure is the image AUROC of normals
vs their simulated copies: no defect image is used. The test set's image AUROC (all good and
defect images) is printed beside it for information, never to choose.

For DAAD runs (`--daad`) it shows the effect of weighting its two standardised scores by
1 / SD on the calibration normals (DAAD's `score_weights="calibration"`) against the fixed sum.

    .venv/bin/python bench/image_scores.py --store runs/lighting/store --write-docs docs/models.md
    .venv/bin/python bench/image_scores.py --store runs/lighting/store --daad mt_daad_plain,bs_daad_plain

Writes bench/results/image_scores-<date>.json and prints Markdown; --write-docs replaces the
block between `<!-- image-scores:begin -->` and `<!-- image-scores:end -->`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.docs_block import write_block  # noqa: E402

from bench.calibration_figures import held_out  # noqa: E402
from bench.model_table import machine  # noqa: E402
from model_store.calibration import predict  # noqa: E402
from model_store.data import load_uint8, mvtec_test_set  # noqa: E402
from model_store.image_scores import choices  # noqa: E402
from model_store.models._simulation import AnomalySimulator  # noqa: E402
from model_store.preprocess import to_float  # noqa: E402
from model_store.store import LoadedModel, ModelStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CURRENT = "max_mean11"  # what DRAEM w8/v8 and the baseline serve at 128 px and 96x224


def simulated(normals_u8: torch.Tensor, copies: int, seed: int) -> torch.Tensor:
    imgs = normals_u8.permute(0, 2, 3, 1).float().div(255).numpy()
    sim = AnomalySimulator(imgs, line_prob=0.25, clean_prob=0.0, seed=seed)
    out = [sim(im)[0] for _ in range(copies) for im in imgs]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).mul(255).round().to(torch.uint8)


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def score_rows(loaded: LoadedModel, run: str, copies: int, seed: int) -> list[dict]:
    size = loaded.input_size
    normals = load_uint8(held_out(loaded), size)
    cal_maps, _ = predict(loaded.module, normals)
    sim_maps, _ = predict(loaded.module, simulated(normals, copies, seed))
    samples = mvtec_test_set(loaded.manifest.training.data_dir)
    test_maps, _ = predict(loaded.module, load_uint8([s.path for s in samples], size))
    labels = np.array([s.label for s in samples])
    rows = []
    for name, fn in choices(loaded.manifest.calibration.pixel_threshold).items():
        t = fn(test_maps)
        rows.append({"run": run, "architecture": loaded.manifest.architecture, "dataset": Path(loaded.manifest.training.data_dir).name,
                     "score": name, "normals_vs_simulated": auroc(fn(cal_maps), fn(sim_maps)),
                     "test_image_auroc": float(roc_auc_score(labels, t)), "n_normals": len(normals)})
    return rows


@torch.inference_mode()
def daad_rows(loaded: LoadedModel, run: str) -> list[dict]:
    """Image AUROC on the test set: fixed sum vs 1/SD-on-calibration-normals weights, and each term alone."""
    m = loaded.module
    size = loaded.input_size

    def z(u8: torch.Tensor) -> torch.Tensor:
        parts = []
        for b in u8.split(16):
            c = m.score_components(to_float(b, m.in_channels))
            parts.append(m.moments.standardise(torch.stack([c["pixel_residual"], c["disc_feature"]], 1)))
        return torch.cat(parts).double()

    z_cal = z(load_uint8(held_out(loaded), size))
    w = 1.0 / z_cal.std(0).clamp(min=1e-6)
    samples = mvtec_test_set(loaded.manifest.training.data_dir)
    z_test = z(load_uint8([s.path for s in samples], size)).numpy()
    labels = np.array([s.label for s in samples])
    fixed = z_test[:, 0] + m.cfg.disc_weight * z_test[:, 1]
    weighted = z_test @ w.numpy()
    return [{"run": run, "dataset": Path(loaded.manifest.training.data_dir).name, "sd_calibration": z_cal.std(0).tolist(),
             "weights": (w / w[0]).tolist(),
             **{k: float(roc_auc_score(labels, v)) for k, v in
                (("pixel_residual", z_test[:, 0]), ("disc_feature", z_test[:, 1]), ("fixed_sum", fixed), ("calibration_weighted", weighted))}}]


def choose(rows: list[dict]) -> dict[str, str]:
    """Per architecture: the score with the highest mean normals-vs-simulated AUROC over its runs."""
    out = {}
    for arch in sorted({r["architecture"] for r in rows}):
        mean: dict[str, list[float]] = {}
        for r in rows:
            if r["architecture"] == arch:
                mean.setdefault(r["score"], []).append(r["normals_vs_simulated"])
        out[arch] = max(mean, key=lambda k: (np.mean(mean[k]), k == CURRENT))
    return out


def render(rows: list[dict], daad: list[dict], chosen: dict[str, str], meta: dict) -> str:
    lines = [f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}; {meta['date']}; models: {meta['store']} "
             "(bench/lighting_table.py plain runs).", ""]
    runs = sorted({r["run"] for r in rows}, key=lambda r: [x["run"] for x in rows].index(r))
    names = list(dict.fromkeys(r["score"] for r in rows))
    if rows:
        lines += ["Image AUROC, normals vs simulated anomalies on the held-out calibration normals (chooses) / "
                  "test set, real defects (shown only):", "",
                  "| score | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        by = {(r["run"], r["score"]): r for r in rows}
        for n in names:
            cells = [f"{by[(run, n)]['normals_vs_simulated']:.3f} / {by[(run, n)]['test_image_auroc']:.3f}" for run in runs]
            lines.append(f"| {n}{' (served now)' if n == CURRENT else ''} | " + " | ".join(cells) + " |")
        lines += ["", "Chosen from the normals only: " + ", ".join(f"{a}: **{c}**" for a, c in chosen.items()) + ".", ""]
    if daad:
        lines += ["DAAD, test image AUROC: each standardised term, the fixed sum (served now) and the sum weighted by "
                  "1 / SD on the calibration normals:", "",
                  "| run | SD on calibration normals (pixel, disc) | weights (pixel = 1) | pixel term | disc term | fixed sum | weighted |",
                  "|---|---|---|---|---|---|---|"]
        for d in daad:
            lines.append(f"| {d['run']} | {d['sd_calibration'][0]:.2f}, {d['sd_calibration'][1]:.2f} | 1, {d['weights'][1]:.2f} | "
                         f"{d['pixel_residual']:.3f} | {d['disc_feature']:.3f} | {d['fixed_sum']:.3f} | {d['calibration_weighted']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default="runs/lighting/store")
    ap.add_argument("--runs", default="mt_ae_plain,mt_draem_plain,bs_ae_plain,bs_draem_plain")
    ap.add_argument("--daad", default="", help="DAAD runs in the store: show the calibration-weighted score")
    ap.add_argument("--copies", type=int, default=2, help="simulated-anomaly copies per calibration normal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write-docs", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    store = ModelStore(ROOT / args.store)
    rows: list[dict] = []
    for run in [r for r in args.runs.split(",") if r]:
        rows += score_rows(store.load(f"{run}@production"), run, args.copies, args.seed)
    daad = [row for run in args.daad.split(",") if run for row in daad_rows(store.load(f"{run}@production"), run)]
    chosen = choose(rows)
    meta = {"command": f".venv/bin/python bench/image_scores.py --store {args.store}"
                       + (f" --daad {args.daad}" if args.daad else "") + " --write-docs docs/models.md",
            "machine": machine(), "date": dt.date.today().isoformat(), "store": args.store}
    table = render(rows, daad, chosen, meta)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"image_scores-{meta['date']}.json").write_text(json.dumps({"meta": meta, "rows": rows, "daad": daad, "chosen": chosen}, indent=2))
    print(table)
    if args.write_docs:
        write_block(ROOT / args.write_docs, "image-scores", table)


if __name__ == "__main__":
    main()
