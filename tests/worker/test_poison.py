"""No record can stop the line: each row of the poison table, then 50 good frames of the same camera.

Real Kafka and Redis; one in-process worker per case. Every case checks that the good frames
after the bad record are all scored exactly once, and that the bad record (if refused) is in the
dead-letter topic with its reason and its offset committed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import cv2
import pytest
import redis as redis_lib
from prometheus_client import REGISTRY
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from linewatch import contract as c
from linewatch.contract import FrameMeta, frame_headers
from producer.synthetic import SyntheticCamera
from testkit.fuzz import RawName, png_bomb
from testkit.services import PrivateRedis
from testkit.topics import committed_total, read_topic
from tests.worker.helpers import CONSUMERS, history, running_worker, wait_for_results

pytestmark = pytest.mark.integration

YEAR_NS = 365 * 86400 * 10**9
CAMERA = "cam-p"


def _jpeg(seq: int) -> bytes:
    image = SyntheticCamera(seed=5, defect_rate=0.0).render(seq)[0]
    return cv2.imencode(".jpg", image)[1].tobytes()


def _meta(seq: int, capture_ns: int) -> FrameMeta:
    return FrameMeta(camera=CAMERA, seq=seq, capture_ns=capture_ns, encoding="jpeg", width=256, height=256)


def _send(producer: KafkaProducer, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
    producer.send(topic, key=key, value=value, headers=headers, partition=0).get(timeout=10)


def _send_good(producer: KafkaProducer, topic: str, seqs: range, clock) -> None:
    for seq in seqs:
        _send(producer, topic, CAMERA.encode(), _jpeg(seq), frame_headers(_meta(seq, clock(seq))))


def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
        return offsets[TopicPartition(topic, 0)].offset if TopicPartition(topic, 0) in offsets else 0
    finally:
        admin.close()


def _bad_record(case: str) -> tuple[bytes | None, bytes, list]:
    now = time.time_ns()
    if case == "no key":
        return None, _jpeg(0), frame_headers(_meta(0, now))
    if case == "seq 0, clock at 5 ns":
        return CAMERA.encode(), _jpeg(0), frame_headers(_meta(0, 5))
    if case == "clock a year ahead":
        return CAMERA.encode(), _jpeg(0), frame_headers(_meta(0, now + YEAR_NS))
    if case == "header name not UTF-8":
        return CAMERA.encode(), _jpeg(0), [(RawName(b"lw-\xff\xfe"), b"x")] + frame_headers(_meta(0, now))
    if case == "PNG bomb":
        meta = replace(_meta(0, now), encoding="png")
        return CAMERA.encode(), png_bomb(30000, 30000), frame_headers(meta)
    raise AssertionError(case)


# case -> (dead-letter reason or None when the frame is scored, scored results expected in all)
CASES = {
    "no key": (c.R_MISSING_KEY, 50),
    "seq 0, clock at 5 ns": (None, 51),
    "clock a year ahead": (None, 51),
    "header name not UTF-8": (c.R_UNPARSEABLE, 50),
    "PNG bomb": (c.R_WRONG_DIMENSIONS, 50),
}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("case", list(CASES))
def test_one_bad_record_then_fifty_good_frames(case, consumer, kafka_bootstrap, topic_base, redis_prefix, redis_client,
                                               worker_settings) -> None:
    reason, expected = CASES[case]
    topic = f"{topic_base}.frames"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 * 1024 * 1024)
    key, value, headers = _bad_record(case)
    _send(producer, topic, key, value, headers)
    start = time.time_ns()
    _send_good(producer, topic, range(1, 51), lambda seq: start + seq * 10**6)
    producer.close()
    settings = worker_settings(kafka_consumer=consumer)
    with running_worker(settings) as worker:
        got = wait_for_results(redis_client, redis_prefix, [CAMERA], expected, timeout_s=90)
        assert got == expected, f"{case}: {got} results, wanted {expected}"
        assert worker.readiness()[0], worker.readiness()[1]
        deadline = time.monotonic() + 20
        while _committed(kafka_bootstrap, settings.group_id, topic) < 51 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert _committed(kafka_bootstrap, settings.group_id, topic) == 51  # nothing stuck behind the bad record
    seqs = [int(e["seq"]) for e in history(redis_client, redis_prefix, CAMERA)]
    assert seqs == ([0] if reason is None else []) + list(range(1, 51))
    if reason is None:
        first = history(redis_client, redis_prefix, CAMERA)[0]
        assert first["clock_ok"] == "0" and first["latency_ms"] == ""
        assert all(e["clock_ok"] == "1" for e in history(redis_client, redis_prefix, CAMERA)[1:])
    else:
        dead = read_topic(kafka_bootstrap, f"{topic_base}.frames.dlq", 1, timeout_s=20)
        assert [dict(r.headers)[c.H_DLQ_REASON].decode() for r in dead] == [reason]
        assert dict(dead[0].headers)[c.H_DLQ_SOURCE].decode() == f"{topic}:0:0"


def test_a_clock_stepping_back_hides_nothing(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    topic = f"{topic_base}.frames"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    start = time.time_ns()
    _send_good(producer, topic, range(50), lambda seq: start + seq * 10**7 - (2 * 10**9 if seq >= 25 else 0))
    producer.close()
    with running_worker(worker_settings()):
        assert wait_for_results(redis_client, redis_prefix, [CAMERA], 50) == 50
    assert [int(e["seq"]) for e in history(redis_client, redis_prefix, CAMERA)] == list(range(50))


def _segment_with(log_dir: Path, topic: str, marker: bytes) -> tuple[Path, int]:
    for segment in sorted((log_dir / f"{topic}-0").glob("*.log")):
        data = segment.read_bytes()
        at = data.find(marker)
        if at >= 0:
            return segment, at
    raise AssertionError(f"marker not found in the segments of {topic}-0 under {log_dir}")


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_a_record_failing_its_checksum_is_stepped_over_with_what_could_be_recovered(
    consumer, kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings
) -> None:
    topic = f"{topic_base}.frames"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    marker = b"CORRUPT-ME-" + topic_base.encode()
    start = time.time_ns()
    value = _jpeg(0) + marker  # trailing bytes after the JPEG's end are legal and ignored by decoders
    _send(producer, topic, CAMERA.encode(), value, frame_headers(_meta(0, start)))
    _send_good(producer, topic, range(1, 11), lambda seq: start + seq * 10**6)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    log_dir = Path(admin.describe_log_dirs()[0]["log_dirs"][0]["log_dir"])
    admin.close()
    segment, at = _segment_with(log_dir, topic, marker)
    with segment.open("r+b") as f:  # flip one byte of the stored value: the batch's CRC no longer matches
        f.seek(at)
        f.write(b"X")
    with running_worker(worker_settings(kafka_consumer=consumer)):
        assert wait_for_results(redis_client, redis_prefix, [CAMERA], 10) == 10
        dead = read_topic(kafka_bootstrap, f"{topic_base}.frames.dlq", 1, timeout_s=20)
    assert [int(e["seq"]) for e in history(redis_client, redis_prefix, CAMERA)] == list(range(1, 11))
    headers = dict(dead[0].headers)
    assert headers[c.H_DLQ_REASON] == c.R_UNPARSEABLE.encode()
    assert b"CorruptRecord" in headers[c.H_DLQ_DETAIL] or b"crc" in headers[c.H_DLQ_DETAIL].lower()
    assert dead[0].value == value.replace(marker, b"X" + marker[1:])  # the stored bytes, as recovered


def test_a_replay_is_invisible_and_alerts_are_not_lost(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings
) -> None:
    """A second group reading the same records (a replay of everything) writes nothing new."""
    from producer.app import produce_synthetic

    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2,
                             frames_per_camera=50, defect_rate=0.0, defects={"cam-1": (20, 45)})
    settings = worker_settings(debounce_n=3, debounce_m=5, alert_cooldown_s=3600)
    with running_worker(settings):
        assert wait_for_results(redis_client, redis_prefix, ["cam-1", "cam-2"], sent.sent) == sent.sent
    before = {cam: history(redis_client, redis_prefix, cam) for cam in ("cam-1", "cam-2")}
    alerts_stream = redis_client.xlen(f"{redis_prefix}:alerts")
    assert alerts_stream == 1
    duplicates = REGISTRY.get_sample_value("linewatch_worker_duplicate_results_total") or 0.0
    replay_group = f"replay-{topic_base}"
    with running_worker(worker_settings(group_id=replay_group, debounce_n=3, debounce_m=5, alert_cooldown_s=3600)):
        deadline = time.monotonic() + 60
        while committed_total(kafka_bootstrap, replay_group) < sent.sent and time.monotonic() < deadline:
            time.sleep(0.2)
    assert REGISTRY.get_sample_value("linewatch_worker_duplicate_results_total") == duplicates + sent.sent
    after = {cam: history(redis_client, redis_prefix, cam) for cam in ("cam-1", "cam-2")}
    assert after == before  # not one entry added or changed
    assert redis_client.xlen(f"{redis_prefix}:alerts") == 1
    alerts = read_topic(kafka_bootstrap, f"{topic_base}.alerts", 2, timeout_s=10)
    # The replay re-sent the alert it had recorded (at least once), with the same frame id.
    assert len(alerts) == 2 and len({c.Alert.from_json(a.value).frame_id for a in alerts}) == 1


def _send_camera(bootstrap: str, topic: str, camera: SyntheticCamera, name: str, seqs: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    start = time.time_ns()
    for seq in seqs:
        value = cv2.imencode(".jpg", camera.render(seq)[0])[1].tobytes()
        meta = FrameMeta(camera=name, seq=seq, capture_ns=start + seq * 10**6, encoding="jpeg", width=256, height=256)
        producer.send(topic, key=name.encode(), value=value, headers=frame_headers(meta))
    producer.flush()
    producer.close()


def test_alert_state_survives_a_change_of_worker(kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings) -> None:
    """A persistent defect spanning two workers (one stops, the next continues) stays one alert."""
    settings = dict(debounce_n=3, debounce_m=5, alert_cooldown_s=3600)
    camera = SyntheticCamera(seed=1, defect_rate=0.0, defect_from=20, defect_to=60)  # the part stays damaged
    topic = f"{topic_base}.frames"
    _send_camera(kafka_bootstrap, topic, camera, "cam-1", range(0, 30))
    with running_worker(worker_settings(**settings)):
        assert wait_for_results(redis_client, redis_prefix, ["cam-1"], 30) == 30
    _send_camera(kafka_bootstrap, topic, camera, "cam-1", range(30, 60))
    with running_worker(worker_settings(worker_id="the-next-owner", **settings)):
        assert wait_for_results(redis_client, redis_prefix, ["cam-1"], 60) == 60
    entries = history(redis_client, redis_prefix, "cam-1")
    assert {e["worker"] for e in entries[30:]} == {"the-next-owner"} and "the-next-owner" not in {e["worker"] for e in entries[:30]}
    assert sum(e["anomalous"] == "1" for e in entries[30:]) >= 10  # the defect was still seen after the hand-over
    assert redis_client.xlen(f"{redis_prefix}:alerts") == 1


def test_a_result_redis_refuses_for_good_is_dead_lettered_and_the_line_goes_on(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings
) -> None:
    from producer.app import produce_synthetic

    redis_client.set(f"{redis_prefix}:latest:cam-2", "not a hash")  # every write of cam-2's latest fails: WRONGTYPE
    sent = produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=2,
                             frames_per_camera=10, defect_rate=0.0)
    with running_worker(worker_settings()) as worker:
        assert wait_for_results(redis_client, redis_prefix, ["cam-1"], 10) == 10
        dead = read_topic(kafka_bootstrap, f"{topic_base}.frames.dlq", 10, timeout_s=20)
        deadline = time.monotonic() + 20
        while worker.checkpoint.in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.checkpoint.in_flight() == 0 and worker.health.ok
    assert sent.sent == 20
    assert {dict(r.headers)[c.H_DLQ_REASON] for r in dead} == {c.R_PUBLISH_REJECTED.encode()}
    assert len(dead) == 10 and b"WRONGTYPE" in dict(dead[0].headers)[c.H_DLQ_DETAIL]


def test_redis_out_of_memory_makes_the_worker_not_ready_then_exit(
    kafka_bootstrap, topic_base, redis_prefix, worker_settings, tmp_path
) -> None:
    from producer.app import produce_synthetic

    private = PrivateRedis(tmp_path)
    private.start()
    client = redis_lib.Redis.from_url(private.url)
    try:
        client.set("ballast", b"x" * 2_000_000)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1mb")  # already over the limit: every write is refused
        produce_synthetic({"kafka_bootstrap": kafka_bootstrap, "topic_base": topic_base}, cameras=1, frames_per_camera=5)
        settings = worker_settings(redis_url=private.url, fatal_after_s=3, publish_retry_max_s=0.5)
        from worker.app import Worker

        worker = Worker(settings)
        worker.start()
        deadline = time.monotonic() + 30
        while worker.health.ok and time.monotonic() < deadline:
            worker.step()
        ready, details = worker.readiness()
        assert not ready and "refused: redis" in details["outputs"] and "out of memory" in details["outputs"]
        while not worker.supervisor.failed.is_set() and time.monotonic() < deadline:
            worker.step()
        code = worker.run()
        assert code == 3 and "redis" in (worker.supervisor.cause or "")
    finally:
        private.stop()
