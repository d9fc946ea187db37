"""How far served scores are from evaluated ones, per wire encoding, on a real test set.

    .venv/bin/python bench/preprocess_agreement.py --store runs/calib/store mt_draem@production \\
        ../shared/data/magnetic_tile/magnetic_tile --threads 1

Served: each test image (decoded at full size) encoded as the producer would (PNG, or JPEG at
quality 90), decoded and preprocessed by the worker's own code (worker.decode.prepare), scored by
the worker's Engine (CPU, channels_last, batches of 8) and rounded to "%.6g" as the worker stores
score_raw. Offline: the same bytes as image files through `evaluate`'s path (data.load_uint8 +
calibration.predict); both decode through model_store.preprocess.decode, libjpeg's reduced JPEG
decode included. For scale, also: what reduced decoding changes against a full-size decode of the
same JPEG bytes, and what JPEG compression itself changes. Reports the largest differences, relative and in standard
deviations of the good images' scores, and how many decisions at the calibrated threshold differ.
One JSON file to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from linewatch.logs import configure_logging  # noqa: E402
from linewatch.contract import FrameMeta  # noqa: E402
from model_store.calibration import predict  # noqa: E402
from model_store.data import load_uint8, mvtec_test_set, read_bgr  # noqa: E402
from model_store.preprocess import decode, frames_to_uint8  # noqa: E402
from model_store.store import ModelStore  # noqa: E402
from worker.decode import DecodeLimits, InputSpec, prepare  # noqa: E402
from worker.engine import Engine  # noqa: E402

JPEG_QUALITY = 90  # the producer's default (LW_JPEG_QUALITY)


def encode(frame: np.ndarray, encoding: str) -> bytes:
    ext, params = (".png", []) if encoding == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    ok, data = cv2.imencode(ext, frame, params)
    if not ok:
        raise RuntimeError(f"cannot encode a {frame.shape} frame as {encoding}")
    return data.tobytes()


def served_scores(engine: Engine, spec: InputSpec, values: list[bytes], frames: list[np.ndarray], encoding: str) -> np.ndarray:
    inputs = []
    for seq, (value, frame) in enumerate(zip(values, frames)):
        h, w = frame.shape[:2]
        meta = FrameMeta(camera="bench", seq=seq, capture_ns=1, encoding=encoding, width=w, height=h)
        inputs.append(prepare(value, meta, spec, DecodeLimits(max_bytes=1 << 30, max_pixels=1 << 30)))
    scores = [engine.infer(np.stack(inputs[i : i + 8]))[1] for i in range(0, len(inputs), 8)]
    return np.array([float(f"{s:.6g}") for s in np.concatenate(scores)])  # as Redis holds score_raw


def _reduced(shape: tuple[int, int], spec: InputSpec) -> int:
    """The libjpeg scale factor worker.decode uses for a frame of this size (0: full decode)."""
    for factor in (8, 4, 2):
        if shape[1] // factor >= spec.width and shape[0] // factor >= spec.height:
            return factor
    return 0


def compare(served: np.ndarray, offline: np.ndarray, good: np.ndarray, threshold: float) -> dict:
    diff = np.abs(served - offline)
    return {
        "max_abs": float(diff.max()), "max_rel": float((diff / np.maximum(np.abs(offline), 1e-12)).max()),
        "max_in_good_std": float(diff.max() / offline[good].std()),
        "decisions_differing": int(((served > threshold) != (offline > threshold)).sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default="runs/calib/store")
    p.add_argument("ref")
    p.add_argument("data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args()
    configure_logging("warning", json=False)  # stdout is the result
    torch.set_num_threads(args.threads)
    store = ModelStore(args.store)
    offline_model = store.load(args.ref)
    served_model = store.load(args.ref)  # the engine turns its module channels_last: keep the offline one apart
    h, w = offline_model.input_size
    spec = InputSpec(h, w, offline_model.channels)
    engine = Engine(served_model.module, spec, torch.device("cpu"))
    samples = mvtec_test_set(args.data)
    good = np.array([s.label == 0 for s in samples])
    frames = [read_bgr(s.path) for s in samples]  # full-size decodes: what a camera would have seen
    thr = offline_model.threshold
    result = {"model": offline_model.ref, "dataset": Path(args.data).name, "images": len(samples), "threshold": thr,
              "frame_size": list(frames[0].shape), "input_size": [h, w]}
    for encoding in ("png", "jpeg"):
        values = [encode(f, encoding) for f in frames]
        served = served_scores(engine, spec, values, frames, encoding)
        with tempfile.TemporaryDirectory() as tmp:  # the same bytes as image files, read as `evaluate` reads them
            paths = [Path(tmp) / f"{i:05d}.{'png' if encoding == 'png' else 'jpg'}" for i in range(len(values))]
            for path, value in zip(paths, values):
                path.write_bytes(value)
            _, offline_same = predict(offline_model.module, load_uint8(paths, (h, w)))
        result[f"{encoding}: served vs evaluate on the same bytes"] = compare(served, offline_same, good, thr)
        if encoding == "jpeg":
            full = [cv2.imdecode(np.frombuffer(v, np.uint8), cv2.IMREAD_COLOR) for v in values]
            _, offline_full = predict(offline_model.module, frames_to_uint8(full, (h, w)))
            _, offline_lossless = predict(offline_model.module, frames_to_uint8(frames, (h, w)))
            result["jpeg: reduced decode vs full-size decode of the same bytes"] = compare(offline_same, offline_full, good, thr)
            result["jpeg: compression alone (full-size decodes)"] = compare(offline_full, offline_lossless, good, thr)
            result["jpeg: frames decoded reduced by libjpeg"] = sum(bool(_reduced(f.shape[:2], spec)) for f in frames)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
               "opencv": cv2.__version__, "threads": args.threads}
    print(json.dumps(result, indent=2))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(args.results) / f"preprocess_agreement-{result['dataset']}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "created": stamp, "result": result}, indent=2))
    print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
