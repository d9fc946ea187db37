"""Structure-aware mutations of good frame records, and the hostile pieces they use: header names
that are not UTF-8, and PNG/JPEG "bombs" that declare huge images in a few bytes."""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from linewatch import contract as c


class RawName(str):
    """A header name whose bytes on the wire are not UTF-8 (kafka-python encodes names with str.encode)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> "RawName":
        obj = super().__new__(cls, raw.decode("latin-1"))
        obj.raw = raw
        return obj

    def encode(self, *args: object, **kwargs: object) -> bytes:  # noqa: ARG002
        return self.raw


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose IHDR declares `width` x `height` pixels."""
    small = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    data = struct.pack(">II", width, height) + small[24:29]
    return small[:16] + data + struct.pack(">I", zlib.crc32(b"IHDR" + data)) + small[33:]


def jpeg_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A small JPEG whose start-of-frame declares `width` x `height` pixels."""
    jpeg = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    pos = 2
    while pos < len(jpeg):
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        if marker == 0xC0:
            jpeg[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(jpeg)
        pos += 2 + length
    raise RuntimeError("no SOF0 in OpenCV's JPEG")


HEADER_REASONS = frozenset({c.R_BAD_HEADER, c.R_MISSING_HEADER, c.R_UNKNOWN_SCHEMA, c.R_KEY_MISMATCH})
IMAGE_REASONS = frozenset({c.R_UNDECODABLE, c.R_WRONG_DIMENSIONS, c.R_OVERSIZE})

_REQUIRED = (c.H_SCHEMA, c.H_CAMERA, c.H_SEQ, c.H_CAPTURE_NS, c.H_ENCODING, c.H_WIDTH, c.H_HEIGHT, c.H_CHANNELS)


@dataclass(slots=True)
class Mutant:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    kinds: list[str] = field(default_factory=list)
    must_reject: bool = False  # at least one mutation makes the record invalid for certain
    acceptable: set[str] = field(default_factory=set)  # dead-letter reasons the mutations may cause
    # Header damage is judged on the final headers: a later op may drop the header an earlier one
    # broke (an empty lw-channels, then lw-channels dropped, is a valid record again).
    bad_values: set[tuple[str, bytes | None]] = field(default_factory=set)  # (name, value) invalid for certain
    touched: set[str] = field(default_factory=set)  # names duplicated or dropped

    def headers_certainly_bad(self) -> bool:
        for name in self.touched | {n for n, _ in self.bad_values}:
            values = [v for k, v in self.headers if k == name]
            if not values and name != c.H_CHANNELS:
                return True  # a required header is missing
            if len(set(values)) > 1 or (len(values) == 1 and (name, values[0]) in self.bad_values):
                return True
        return False


# An operation changes a Mutant and says (certainly invalid?, reasons it may cause).
Op = Callable[[Mutant, dict[str, bytes]], tuple[bool, frozenset[str]]]
_NONE: tuple[bool, frozenset[str]] = (False, frozenset())


class Fuzzer:
    """Mutates good frame records: header names and values, keys, values, encodings, dimensions.

    Each mutant gets one to three mutations. The worker checks a record in one order and
    dead-letters it with the reason of the first check that fails, so a mutant's acceptable
    reasons are the union of what its mutations may cause. A mutation of image bytes may leave a
    decodable image: unless another mutation is certain to invalidate the record, the audit then
    accepts one result or one dead letter, but never neither and never both.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.ops: list[Op] = [
            self._header_name_not_utf8, self._header_name_empty, self._header_name_huge, self._header_name_non_ascii,
            self._header_value_empty, self._header_value_huge, self._header_value_not_ascii, self._header_value_negative,
            self._header_value_overflow, self._header_duplicate_conflict, self._header_dropped,
            self._key_missing, self._key_odd, self._key_long, self._value_truncated, self._value_bit_flips,
            self._value_swapped, self._value_null, self._value_random, self._encoding_lies, self._dimensions_lie,
            self._png_bomb, self._jpeg_bomb,
        ]
        # Mutations that replace the value; a later one may undo what an earlier one broke.
        self._value_ops = {self._value_truncated, self._value_bit_flips, self._value_swapped, self._value_null,
                           self._value_random, self._png_bomb, self._jpeg_bomb}

    def mutate(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]], other: bytes) -> Mutant:
        m = Mutant(key, value, list(headers))
        value_certain = False  # only the last mutation of the value decides what the value is
        for op in self.rng.sample(self.ops, self.rng.randint(1, 3)):
            certain, reasons = op(m, {"other": other})
            m.kinds.append(op.__name__.lstrip("_"))
            if op in self._value_ops:
                value_certain = certain
            else:
                m.must_reject |= certain
            m.acceptable |= reasons
        m.must_reject |= value_certain or m.headers_certainly_bad()
        if "header_name_not_utf8" in m.kinds:  # the client fails before any check of ours sees the record
            m.must_reject, m.acceptable = True, {c.R_UNPARSEABLE}
        return m

    # header names
    def _header_name_not_utf8(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append((RawName(b"lw-\xff\xfe" + bytes([self.rng.randrange(128, 256)])), b"x"))
        return True, frozenset({c.R_UNPARSEABLE})

    def _header_name_empty(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("", b"x"))  # not one of ours: ignored
        return _NONE

    def _header_name_huge(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("x-" + "n" * 20_000, b"x"))
        return _NONE

    def _header_name_non_ascii(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.headers.append(("lw-s\u00e9q", b"1"))
        return _NONE

    def _pick(self, m: Mutant) -> int:
        ours = [i for i, (k, _) in enumerate(m.headers) if k in _REQUIRED]
        return self.rng.choice(ours) if ours else -1

    # header values
    def _set(self, m: Mutant, value: bytes | None) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name = m.headers[i][0]
        m.headers[i] = (name, value)
        if name == c.H_CHANNELS and value is None:
            return _NONE  # lw-channels is optional: a null one is as good as none
        m.bad_values.add((name, value))
        return False, HEADER_REASONS  # certainty: Mutant.headers_certainly_bad, on the final headers

    def _header_value_empty(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"")

    def _header_value_huge(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"9" * 50_000)

    def _header_value_not_ascii(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"\xff\xfe\x00")

    def _header_value_negative(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, b"-" + str(self.rng.randint(1, 10**6)).encode())

    def _header_value_overflow(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        return self._set(m, str(2**64 + self.rng.randint(0, 1000)).encode())

    def _header_duplicate_conflict(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name, value = m.headers[i]
        m.headers.append((name, (value or b"") + b"7"))
        m.touched.add(name)
        return False, HEADER_REASONS

    def _header_dropped(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        i = self._pick(m)
        if i < 0:
            return _NONE
        name = m.headers.pop(i)[0]
        m.touched.add(name)
        return _NONE if name == c.H_CHANNELS else (False, HEADER_REASONS)

    # keys
    def _key_missing(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = None
        return True, frozenset({c.R_MISSING_KEY}) | HEADER_REASONS

    def _key_odd(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = b"\x00\xff" + bytes(self.rng.randrange(256) for _ in range(6))
        return True, HEADER_REASONS

    def _key_long(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.key = b"k" * 100_000
        return True, HEADER_REASONS

    # values
    def _value_truncated(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        if m.value:
            m.value = m.value[: self.rng.randrange(0, len(m.value))]
        return False, IMAGE_REASONS

    def _value_bit_flips(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        if m.value:
            data = bytearray(m.value)
            for _ in range(self.rng.randint(1, 10)):
                data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            m.value = bytes(data)
        return False, IMAGE_REASONS

    def _value_swapped(self, m: Mutant, ctx: dict) -> tuple[bool, frozenset[str]]:
        m.value = ctx["other"]  # another camera's frame of the same size: may well be valid
        return False, IMAGE_REASONS

    def _value_null(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = None
        return True, IMAGE_REASONS

    def _value_random(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 4096)))
        return False, IMAGE_REASONS

    # encodings and dimensions
    def _encoding_lies(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        for i, (k, _v) in enumerate(m.headers):
            if k == c.H_ENCODING:
                m.headers[i] = (k, self.rng.choice([b"png", b"raw"]))
        return False, IMAGE_REASONS  # certain only while the value is still the JPEG, which a later op may change

    def _dimensions_lie(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        for i, (k, v) in enumerate(m.headers):
            if k in (c.H_WIDTH, c.H_HEIGHT) and v and v.isdigit() and len(v) <= 9:  # an earlier op may have made it 50 KB of digits
                m.headers[i] = (k, str(int(v) * self.rng.choice([2, 3, 7])).encode())
        return False, IMAGE_REASONS | HEADER_REASONS

    def _png_bomb(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = png_bomb(self.rng.choice([30000, 20000, 16384]), self.rng.choice([30000, 20000, 16384]))
        m.headers = [(k, b"png" if k == c.H_ENCODING else v) for k, v in m.headers]
        return True, IMAGE_REASONS

    def _jpeg_bomb(self, m: Mutant, _: dict) -> tuple[bool, frozenset[str]]:
        m.value = jpeg_bomb(self.rng.choice([20000, 16000, 9000]), self.rng.choice([20000, 12000]))
        m.headers = [(k, b"jpeg" if k == c.H_ENCODING else v) for k, v in m.headers]
        return True, IMAGE_REASONS
