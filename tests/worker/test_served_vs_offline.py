"""Served and evaluated scores agree, and so do the thresholds calibrated from each.

The same synthetic frames go through the real pipeline (producer -> Kafka -> worker -> Redis, PNG
on the wire: lossless) and through the offline path (PNG files -> data.load_uint8 ->
calibration.predict, what `evaluate` and `calibrate --normal` run). Results are matched by
(camera, seq), never by stream ID.

Tolerance: |served - offline| <= 5e-6 * |offline| + 1e-3 * sd, sd the standard deviation of the
normal frames' offline scores. The first term is the worker storing score_raw as "%.6g"
(relative rounding error up to 5e-6). The second covers float32 arithmetic: the engine runs the
same model on other batch compositions in channels_last layout, which moves the last bits, and
SSIM-type maps amplify them; bench/preprocess_agreement.py measured at most 6e-5 sd on the real
test sets. A real input difference is far larger: JPEG compression, or a full-size instead of a
reduced JPEG decode, moves scores by tenths of an sd there, and the test checks that compression
breaks this tolerance on these frames too. JPEG cameras get the same tolerance (second test): the
worker and the data loader decode the same bytes with one function.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model_store.calibration import far_threshold, predict
from model_store.cli import main
from model_store.data import load_uint8
from model_store.store import ModelStore
from producer.app import produce_synthetic
from producer.synthetic import SyntheticCamera
from tests.worker.helpers import history, running_worker, wait_for_results

pytestmark = pytest.mark.integration

CAMERAS = ("cam-1", "cam-2")  # produce_synthetic: cam-i renders SyntheticCamera(seed=i)
FRAMES = 60
DEFECT_RATE = 0.1
FORMAT_REL = 5e-6  # "%.6g"
FLOAT_SD = 1e-3  # of the normal scores' standard deviation


def _rendered() -> dict[tuple[str, int], tuple[np.ndarray, bool]]:
    """(camera, seq) -> (the frame the producer rendered and sent, whether it holds a defect)."""
    out = {}
    for i, camera in enumerate(CAMERAS, start=1):
        source = SyntheticCamera(seed=i, defect_rate=DEFECT_RATE)
        for seq in range(FRAMES):
            frame, mask = source.render(seq)
            out[(camera, seq)] = (frame, mask is not None)
    return out


def _offline_scores(model_root: Path, folder: Path, frames: dict[tuple[str, int], np.ndarray]) -> dict[tuple[str, int], float]:
    """The frames as PNG files, scored the way `evaluate` scores a test set."""
    paths = []
    for (camera, seq), frame in frames.items():
        paths.append(folder / f"{camera}-{seq:04d}.png")
        cv2.imwrite(str(paths[-1]), frame)
    loaded = ModelStore(model_root).load("synth@production")
    _, scores = predict(loaded.module, load_uint8(paths, loaded.input_size))
    return dict(zip(frames, scores.tolist()))


def _within(a: dict, b: dict, sd: float) -> bool:
    return all(abs(a[k] - b[k]) <= FORMAT_REL * abs(b[k]) + FLOAT_SD * sd for k in b)


def test_served_scores_and_stream_calibration_equal_offline(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, redis_url, worker_settings, model_root, tmp_path, capsys
) -> None:
    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base, "encoding": "png"},
                             cameras=len(CAMERAS), frames_per_camera=FRAMES, defect_rate=DEFECT_RATE)
    with running_worker(worker_settings(max_batch=8)):
        assert wait_for_results(redis_client, redis_prefix, list(CAMERAS), sent.sent) == sent.sent == len(CAMERAS) * FRAMES
    served = {(cam, int(e["seq"])): float(e["score_raw"]) for cam in CAMERAS for e in history(redis_client, redis_prefix, cam)}
    rendered = _rendered()
    offline = _offline_scores(model_root, tmp_path, {k: frame for k, (frame, _) in rendered.items()})
    assert served.keys() == offline.keys()
    sd = float(np.std([offline[k] for k, (_, defective) in rendered.items() if not defective]))

    worst = max(offline, key=lambda k: abs(served[k] - offline[k]))
    assert _within(served, offline, sd), f"worst {worst}: served {served[worst]!r}, offline {offline[worst]!r}, sd {sd:.3g}"
    # The tolerance would catch a real difference: JPEG-compressed copies of the same frames break it.
    jpeg = {k: cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
            for k, (frame, _) in rendered.items()}
    assert not _within(_offline_scores(model_root, tmp_path, jpeg), offline, sd)

    # Calibrating each camera from the stream gives the threshold offline calibration gives on the same
    # frames. The defective frames are marked "confirmed" by an operator, as linewatch-view would, so
    # both sides fit the normal frames only.
    for cam in CAMERAS:
        for entry in history(redis_client, redis_prefix, cam):
            if rendered[(cam, int(entry["seq"]))][1]:
                redis_client.xadd(f"{redis_prefix}:feedback", {"camera": cam, "frame_id": entry["frame_id"],
                                                              "verdict": "confirmed", "note": "", "time_ns": "1", "user": "t"})
    store = ModelStore(model_root)
    name, version = store.resolve("synth@production")
    capsys.readouterr()
    code = main(["--store", str(model_root), "calibrate", "synth@production", "--from-stream", ",".join(CAMERAS),
                 "--frames", str(FRAMES), "--target-far", "0.05", "--outliers", "include",
                 "--redis-url", redis_url, "--redis-prefix", redis_prefix])
    out = json.loads(capsys.readouterr().out)
    try:
        assert code == 0, out["warnings"]
        for r in out["cameras"]:
            normal = [offline[(r["camera"], s)] for s in range(FRAMES) if not rendered[(r["camera"], s)][1]]
            fit = far_threshold(np.array(normal), 0.05, 0.95)
            assert r["n"] == len(normal) == FRAMES - len(r["confirmed_excluded"]) and r["exceedances"] == fit.exceedances
            assert abs(r["raw_threshold"] - fit.threshold) <= FORMAT_REL * abs(fit.threshold) + FLOAT_SD * sd
    finally:
        store.set_camera_thresholds(f"{name}@{version}", {})  # the session's model store is shared by other tests


def test_jpeg_frames_score_the_same_served_and_offline(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, model_root, tmp_path
) -> None:
    """JPEG cameras too: the worker and the data loader decode the same bytes the same way
    (preprocess.decode, reduced JPEG decode included), so the same tolerance holds."""
    from producer.capture import encode_frame

    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base, "encoding": "jpeg"},
                             cameras=len(CAMERAS), frames_per_camera=FRAMES, defect_rate=DEFECT_RATE)
    with running_worker(worker_settings(max_batch=8)):
        assert wait_for_results(redis_client, redis_prefix, list(CAMERAS), sent.sent) == sent.sent
    served = {(cam, int(e["seq"])): float(e["score_raw"]) for cam in CAMERAS for e in history(redis_client, redis_prefix, cam)}
    rendered = _rendered()
    paths = []
    for (camera, seq), (frame, _) in rendered.items():  # the very bytes the producer sent
        paths.append(tmp_path / f"{camera}-{seq:04d}.jpg")
        paths[-1].write_bytes(encode_frame(frame, "jpeg", 90))
    loaded = ModelStore(model_root).load("synth@production")
    _, scores = predict(loaded.module, load_uint8(paths, loaded.input_size))
    offline = dict(zip(rendered, scores.tolist()))
    sd = float(np.std([offline[k] for k, (_, defective) in rendered.items() if not defective]))
    worst = max(offline, key=lambda k: abs(served[k] - offline[k]))
    assert _within(served, offline, sd), f"worst {worst}: served {served[worst]!r}, offline {offline[worst]!r}, sd {sd:.3g}"
