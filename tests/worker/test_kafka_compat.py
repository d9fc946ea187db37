"""kafka-python with linewatch's record reader: a header name that is not UTF-8 hides nothing."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer

from linewatch import contract as c
from linewatch.errors import FrameRejected
from linewatch.settings import KafkaSettings
from linewatch.topics import ensure_topics
from testkit.fuzz import RawName
from testkit.topics import read_topic
from worker import kafka_compat

pytestmark = pytest.mark.integration


def test_records_after_a_bad_header_name_in_the_same_batch_are_read(kafka_bootstrap: str) -> None:
    assert kafka_compat.install()
    base = f"compat-{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(kafka_bootstrap=kafka_bootstrap, topic_base=base), 1)
    topic = f"{base}.frames"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=200)  # one batch for all three
    for i, headers in enumerate([[("a", b"1")], [(RawName(b"lw-\xff\xfe"), b"x")], [("b", b"2")]]):
        producer.send(topic, key=b"k", value=b"v%d" % i, headers=headers, partition=0)
    producer.flush()
    producer.close()
    records = read_topic(kafka_bootstrap, topic, 3, timeout_s=20)
    assert [r.value for r in records] == [b"v0", b"v1", b"v2"]
    name = records[1].headers[0][0]
    assert isinstance(name, c.UndecodableName) and name.raw == b"lw-\xff\xfe"  # the bytes survive
    with pytest.raises(FrameRejected) as info:
        c.parse_frame_record(b"k", records[1].headers)
    assert info.value.reason == c.R_UNPARSEABLE and "not UTF-8" in info.value.detail
    kept = c.dead_letter_headers(records[1].headers, c.R_UNPARSEABLE, "x", "t:0:1")
    assert all(k.encode("utf-8") for k, _ in kept)  # a Kafka client can write every header left
