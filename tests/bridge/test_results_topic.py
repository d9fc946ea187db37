"""The worker's results topic (LW_RESULTS_TOPIC): one verdict per scored frame, as Redis has it."""

from __future__ import annotations

import pytest

from linewatch.contract import FrameVerdict, Topics
from linewatch.errors import FrameRejected
from producer.app import produce_synthetic
from testkit.topics import read_topic
from tests.worker.helpers import history, running_worker, wait_for_results


def test_verdict_json_round_trip_and_refusals() -> None:
    v = FrameVerdict(camera="cam-1", frame_id="0-7", seq=7, capture_ns=1, verdict="NG", score=0.9, threshold=0.5,
                     model_name="m", model_version="3", boxes=[(1, 2, 3, 4)])
    assert FrameVerdict.from_json(v.to_json()) == v
    assert v.recipe == "" and v.part == ""
    with pytest.raises(FrameRejected):
        FrameVerdict.from_json(v.to_json().replace(b'"NG"', b'"maybe"'))
    with pytest.raises(FrameRejected):
        FrameVerdict.from_json(b'{"schema": 99}')
    assert Topics.from_base("x").results == "x.results"


@pytest.mark.integration
def test_every_scored_frame_has_one_verdict_on_the_results_topic(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2, frames_per_camera=25,
                             defects={"cam-2": (10, 20)})
    with running_worker(worker_settings(max_batch=8, results_topic=True)):
        assert wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], sent.sent, timeout_s=90) == sent.sent
        records = read_topic(kafka_bootstrap, f"{topic_base}.results", sent.sent, timeout_s=30)
    assert len(records) == sent.sent
    by_camera: dict[str, list[FrameVerdict]] = {}
    for r in records:
        v = FrameVerdict.from_json(r.value)
        assert r.key == v.camera.encode()
        by_camera.setdefault(v.camera, []).append(v)
    for camera in ("cam-1", "cam-2"):
        stored = {h["frame_id"]: h for h in history(redis_client, redis_prefix, camera)}
        verdicts = by_camera[camera]
        assert [v.seq for v in verdicts] == list(range(25))  # one per frame, in the camera's order
        for v in verdicts:
            h = stored[v.frame_id]
            assert v.verdict == ("NG" if h["anomalous"] == "1" else "OK")
            assert (v.seq, v.capture_ns, v.model_name) == (int(h["seq"]), int(h["capture_ns"]), h["model_name"])
            assert v.part == h.get("part", "")
            assert abs(v.score - float(h["score"])) < 1e-6 and abs(v.threshold - float(h["threshold"])) < 1e-6
    assert any(v.verdict == "NG" for v in by_camera["cam-2"])  # the forced defect is there
