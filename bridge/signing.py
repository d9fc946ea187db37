"""Webhook signatures: HMAC-SHA256 over "<timestamp>." + body, checked by the receiver.

The bridge sends, with each POST:
    X-Linewatch-Timestamp: <unix seconds>
    X-Linewatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Linewatch-Idempotency-Key: <camera>/<frame_id>

A receiver calls `verify` with the raw body: it refuses a wrong signature and a timestamp older
(or further ahead) than `max_age_s`, so a captured request cannot be replayed later. Within the
window a replay is indistinguishable from a redelivery: deduplicate by the idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac
import time

H_TIMESTAMP = "X-Linewatch-Timestamp"
H_SIGNATURE = "X-Linewatch-Signature"
H_KEY = "X-Linewatch-Idempotency-Key"
H_KIND = "X-Linewatch-Kind"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, max_age_s: float = 300, now: float | None = None) -> bool:
    """True if `signature` is ours over this body and timestamp, and the timestamp is recent."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > max_age_s:
        return False  # too old (a replay) or from a clock far off
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
