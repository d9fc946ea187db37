"""What became of every record a scenario sent: scored exactly once, dead-lettered with an
acceptable reason, or lost."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import redis

from linewatch import contract as c
from testkit.streams import FuzzStream, GoodStream
from testkit.topics import read_topic


@dataclass
class Audit:
    good_sent: int = 0
    good_scored_once: int = 0
    good_missing: int = 0
    duplicates: int = 0  # results visible twice in Redis
    bad_sent: int = 0
    bad_dead_lettered: int = 0
    bad_scored: int = 0  # a mutation that left a valid frame
    bad_unaccounted: int = 0
    reason_ok: int = 0  # dead letters whose reason is one the mutations may cause
    # Bad records dead-lettered more than once (the same source offset, the same reason): Kafka
    # outputs are at least once (README: Delivery guarantees); the lw-dlq-source header is the
    # key a reader deduplicates by. Counted, not a failure.
    dead_letter_repeats: int = 0
    # Valid mutants whose result Redis no longer holds (their camera, on probation, forgotten with
    # its keys by a later id flood, as designed) but whose verdict is on the results topic.
    scored_on_results_topic: int = 0
    must_reject: int = 0
    must_reject_dead_lettered: int = 0
    reasons: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)

    @property
    def good_pct(self) -> float:
        return 100.0 * self.good_scored_once / self.good_sent if self.good_sent else 100.0

    @property
    def bad_pct(self) -> float:
        accounted = self.bad_dead_lettered + self.bad_scored
        return 100.0 * accounted / self.bad_sent if self.bad_sent else 100.0


def results_by_frame(client: redis.Redis, prefix: str) -> dict[str, list[dict[str, str]]]:
    """Every history entry under `prefix`, by frame_id."""
    found: dict[str, list[dict[str, str]]] = {}
    for key in client.scan_iter(f"{prefix}:history:*", count=1000):
        for _entry_id, fields in client.xrange(key):
            entry = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            found.setdefault(entry["frame_id"], []).append(entry)
    return found


def _verdict_frame_ids(bootstrap: str, base: str) -> set[str]:
    return {c.FrameVerdict.from_json(r.value).frame_id for r in read_topic(bootstrap, f"{base}.results")}


def audit(bootstrap: str, base: str, client: redis.Redis, prefix: str, good: GoodStream,
          fuzz: FuzzStream | None = None, retained: int = 0, results_topic: bool = False) -> Audit:
    """`retained` > 0: audit only each camera's last `retained` good frames, the ones the history's
    caps still keep (a soak outlives them by design). `results_topic`: the workers also published
    verdicts (LW_RESULTS_TOPIC); a mutant with neither a result in Redis nor a dead letter counts as
    scored if its verdict is there (its camera never left probation and a flood evicted it)."""
    topic = f"{base}.frames"
    results = results_by_frame(client, prefix)
    dead = {}
    for record in read_topic(bootstrap, f"{base}.frames.dlq"):
        headers = dict((k, v) for k, v in record.headers or [] if isinstance(k, str))
        source = headers.get(c.H_DLQ_SOURCE, b"").decode()
        if source.startswith(f"{topic}:"):
            _, p, o = source.rsplit(":", 2)
            dead.setdefault(f"{p}-{o.split('-')[0]}", []).append(headers.get(c.H_DLQ_REASON, b"").decode())
    landed_good = good.landed
    if retained:
        newest: dict[str, int] = {}
        for camera, seq in landed_good:
            newest[camera] = max(newest.get(camera, seq), seq)
        landed_good = {k: v for k, v in landed_good.items() if k[1] > newest[k[0]] - retained}
    a = Audit(good_sent=len(landed_good), bad_sent=len(fuzz.landed) if fuzz else 0)
    for (camera, seq), landed in landed_good.items():
        entries = results.get(landed.frame_id, [])
        if len(entries) == 1 and entries[0]["camera"] == camera and entries[0]["seq"] == str(seq):
            a.good_scored_once += 1
        elif not entries:
            a.good_missing += 1
            a.mismatches.append(f"good {camera}#{seq} at {landed.frame_id}: no result ({dead.get(landed.frame_id)})")
        a.duplicates += max(0, len(entries) - 1)
    verdicts = functools.cache(lambda: _verdict_frame_ids(bootstrap, base))  # read once, only if needed
    for n, (landed, mutant) in (fuzz.landed.items() if fuzz else []):
        scored = results.get(landed.frame_id, [])
        reasons = dead.get(landed.frame_id, [])
        a.duplicates += max(0, len(scored) - 1)
        if reasons and len(set(reasons)) == 1 and not scored:
            a.bad_dead_lettered += 1
            a.dead_letter_repeats += len(reasons) - 1
            a.reasons[reasons[0]] += 1
            if reasons[0] in mutant.acceptable:
                a.reason_ok += 1
            else:
                a.mismatches.append(f"mutant {n} {mutant.kinds}: dead-lettered as {reasons[0]}, not {sorted(mutant.acceptable)}")
        elif len(scored) == 1 and not reasons:
            a.bad_scored += 1
        elif results_topic and not scored and not reasons and landed.frame_id in verdicts():
            a.bad_scored += 1
            a.scored_on_results_topic += 1
        else:
            a.bad_unaccounted += 1
            a.mismatches.append(f"mutant {n} {mutant.kinds} at {landed.frame_id}: {len(scored)} results, dead letters {reasons}")
        if mutant.must_reject:
            a.must_reject += 1
            if reasons and len(set(reasons)) == 1 and not scored:
                a.must_reject_dead_lettered += 1
            else:
                a.mismatches.append(f"mutant {n} {mutant.kinds}: invalid, yet {len(scored)} results")
    return a
