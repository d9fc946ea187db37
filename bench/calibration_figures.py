"""Calibration figures for docs/models.md: the promise at several target rates, checked on unseen normals.

    git show c551add^:bench/eval_models.sh > /tmp/eval_models.sh
    OUT=runs/calib BUDGET_MIN=5 bash /tmp/eval_models.sh        # train (and evaluate) the four runs
    .venv/bin/python bench/calibration_figures.py --store runs/calib/store --threads 1

For each trained run (name@production in the store): rebuild the held-out calibration slice its
training used (same images, same seeded split, checked against the manifest's n_calibration),
score it and the test set, then for each target rate fit the threshold exactly as `train` does
(model_store.calibration.calibrate) and measure, at that threshold, the false-alarm rate on the
test set's good images and the detection rate on its defect images, each with its Clopper-Pearson
interval (model_store.evaluation.at_threshold). At the manifest's target the refitted threshold must
equal the stored one to 1e-5 (checked: the same images, split and rule). Prints a markdown table; writes one JSON file to
bench/results/ with the machine and library versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from linewatch.logs import configure_logging  # noqa: E402
from model_store.calibration import calibrate, predict  # noqa: E402
from model_store.data import load_uint8, mvtec_test_set, train_images  # noqa: E402
from model_store.evaluation import at_threshold  # noqa: E402
from model_store.pipeline import split_calibration  # noqa: E402
from model_store.store import LoadedModel, ModelStore  # noqa: E402


def held_out(loaded: LoadedModel) -> list[Path]:
    """The normal training images the run held out for calibration (never trained on)."""
    info = loaded.manifest.training
    if info is None:
        raise SystemExit(f"{loaded.ref}: no training record, cannot rebuild its calibration slice")
    paths = train_images(info.data_dir)
    if info.settings.get("max_images"):
        paths = paths[: info.settings["max_images"]]
    _, cal = split_calibration(len(paths), info.settings.get("calib_fraction", 0.1), info.seed)
    if len(cal) != info.n_calibration:
        raise SystemExit(f"{loaded.ref}: rebuilt {len(cal)} calibration images, the manifest says {info.n_calibration}")
    return [paths[i] for i in cal]


def figures(store: ModelStore, run: str, targets: list[float], confidence: float) -> list[dict]:
    loaded = store.load(f"{run}@production", require_calibration=True)
    size = loaded.input_size
    cal_amaps, cal_scores = predict(loaded.module, load_uint8(held_out(loaded), size))
    data = Path(loaded.manifest.training.data_dir)
    samples = mvtec_test_set(data)
    _, test_scores = predict(loaded.module, load_uint8([s.path for s in samples], size))
    labels = np.array([s.label for s in samples])
    stored = loaded.manifest.calibration
    rows = []
    for target in targets:
        cal = calibrate(cal_scores, cal_amaps, target_far=target, confidence=confidence)
        # float32 inference in another batch context moves the last bits; anything more is a different slice
        if target == stored.target_far and abs(cal.threshold - stored.threshold) > 1e-5 * abs(stored.threshold):
            raise SystemExit(f"{loaded.ref}: refitted threshold {cal.threshold} != manifest {stored.threshold}")
        at = at_threshold(labels, test_scores, cal, confidence)
        rows.append({"run": run, "model": loaded.ref, "architecture": loaded.manifest.architecture, "dataset": data.name,
                     "steps": loaded.manifest.training.steps, "train_seconds": loaded.manifest.training.seconds,
                     **at, "exceedances": cal.exceedances, "is_manifest_calibration": target == stored.target_far})
    return rows


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def markdown(rows: list[dict]) -> str:
    head = ("| run | dataset | target | n (held-out normals) | method | calibration normals above | stated bound (95 %) | "
            "normals needed | false alarms on test good | rate [95 % CI] | bound holds | detections [95 % CI] |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lo, hi = r["false_alarm_ci"]
        dlo, dhi = r["detection_ci"]
        lines.append(
            f"| {r['run']} ({r['model']}) | {r['dataset']} | {_pct(r['target_far'])} | {r['calibration_n']} | {r['calibration_method']} | "
            f"{r['exceedances']} | {_pct(r['far_bound'])} | {r['n_needed']} | {r['false_alarms']} of {r['n_good']} | "
            f"{_pct(r['false_alarm_rate'])} [{_pct(lo)}, {_pct(hi)}] | {'yes' if r['bound_holds'] else 'no'} | "
            f"{_pct(r['detection_rate'])} [{_pct(dlo)}, {_pct(dhi)}] |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default="runs/calib/store")
    p.add_argument("--runs", default="mt_draem,mt_ae,bs_draem,bs_ae", help="comma list of trained model names")
    p.add_argument("--targets", default="0.001,0.01,0.05", help="comma list of target false-alarm rates")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args()
    configure_logging("warning", json=False)  # stdout is the result
    torch.set_num_threads(args.threads)
    store = ModelStore(args.store)
    targets = [float(t) for t in args.targets.split(",")]
    rows = [row for run in args.runs.split(",") for row in figures(store, run.strip(), targets, args.confidence)]
    print(markdown(rows))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(args.results) / f"calibration_figures-torch{torch.__version__.split('+')[0]}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "numpy": np.__version__, "threads": args.threads}
    out.write_text(json.dumps({"machine": machine, "created": stamp, "args": vars(args), "rows": rows}, indent=2))
    print(f"\n{out}", file=sys.stderr)


if __name__ == "__main__":
    main()
