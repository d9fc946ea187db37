"""A lamp change is told apart from a defect, and a camera commissioned from the stream keeps its
promise. Real Kafka, Redis and worker; one synthetic camera whose lighting drifts.

1. 150 frames in normal light, then the lamp brightens by 1 % a frame up to +30 %: a `recalibrate`
   event (signal brightness) reaches Redis before false alerts pile up.
2. The camera is recommissioned from the stream in its new light (`commission`, target 1 %).
3. 480 more normal frames and a persistent defect: the defect alerts; the normal frames stay
   quiet at the target rate, counted over enough frames to say so. The damaged part is one whose
   defect a small autoencoder at 64 px sees through the brighter light (its score lies above every
   normal frame's, for models trained with 1 or 2 threads); most synthetic defects are too faint
   for it under +30 % light, and a test of commissioning must not hinge on the model's luck.
"""

from __future__ import annotations

import json
import time

import cv2
import pytest
from kafka import KafkaProducer
from scipy.stats import binom

from linewatch.contract import Alert, FrameMeta, frame_headers
from model_store.commissioning import StreamRequest, commission
from model_store.store import ModelStore
from producer.synthetic import SyntheticCamera
from tests.worker.helpers import history, running_worker, wait_for_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAMERA = "cam-1"
FRAME_NS = 125_000_000  # 8 fps of capture time
TARGET = 0.01
DEFECT_FROM = 1080  # frames 1080..1109: the damaged part (see 3. above)


def _send(bootstrap: str, topic: str, camera: SyntheticCamera, seqs: range, start_ns: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for seq in seqs:
        value = cv2.imencode(".jpg", camera.render(seq)[0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        meta = FrameMeta(camera=CAMERA, seq=seq, capture_ns=start_ns + seq * FRAME_NS, encoding="jpeg", width=256, height=256)
        producer.send(topic, key=CAMERA.encode(), value=value, headers=frame_headers(meta))
    producer.flush()
    producer.close()


def _alerts(redis_client, prefix: str) -> list[Alert]:
    return [Alert.from_json(fields[b"alert"]) for _, fields in redis_client.xrange(f"{prefix}:alerts")]


def test_a_lamp_change_is_told_from_a_defect_and_commissioning_holds(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, model_root, tmp_path
) -> None:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(model_root, root)  # commissioning writes beside the model: keep the session's store clean
    settings = worker_settings(model_root=root, drift_window=30, drift_every=5, drift_image_pct=8.0,
                               debounce_n=3, debounce_m=5, alert_cooldown_s=5, model_poll_s=0.3)
    topic = f"{topic_base}.frames"
    # Capture times in the past, 8 fps apart, all plausible: frames sent faster than they were "captured"
    # would otherwise run more than LW_CLOCK_MAX_AHEAD_S ahead of the worker's clock, and the alert cool-down
    # of those falls back to the worker's clock, where the last alert of step 2 may lie < 5 s before the
    # damaged part (one CI run lost that race).
    start = time.time_ns() - (DEFECT_FROM + 30) * FRAME_NS
    lamp = SyntheticCamera(seed=1, defect_rate=0.0, drift_from=150, drift_per_frame=0.01, drift_max=1.3)
    with running_worker(settings):
        # 1. the lamp changes
        _send(kafka_bootstrap, topic, lamp, range(0, 300), start)
        assert wait_for_results(redis_client, redis_prefix, [CAMERA], 300) == 300
        events = [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis_client.xrange(f"{redis_prefix}:recalibrate")]
        brightness = [e for e in events if e["signal"] == "brightness" and e["camera"] == CAMERA]
        assert brightness, f"no brightness drift event; events: {events}"
        first_event_ns = int(brightness[0]["time_ns"])
        before = [a for a in _alerts(redis_client, redis_prefix) if a.emitted_ns < first_event_ns]
        assert len(before) <= 1, f"{len(before)} false alerts before the drift event"
        assert float(brightness[0]["value"]) > float(brightness[0]["high"])

        # 2. recommissioned in the new light, from what the worker served
        calibration = SyntheticCamera(seed=1, defect_rate=0.0, drift_from=0, drift_per_frame=1.0, drift_max=1.3)  # +30 %
        _send(kafka_bootstrap, topic, calibration, range(300, 600), start)
        assert wait_for_results(redis_client, redis_prefix, [CAMERA], 600) == 600
        store = ModelStore(root)
        report = commission(store, redis_client, settings.keys,
                            StreamRequest(ref="synth@production", cameras=[CAMERA], frames=300, target=TARGET,
                                          confidence=0.95, outliers="refuse"))
        assert report["cameras"][0]["status"] == "calibrated", json.dumps(report["cameras"][0])[:1500]
        assert not redis_client.exists(f"{redis_prefix}:drift:{CAMERA}")  # the drift baseline is learned anew
        time.sleep(1.5)  # the worker's model poll picks the new per-camera threshold up, no restart

        # 3. normal frames in the new light, then a damaged part
        after = SyntheticCamera(seed=1, defect_rate=0.0, drift_from=0, drift_per_frame=1.0, drift_max=1.3,
                                defect_from=DEFECT_FROM, defect_to=DEFECT_FROM + 30)
        _send(kafka_bootstrap, topic, after, range(600, DEFECT_FROM + 30), start)
        assert wait_for_results(redis_client, redis_prefix, [CAMERA], DEFECT_FROM + 30) == DEFECT_FROM + 30
    entries = {int(e["seq"]): e for e in history(redis_client, redis_prefix, CAMERA)}
    normal = [entries[s] for s in range(600, DEFECT_FROM)]
    threshold = {e["threshold"] for e in normal}
    assert len(threshold) == 1 and threshold != {"0.500000"}, threshold  # the camera's own threshold was in force
    false_alarms = sum(e["anomalous"] == "1" for e in normal)
    # At the stated 1 %, 480 normal frames give more than this many false alarms with < 1 % chance.
    assert false_alarms <= binom.ppf(0.99, len(normal), TARGET), f"{false_alarms} of {len(normal)} normal frames flagged"
    defect_alerts = [a for a in _alerts(redis_client, redis_prefix) if a.frame_seq >= DEFECT_FROM]
    assert defect_alerts, "the damaged part gave no alert"
