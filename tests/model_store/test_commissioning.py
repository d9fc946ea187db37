"""`calibrate --from-stream` on the real Redis: history entries written as the worker writes them,
operator feedback, the outlier guard, and the per-camera thresholds it stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis

from linewatch import contract as c
from linewatch.contract import Alert, RedisKeys
from model_store.calibration import allowed_exceedances
from model_store.cli import main
from model_store.commissioning import outlier_fence
from model_store.manifest import Calibration
from model_store.registry import create_model
from model_store.store import ModelStore, normalise_scores

pytestmark = pytest.mark.integration

CAL = Calibration(threshold=1.3, scale=0.08, normal_median=1.0, method="order_statistic", pixel_threshold=0.5,
                  n_normal=76, flagged_normal_fraction=0.0, target_far=0.001, confidence=0.95, far_bound=0.0386,
                  exceedances=0, n_needed=2995)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """A store with `part@v0001` (production): a small autoencoder and a known calibration."""
    s = ModelStore(tmp_path / "store")
    module = create_model("autoencoder", width=4, latent=8, depth=2)
    s.publish("part", module, {"architecture": "autoencoder", "kwargs": {"width": 4, "latent": 8, "depth": 2},
                               "input_size": (32, 32), "score_definition": module.score_definition, "calibration": CAL})
    s.promote("part", "v0001")
    return s


class History:
    """Writes P:history:<camera> entries field for field as the worker does (Redis-chosen IDs)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.keys = client, RedisKeys(prefix)
        self.offset = 0

    def write(self, camera: str, scores: np.ndarray, version: str = "v0001", name: str = "part") -> list[str]:
        ids, pipe = [], self.client.pipeline(transaction=False)
        for score in scores:
            frame_id = c.frame_id(0, self.offset)
            fields = {f: "" for f in c.RESULT_FIELDS} | {
                "camera": camera, "seq": str(self.offset), "frame_id": frame_id, "capture_ns": str(10**18 + self.offset),
                "clock_ok": "1", "score_raw": f"{score:.6g}", "score": f"{normalise_scores(np.array([score]), CAL)[0]:.6f}",
                "threshold": "0.500000", "anomalous": "1" if score >= CAL.threshold else "0", "model_name": name,
                "model_version": version, "latency_ms": "3.10", "boxes": "[]", "worker": "w-1",
            }
            pipe.xadd(self.keys.history(camera), fields)
            ids.append(frame_id)
            self.offset += 1
        pipe.execute()
        return ids

    def feedback(self, camera: str, frame_id: str, verdict: str) -> None:
        self.client.xadd(self.keys.feedback, {"camera": camera, "frame_id": frame_id, "verdict": verdict, "note": "",
                                              "time_ns": "1", "user": "op"})


def _calibrate(capsys, store: ModelStore, redis_url: str, prefix: str, *args: str) -> tuple[int, dict]:
    capsys.readouterr()  # drop what the test's own set-up logged
    code = main(["--store", str(store.root), "calibrate", "part", "--redis-url", redis_url, "--redis-prefix", prefix, *args])
    return code, json.loads(capsys.readouterr().out)


def _gumbel(seed: int, n: int) -> np.ndarray:
    """Normal-frame scores shaped like maxima of anomaly maps; rounded as the worker rounds them."""
    return np.array([float(f"{x:.6g}") for x in np.random.default_rng(seed).gumbel(1.0, 0.05, n)])


def test_thresholds_fitted_per_camera_from_what_was_served(store, redis_client, redis_url, redis_prefix, capsys) -> None:
    hist = History(redis_client, redis_prefix)
    hist.write("cam-a", np.full(50, 9.0))  # older than the window: huge, must not count
    a = _gumbel(1, 2000)
    hist.write("cam-a", a[:1000])
    hist.write("cam-a", np.full(30, 50.0), version="v0999")  # another version, inside the window: skipped
    hist.write("cam-a", a[1000:])
    b = _gumbel(2, 2000) + 0.2  # a brighter camera: its normals score higher
    hist.write("cam-b", b)
    redis_client.xadd(RedisKeys(redis_prefix).history("cam-b"), {"camera": "cam-b", "model_name": "part",
                                                                  "model_version": "v0001", "score_raw": "nan?"})
    watcher = store.load("part")
    stamp = watcher.camera_thresholds_stamp

    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-a,cam-b", "--frames", "2000",
                           "--target-far", "0.01")
    assert code == 0, out["warnings"]
    j = allowed_exceedances(2000, 0.01, 0.95)
    assert j == 12  # Bin(2000, 0.01): P(<=12) = 0.038, P(<=13) = 0.065
    got = {r["camera"]: r for r in out["cameras"]}
    for cam, scores in (("cam-a", a), ("cam-b", b)):
        r = got[cam]
        assert r["status"] == "calibrated" and r["n"] == 2000 and r["outliers"] == []
        assert r["raw_threshold"] == np.sort(scores)[-(j + 1)]  # the (j+1)-th largest of exactly this window
        assert r["far_bound"] <= 0.01 and r["exceedances"] == (scores > r["raw_threshold"]).sum()
        assert r["threshold"] == pytest.approx(normalise_scores(np.array([r["raw_threshold"]]), CAL)[0])
    assert got["cam-a"]["other_versions_skipped"] == 30 and got["cam-b"]["unreadable_entries"] == 1
    assert got["cam-b"]["raw_threshold"] > got["cam-a"]["raw_threshold"]

    # Stored beside the version, as normalised thresholds; a running worker sees the change with one stat().
    stored = store.camera_thresholds("part", "v0001")
    assert stored == {"cam-a": got["cam-a"]["threshold"], "cam-b": got["cam-b"]["threshold"]}
    new_stamp, fresh = store.camera_thresholds_if_changed("part", "v0001", stamp)
    assert new_stamp != stamp and fresh == stored
    assert store.camera_thresholds_if_changed("part", "v0001", new_stamp) == (new_stamp, None)
    assert store.camera_calibrations("part", "v0001")["cam-b"]["n"] == 2000
    # The worker's decision (normalised score >= normalised threshold) flags what the fit counted.
    norm_b = normalise_scores(b, CAL)
    assert ((norm_b >= stored["cam-b"]) & (b != got["cam-b"]["raw_threshold"])).sum() == got["cam-b"]["exceedances"]


def test_outliers_are_refused_unless_told(store, redis_client, redis_url, redis_prefix, capsys) -> None:
    hist = History(redis_client, redis_prefix)
    normal = _gumbel(3, 600)
    ids = hist.write("cam-c", np.r_[normal[:200], 2.5, normal[200:400], 2.4, 2.6, normal[400:]])
    outlier_ids = sorted([ids[200], ids[401], ids[402]])
    assert outlier_fence(normal) < 2.4  # the injected defects are far beyond the fence; the normals are not

    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-c", "--frames", "603", "--target-far", "0.01")
    r = out["cameras"][0]
    assert code == 3 and r["status"] == "refused" and "outlier" in r["reason"]
    assert sorted(o["frame_id"] for o in r["outliers"]) == outlier_ids
    assert any("refused" in w for w in out["warnings"])
    assert store.camera_thresholds("part", "v0001") == {}  # nothing absorbed silently

    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-c", "--frames", "603",
                           "--target-far", "0.01", "--outliers", "exclude")
    r = out["cameras"][0]
    assert code == 0 and r["status"] == "calibrated" and r["n"] == 600, r["reason"]
    assert r["raw_threshold"] == np.sort(normal)[-(allowed_exceedances(600, 0.01, 0.95) + 1)]

    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-c", "--frames", "603",
                           "--target-far", "0.01", "--outliers", "include")
    r = out["cameras"][0]
    assert code == 0 and r["n"] == 603
    # kept in, the defects drag the threshold up into them (j = 1 allowed exceedance: the 2nd largest)
    assert r["raw_threshold"] == np.sort(np.r_[normal, 2.5, 2.4, 2.6])[-(allowed_exceedances(603, 0.01, 0.95) + 1)] == 2.5


def test_operator_feedback_joins_and_excludes_frames(store, redis_client, redis_url, redis_prefix, capsys) -> None:
    hist = History(redis_client, redis_prefix)
    keys = RedisKeys(redis_prefix)
    old_ids = hist.write("cam-d", [1.45, 1.5])  # alerted long ago, outside the window
    normal = _gumbel(4, 400)
    ids = hist.write("cam-d", np.r_[normal, 2.5, 2.7])
    confirmed, vouched = ids[-1], ids[-2]
    hist.feedback("cam-d", old_ids[1], c.VERDICT_FALSE_ALARM)  # its score is still in the history
    hist.feedback("cam-d", vouched, c.VERDICT_CONFIRMED)
    hist.feedback("cam-d", vouched, c.VERDICT_FALSE_ALARM)  # the newest verdict counts
    hist.feedback("cam-d", confirmed, c.VERDICT_FALSE_ALARM)
    hist.feedback("cam-d", confirmed, c.VERDICT_CONFIRMED)
    hist.feedback("cam-x", ids[0], c.VERDICT_CONFIRMED)  # another camera's verdict: ignored here
    # A false alarm whose history entry is gone but whose alert is still in the alerts stream.
    alert = Alert(camera="cam-d", frame_seq=7, capture_ns=1, score_raw=1.6, score=0.9, threshold=0.5, model_name="part",
                  model_version="v0001", mask_key="", mask_size=(32, 32), frame_id="3-77")
    redis_client.xadd(keys.alerts, {"alert": alert.to_json()})
    hist.feedback("cam-d", "3-77", c.VERDICT_FALSE_ALARM)
    hist.feedback("cam-d", "9-999", c.VERDICT_FALSE_ALARM)  # nowhere to be found

    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-d", "--frames", "402", "--target-far", "0.05")
    r = out["cameras"][0]
    assert code == 0, r["reason"]
    assert r["confirmed_excluded"] == [confirmed]
    assert sorted(f["frame_id"] for f in r["false_alarms_added"]) == sorted([old_ids[1], "3-77"])
    assert r["false_alarms_missing"] == ["9-999"]
    assert r["outliers"] == []  # the vouched 2.5 is above the fence but an operator called it normal
    fitted = np.r_[normal, 2.5, 1.5, 1.6]
    assert r["n"] == fitted.size == 403
    assert r["raw_threshold"] == np.sort(fitted)[-(allowed_exceedances(403, 0.05, 0.95) + 1)]


def test_nothing_served_by_the_version_is_refused(store, redis_client, redis_url, redis_prefix, capsys) -> None:
    History(redis_client, redis_prefix).write("cam-e", np.ones(20), version="v0007")
    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-e,cam-none", "--frames", "10")
    assert code == 3
    assert all(r["status"] == "refused" and r["frames_read"] == 0 for r in out["cameras"])
    assert out["cameras"][0]["other_versions_skipped"] == 20


def test_a_threshold_beyond_the_normalised_scale_is_refused(store, redis_client, redis_url, redis_prefix, capsys) -> None:
    """A camera whose normals score some fifty times the version's threshold: the normalised value would be 1.0."""
    History(redis_client, redis_prefix).write("cam-f", _gumbel(5, 300) + 60.0)
    code, out = _calibrate(capsys, store, redis_url, redis_prefix, "--from-stream", "cam-f", "--frames", "300", "--target-far", "0.05")
    assert code == 3 and "normalised scale" in out["cameras"][0]["reason"]
    assert store.camera_thresholds("part", "v0001") == {}


def test_stamp_changes_on_every_rewrite_even_within_one_mtime_tick(tmp_path: Path) -> None:
    from model_store.backend import LocalBackend

    backend = LocalBackend(tmp_path)
    assert backend.stamp("m/v0001/camera_thresholds.json") is None
    stamps = []
    for body in (b'{"a": 0.6}', b'{"a": 0.7}', b'{"a": 0.7}'):  # same size, written back to back
        backend.write_atomic("m/v0001/camera_thresholds.json", body)
        stamps.append(backend.stamp("m/v0001/camera_thresholds.json"))
    assert len(set(stamps)) == 3
