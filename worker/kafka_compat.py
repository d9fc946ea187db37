"""One change to how kafka-python reads records: header names that are not UTF-8 no longer stop a batch.

kafka-python decodes every header name as strict UTF-8 while it iterates a record batch. One
record whose header name is not UTF-8 ends the iteration of its whole batch with an error, so
the records after it in that batch (often good frames of the same sender) can never be read, and
the consumer is left facing the same error at the same position. `install()` replaces the
record reader of kafka-python's v2 record batches with `_read_record` below, written from the
Kafka protocol's record layout, which hands such a name over as a
`linewatch.contract.UndecodableName` (its bytes kept, its text escaped, so the client's own
bookkeeping can still encode it): the record reads, and `parse_frame_record` dead-letters it with
reason `unparseable`, key, value and headers intact. Every other check (sizes, counts, checksums)
stays as strict as before.

This touches a private method of kafka-python (kafka.record.default_records.DefaultRecordBatch
._read_msg); `install()` checks that the pieces it relies on are there and refuses otherwise, and
tests/worker/test_kafka_compat.py fails when an upgrade of kafka-python breaks it.
"""

from __future__ import annotations

import structlog
from kafka.errors import CorruptRecordError
from kafka.record import default_records as _records
from kafka.record.util import decode_varint

from linewatch.contract import UndecodableName

log = structlog.get_logger(__name__)

_REQUIRED = ("_read_msg", "_buffer", "_pos", "timestamp_type", "LOG_APPEND_TIME", "max_timestamp",
             "first_timestamp", "base_offset", "is_control_batch")
_installed = False


def _read_record(batch: _records.DefaultRecordBatch) -> _records.DefaultRecord:
    """Read the record at batch._pos (v2 layout: length, attributes, timestamp delta, offset delta,
    key, value, headers; varints throughout) and move _pos past it."""
    buf = batch._buffer
    length, pos = decode_varint(buf, batch._pos)
    start = pos
    _attributes, pos = decode_varint(buf, pos)
    ts_delta, pos = decode_varint(buf, pos)
    offset_delta, pos = decode_varint(buf, pos)
    key, pos = _nullable_bytes(buf, pos)
    value, pos = _nullable_bytes(buf, pos)
    count, pos = decode_varint(buf, pos)
    if count < 0:
        raise CorruptRecordError(f"negative header count {count}")
    headers = []
    for _ in range(count):
        name_len, pos = decode_varint(buf, pos)
        if name_len < 0 or pos + name_len > len(buf):
            raise CorruptRecordError(f"bad header name size {name_len}")
        raw = bytes(buf[pos : pos + name_len])
        pos += name_len
        try:
            name: str = raw.decode("utf-8")
        except UnicodeDecodeError:
            name = UndecodableName(raw)
        header_value, pos = _nullable_bytes(buf, pos)
        headers.append((name, header_value))
    if pos - start != length:
        raise CorruptRecordError(f"record size {length} but {pos - start} bytes read")
    batch._pos = pos
    timestamp = batch.max_timestamp if batch.timestamp_type == batch.LOG_APPEND_TIME else batch.first_timestamp + ts_delta
    kind = _records.ControlRecord if batch.is_control_batch else _records.DefaultRecord
    return kind(length, batch.base_offset + offset_delta, timestamp, batch.timestamp_type, key, value, headers)


def _nullable_bytes(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buf, pos)
    if size < 0:
        return None, pos
    if pos + size > len(buf):
        raise CorruptRecordError(f"field of {size} bytes runs past the batch")
    return bytes(buf[pos : pos + size]), pos + size


def install() -> bool:
    """Use `_read_record` for kafka-python's v2 batches (idempotent); False if this kafka-python lacks
    what it needs (the worker then still steps over such records, losing their batch-mates)."""
    global _installed
    if _installed:
        return True
    batch = _records.DefaultRecordBatch
    missing = [name for name in _REQUIRED if not hasattr(batch, name) and name not in getattr(batch, "__slots__", ())]
    if missing or not hasattr(_records, "ControlRecord"):
        log.warning("kafka-python's record reader is not the expected one; header names stay strict", missing=missing)
        return False
    batch._read_msg = lambda self, *_args, **_kwargs: _read_record(self)
    _installed = True
    return True
