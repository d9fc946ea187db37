"""Evaluate a stored model on an MVTec-layout test set: metrics JSON and an HTML report.

Conventions (../shared/docs/models.md): image AUROC over test/good vs all defect images; pixel
AUROC and pixel AP over all pixels of all test images, masks resized (nearest) to the map's size,
mask > 127 anomalous. Per defect type: the same metrics on good + that type. At the model's
calibrated threshold: the false-alarm rate on the good images and the detection rate on the defect
images, each with its Clopper-Pearson interval, next to the calibration's target rate and stated
bound. The report shows those as tables, ROC curves drawn with cv2 (no matplotlib) and heatmap
overlays of a few images per type.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from model_store.calibration import clopper_pearson, predict
from model_store.data import TestSample, load_uint8, mvtec_test_set, read_mask
from model_store.manifest import Calibration
from model_store.settings import DEFAULT_CONFIDENCE
from model_store.store import LoadedModel, ModelStore

_COLOURS = [(230, 90, 30), (40, 160, 40), (30, 30, 220), (170, 60, 170), (0, 150, 200), (120, 120, 0), (90, 90, 90)]


def torch_index(mask: np.ndarray):
    import torch

    return torch.from_numpy(np.flatnonzero(mask))


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else None


def _ap(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return float(average_precision_score(labels, scores)) if labels.any() else None


def rate_with_interval(flags: np.ndarray, confidence: float) -> dict[str, Any]:
    """k of n flagged: the rate and its two-sided Clopper-Pearson interval (None when n = 0)."""
    n, k = int(flags.size), int(flags.sum())
    if n == 0:
        return {"count": 0, "n": 0, "rate": None, "ci": None}
    return {"count": k, "n": n, "rate": k / n, "ci": list(clopper_pearson(k, n, confidence))}


def at_threshold(labels: np.ndarray, scores: np.ndarray, cal: Calibration, confidence: float) -> dict[str, Any]:
    """Rates at the calibrated threshold, with intervals, beside what the calibration promised."""
    flagged = scores > cal.threshold
    fa = rate_with_interval(flagged[labels == 0], confidence)
    det = rate_with_interval(flagged[labels == 1], confidence)
    out: dict[str, Any] = {
        "threshold": cal.threshold,
        "false_alarm_rate": fa["rate"], "false_alarms": fa["count"], "n_good": fa["n"], "false_alarm_ci": fa["ci"],
        "detection_rate": det["rate"], "detections": det["count"], "n_defect": det["n"], "detection_ci": det["ci"],
        "ci_confidence": confidence,
        "calibration_method": cal.method, "calibration_n": cal.n_normal,
        "target_far": cal.target_far, "far_bound": cal.far_bound, "bound_confidence": cal.confidence,
        "n_needed": cal.n_needed,
    }
    # The test's good images refute the stated bound only when even the interval's low end lies above it.
    out["bound_holds"] = None if fa["ci"] is None or cal.far_bound is None else bool(fa["ci"][0] <= cal.far_bound)
    return out


def compute_metrics(
    samples: list[TestSample], scores: np.ndarray, amaps: np.ndarray, masks: np.ndarray,
    calibration: Calibration | None, confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    labels = np.array([s.label for s in samples])
    defects = np.array([s.defect for s in samples])
    out: dict[str, Any] = {
        "n_images": len(samples),
        "n_good": int((labels == 0).sum()),
        "n_defect": int(labels.sum()),
        "image_auroc": _auroc(labels, scores),
        "pixel_auroc": _auroc(masks.reshape(-1).astype(np.uint8), amaps.reshape(-1)),
        "pixel_ap": _ap(masks.reshape(-1), amaps.reshape(-1)),
    }
    if calibration is not None:
        out["at_threshold"] = at_threshold(labels, np.asarray(scores), calibration, confidence)
    per = {}
    for d in sorted(set(defects) - {"good"}):
        sel = (defects == d) | (defects == "good")
        m, a = masks[sel].reshape(-1), amaps[sel].reshape(-1)
        per[d] = {
            "n": int((defects == d).sum()),
            "image_auroc": _auroc(labels[sel], scores[sel]),
            "pixel_auroc": _auroc(m.astype(np.uint8), a) if m.any() else None,
            "pixel_ap": _ap(m, a),
        }
    out["per_defect"] = per
    return out


def draw_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]], path: Path, size: int = 520) -> None:
    """ROC curves on a white canvas with axes, diagonal and a legend (cv2 only)."""
    pad = 50
    img = np.full((size, size, 3), 255, np.uint8)
    span = size - 2 * pad

    def pt(fpr: float, tpr: float) -> tuple[int, int]:
        return int(pad + fpr * span), int(size - pad - tpr * span)

    for v in np.linspace(0, 1, 6):
        cv2.line(img, pt(v, 0), pt(v, 1), (235, 235, 235), 1)
        cv2.line(img, pt(0, v), pt(1, v), (235, 235, 235), 1)
        cv2.putText(img, f"{v:.1f}", (pt(v, 0)[0] - 10, size - pad + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{v:.1f}", (pad - 32, pt(0, v)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, pt(0, 1), pt(1, 0), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    cv2.putText(img, "false positive rate", (size // 2 - 70, size - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "TPR", (8, pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for i, (label, (fpr, tpr, auc)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = np.array([pt(f, t) for f, t in zip(fpr, tpr)], np.int32)
        cv2.polylines(img, [pts], False, colour, 2 if i == 0 else 1, cv2.LINE_AA)
        text = f"{label} {auc:.3f}" if auc is not None else label
        y = pad + 30 + 18 * i
        cv2.line(img, (size - pad - 170, y - 4), (size - pad - 150, y - 4), colour, 2)
        cv2.putText(img, text, (size - pad - 145, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def overlay(rgb: np.ndarray, amap: np.ndarray, mask: np.ndarray, lo: float, hi: float, scale: int = 2) -> np.ndarray:
    """[input | heatmap overlay + ground-truth contour] side by side, BGR, upscaled for viewing."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    heat = np.clip((amap - lo) / max(hi - lo, 1e-9), 0, 1)
    heat = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    over = cv2.addWeighted(bgr, 0.5, heat, 0.5, 0)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(over, contours, -1, (255, 255, 255), 1)
    both = np.concatenate([bgr, np.full((bgr.shape[0], 4, 3), 255, np.uint8), over], axis=1)
    return cv2.resize(both, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _interval(ci: list[float] | None) -> str:
    return "-" if ci is None else f"{_pct(ci[0])} to {_pct(ci[1])}"


def threshold_tables_html(at: dict[str, Any] | None) -> str:
    """The calibrated result as two HTML tables: rates with intervals, and what calibration promised."""
    if not at:
        return "<p>The model has no calibration: no threshold to report rates at.</p>"
    conf = f"{100 * at['ci_confidence']:.0f} %"
    rates = (
        f"<table><caption>At the calibrated threshold (raw {at['threshold']:.6g})</caption>"
        f"<tr><th></th><th>images flagged</th><th>rate</th><th>{conf} interval (Clopper-Pearson)</th></tr>"
        f"<tr><td>false alarms on good images</td><td>{at['false_alarms']} of {at['n_good']}</td>"
        f"<td>{_pct(at['false_alarm_rate'])}</td><td>{_interval(at['false_alarm_ci'])}</td></tr>"
        f"<tr><td>detections on defect images</td><td>{at['detections']} of {at['n_defect']}</td>"
        f"<td>{_pct(at['detection_rate'])}</td><td>{_interval(at['detection_ci'])}</td></tr></table>"
    )
    if at.get("target_far") is None:
        promise = "<p>Calibrated before false-alarm targets were recorded (method " + html.escape(str(at["calibration_method"])) + "): no stated bound.</p>"
        return rates + promise
    verdict = {True: "holds: the interval's low end is at or below the bound",
               False: "broken: even the interval's low end is above the bound (test normals unlike the calibration normals?)",
               None: "not checked (no good test images)"}[at["bound_holds"]]
    promise = (
        "<table><caption>What calibration promised</caption>"
        f"<tr><td>method</td><td>{html.escape(str(at['calibration_method']))}</td></tr>"
        f"<tr><td>calibration normals (n)</td><td>{at['calibration_n']}</td></tr>"
        f"<tr><td>target false-alarm rate</td><td>{_pct(at['target_far'])}</td></tr>"
        f"<tr><td>stated bound ({100 * at['bound_confidence']:.0f} % confidence)</td><td>{_pct(at['far_bound'])}</td></tr>"
        f"<tr><td>normals needed for the target</td><td>{at['n_needed']}</td></tr>"
        f"<tr><td>bound on these good images</td><td>{html.escape(verdict)}</td></tr></table>"
    )
    return rates + promise


def write_report(
    out_dir: Path, loaded: LoadedModel, metrics: dict[str, Any], samples: list[TestSample],
    images: np.ndarray, scores: np.ndarray, amaps: np.ndarray, masks: np.ndarray, per_type: int = 3,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.array([s.label for s in samples])
    defects = np.array([s.defect for s in samples])
    curves = {}
    if 0 < labels.sum() < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        curves["all"] = (fpr, tpr, metrics["image_auroc"])
        for d, pm in metrics["per_defect"].items():
            sel = (defects == d) | (defects == "good")
            fpr, tpr, _ = roc_curve(labels[sel], scores[sel])
            curves[d] = (fpr, tpr, pm["image_auroc"])
    draw_roc(curves, out_dir / "roc.png")
    lo, hi = np.percentile(amaps, [1, 99.9])
    rows = []
    for d in sorted(set(defects)):
        idx = np.where(defects == d)[0]
        # the highest-scoring good images (false-alarm candidates) and a spread of defect images
        pick = idx[np.argsort(-scores[idx])][:per_type] if d == "good" else idx[np.linspace(0, len(idx) - 1, min(per_type, len(idx))).astype(int)]
        for i in pick:
            name = f"ex_{d}_{samples[i].path.stem}.png"
            cv2.imwrite(str(out_dir / name), overlay(images[i], amaps[i], masks[i], lo, hi))
            norm = float(loaded.normalise(np.array([scores[i]]))[0]) if loaded.calibrated else float("nan")
            rows.append(f"<figure><img src='{html.escape(name)}'><figcaption>{html.escape(d)} / {html.escape(samples[i].path.name)}: raw {scores[i]:.4f}, normalised {norm:.3f}</figcaption></figure>")
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
    table = "".join(
        f"<tr><td>{html.escape(d)}</td><td>{pm['n']}</td><td>{fmt(pm['image_auroc'])}</td><td>{fmt(pm['pixel_auroc'])}</td><td>{fmt(pm['pixel_ap'])}</td></tr>"
        for d, pm in metrics["per_defect"].items()
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(loaded.ref)} on {html.escape(metrics['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 10px;text-align:right}} table{{margin:0.6em 0}} caption{{text-align:left;font-weight:bold}} figure{{display:inline-block;margin:6px}} figcaption{{font-size:12px}}</style></head><body>
<h1>{html.escape(loaded.ref)} ({html.escape(loaded.manifest.architecture)}) on {html.escape(metrics['dataset'])}</h1>
<p>image AUROC <b>{fmt(metrics['image_auroc'])}</b>, pixel AUROC <b>{fmt(metrics['pixel_auroc'])}</b>, pixel AP <b>{fmt(metrics['pixel_ap'])}</b>
 over {metrics['n_good']} good and {metrics['n_defect']} defect images at {loaded.input_size[0]}x{loaded.input_size[1]}.</p>
{threshold_tables_html(metrics.get('at_threshold'))}
<table><tr><th>defect</th><th>n</th><th>image AUROC</th><th>pixel AUROC</th><th>pixel AP</th></tr>{table}</table>
<h2>Image-level ROC</h2><img src="roc.png">
<h2>Examples</h2><p>Left: model input; right: anomaly map (colour range = 1st..99.9th percentile of all test maps) with the ground-truth outline in white. Good images shown are the highest-scoring ones.</p>
{''.join(rows)}
<h2>Manifest</h2><pre>{html.escape(loaded.manifest.model_dump_json(indent=2))}</pre></body></html>"""
    (out_dir / "report.html").write_text(doc)
    (out_dir / "report.json").write_text(json.dumps(metrics, indent=2))


def simulated_metrics(loaded: LoadedModel, good_u8, device: str = "cpu", seed: int = 123) -> dict[str, Any]:
    """Diagnostic: AUROC on the test/good images vs the same images with DRAEM-style simulated
    anomalies (part-derived textures, 25 % line masks). High here but low on real defects means
    the simulation, not the training, is the limit (see ../shared/docs/models.md)."""
    import torch

    from model_store.models._simulation import AnomalySimulator

    imgs = good_u8.permute(0, 2, 3, 1).float().div(255).numpy()
    sim = AnomalySimulator(imgs, line_prob=0.25, clean_prob=0.0, seed=seed)
    pairs = [sim(im) for im in imgs]
    aug = torch.from_numpy(np.stack([a for a, _ in pairs])).permute(0, 3, 1, 2).mul(255).round().to(torch.uint8)
    masks = np.concatenate([np.zeros((len(imgs),) + imgs.shape[1:3], bool), np.stack([m[..., 0] > 0.5 for _, m in pairs])])
    amaps, scores = predict(loaded.module, torch.cat([good_u8, aug]), device)
    labels = np.r_[np.zeros(len(imgs)), np.ones(len(imgs))]
    return {
        "image_auroc": _auroc(labels, scores),
        "pixel_auroc": _auroc(masks.reshape(-1).astype(np.uint8), amaps.reshape(-1)),
        "pixel_ap": _ap(masks.reshape(-1), amaps.reshape(-1)),
    }


def shift_metrics(
    loaded: LoadedModel, samples: list[TestSample], images, masks: np.ndarray, clean: dict[str, Any],
    device: str = "cpu", confidence: float = DEFAULT_CONFIDENCE, seed: int = 0, names: list[str] | None = None,
) -> dict[str, Any]:
    """The test set under each lighting shift of model_store/lighting.py, scored at the UNSHIFTED threshold.

    Per shift: image AUROC, pixel AUROC / AP, the false alarms on the good images at the model's
    calibrated threshold with their Clopper-Pearson interval, and the changes against the clean
    images (`clean`: compute_metrics on the unshifted set): image AUROC difference and the ratio of
    false-alarm rates (None when the clean rate is 0).
    """
    from model_store.lighting import EVAL_SHIFTS, SHIFTS_BY_NAME, shift_uint8

    shifts = [SHIFTS_BY_NAME[n] for n in names] if names else list(EVAL_SHIFTS)
    cal = loaded.manifest.calibration
    clean_at = clean.get("at_threshold") or {}
    out: dict[str, Any] = {}
    for shift in shifts:
        amaps, scores = predict(loaded.module, shift_uint8(images, shift, seed), device)
        m = compute_metrics(samples, scores, amaps, masks, cal, confidence)
        row: dict[str, Any] = {k: m[k] for k in ("image_auroc", "pixel_auroc", "pixel_ap")}
        row["kind"], row["value"] = shift.kind, shift.value
        if clean.get("image_auroc") is not None and m["image_auroc"] is not None:
            row["image_auroc_change"] = m["image_auroc"] - clean["image_auroc"]
        at = m.get("at_threshold")
        if at:
            row.update(false_alarms=at["false_alarms"], n_good=at["n_good"], false_alarm_rate=at["false_alarm_rate"],
                       false_alarm_ci=at["false_alarm_ci"], detection_rate=at["detection_rate"])
            base = clean_at.get("false_alarm_rate")
            row["false_alarm_ratio"] = (at["false_alarm_rate"] / base) if base else None
        out[shift.name] = row
    return {"seed": seed, "applied_to": "preprocessed uint8 model inputs (model_store/lighting.py)", "shifts": out}


def first_per_type(samples: list[TestSample], limit: int, keep_good: bool = False) -> list[TestSample]:
    """The first `limit` samples of each test type (all good images when `keep_good`)."""
    kept: dict[str, int] = {}
    out = []
    for s in samples:
        if (keep_good and s.defect == "good") or kept.get(s.defect, 0) < limit:
            kept[s.defect] = kept.get(s.defect, 0) + 1
            out.append(s)
    return out


def evaluate_ref(
    store: ModelStore, ref: str, data: Path, device: str = "cpu", report_dir: Path | None = None,
    max_per_type: int | None = None, simulated: bool = False, confidence: float = DEFAULT_CONFIDENCE,
    shift: bool = False, shift_seed: int = 0, shift_names: list[str] | None = None, max_defects_per_type: int | None = None,
) -> dict[str, Any]:
    loaded = store.load(ref, device=device, require_calibration=False)
    samples = mvtec_test_set(data)
    if max_per_type:
        samples = first_per_type(samples, max_per_type)
    if max_defects_per_type:
        samples = first_per_type(samples, max_defects_per_type, keep_good=True)
    size = loaded.input_size
    images = load_uint8([s.path for s in samples], size)
    t0 = time.monotonic()
    amaps, scores = predict(loaded.module, images, device)
    seconds = time.monotonic() - t0
    masks = np.stack([read_mask(s, size) for s in samples])
    metrics = compute_metrics(samples, scores, amaps, masks, loaded.manifest.calibration, confidence)
    metrics.update(
        model=loaded.name, version=loaded.version, architecture=loaded.manifest.architecture,
        dataset=data.resolve().name, data_dir=str(data), input_size=list(size), device=device,
        inference_images_per_s=round(len(samples) / seconds, 2),
    )
    if simulated:
        good = np.array([s.label == 0 for s in samples])
        metrics["simulated_anomalies"] = simulated_metrics(loaded, images[torch_index(good)], device)
    if shift:
        metrics["lighting"] = shift_metrics(loaded, samples, images, masks, metrics, device, confidence, shift_seed, shift_names)
    if report_dir is not None:
        write_report(report_dir, loaded, metrics, samples, images.permute(0, 2, 3, 1).numpy(), scores, amaps, masks)
        metrics["report"] = str(report_dir / "report.html")
    store.record_evaluation(loaded.name, loaded.version, metrics)
    return metrics
