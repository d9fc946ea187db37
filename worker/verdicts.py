"""A scored batch -> what each frame's Redis write holds: the verdict, its fields, masks and pictures.

Pure turning of model outputs into results: the threshold in force for the camera (worker/scoring.py),
anomalous or not, the mask and boxes, the heatmap and preview JPEG where someone will look
(worker/previews.py), the alert the debounce may raise, and whether the capture clock is plausible.
No I/O: the delivery (worker/delivery.py) writes what this builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linewatch.contract import Alert, RedisKeys
from worker.previews import PreviewClock, heat_png, preview_jpeg
from worker.records import ScoredBatch
from worker.routing import frame_map
from worker.scoring import anomaly_mask, effective_threshold
from worker.sinks import FrameWrite, boxes_json


@dataclass(frozen=True)
class VerdictPolicy:
    """Threshold sources and mask policy (runtime overrides come per batch, from Redis)."""

    default_threshold: float = 0.5
    configured: dict[str, float] = field(default_factory=dict)
    masks: str = "all"  # all | anomalous | none
    refresh_s: float = 2.0  # how often the runtime overrides are read again


@dataclass(frozen=True)
class Pictures:
    """Preview JPEGs and heatmaps for the live view (off: neither is written)."""

    enabled: bool = True
    width: int = 320
    interval_s: float = 0.25
    max_cameras: int = 1000


@dataclass(frozen=True)
class ClockCheck:
    """When a capture time is plausible: not zero, not ahead of the worker, not older than the topic keeps."""

    max_ahead_s: float = 60.0
    max_age_s: float = 86400.0

    def plausible(self, capture_ns: int, received_ns: int) -> bool:
        return capture_ns > 0 and received_ns - self.max_age_s * 1e9 <= capture_ns <= received_ns + self.max_ahead_s * 1e9


class VerdictBuilder:
    """Builds the FrameWrite of every frame of a scored batch. Owned by the publish thread (the
    preview clock is its only state)."""

    def __init__(self, keys: RedisKeys, policy: VerdictPolicy, pictures: Pictures, clock: ClockCheck, worker_id: str) -> None:
        self.keys, self.policy, self.pictures, self.clock, self.worker_id = keys, policy, pictures, clock, worker_id
        self.previews = PreviewClock(pictures.interval_s, pictures.max_cameras)

    def build(self, job: ScoredBatch, normalised: list[float], runtime: dict[str, float], now_ns: int) -> list[FrameWrite]:
        return [self.frame_write(job, i, normalised[i], runtime, now_ns) for i in range(len(job.items))]

    def frame_write(self, job: ScoredBatch, i: int, score: float, runtime: dict[str, float], now_ns: int) -> FrameWrite:
        item, served = job.items[i], job.served
        meta, route = item.meta, item.route
        assert meta is not None
        camera, fid = meta.camera, item.frame_id
        amap = job.maps[i]
        if route is not None and route.regions:  # the model saw the regions' box: back onto the frame
            amap = frame_map(amap, route, meta.width, meta.height)
        if route is not None and route.threshold is not None and camera not in runtime:
            threshold = route.threshold  # the recipe's, under an operator's runtime override only
        else:
            threshold = effective_threshold(
                camera, runtime, self.policy.configured, served.camera_thresholds, self.policy.default_threshold
            )
        anomalous = bool(score >= threshold)
        clock_ok = self.clock.plausible(meta.capture_ns, item.received_ns)
        keep_mask = self.policy.masks == "all" or (self.policy.masks == "anomalous" and anomalous)
        mask = anomaly_mask(amap, served.pixel_threshold) if keep_mask or anomalous else None
        show = self.pictures.enabled and (anomalous or self.previews.due(camera))
        heat = heat_png(amap, served.pixel_threshold) if show else b""
        jpeg = preview_jpeg(item.value, meta, self.pictures.width) if show else b""
        keep_frame = anomalous and bool(jpeg)
        mask_key = self.keys.mask(camera, fid) if keep_mask else ""
        now_ms = now_ns // 1_000_000
        fields = {
            "camera": camera, "seq": str(meta.seq), "frame_id": fid, "capture_ns": str(meta.capture_ns),
            "clock_ok": "1" if clock_ok else "0", "score_raw": f"{float(job.scores[i]):.6g}", "score": f"{score:.6f}",
            "threshold": f"{threshold:.6f}", "anomalous": "1" if anomalous else "0", "model_name": served.name,
            "model_version": served.version,
            "latency_ms": f"{(now_ns - meta.capture_ns) / 1e6:.2f}" if clock_ok else "",
            "published_ms": str(now_ms), "mask_key": mask_key,
            "heat_key": self.keys.heat_at(camera, fid) if keep_frame else "",
            "frame_key": self.keys.frame_at(camera, fid) if keep_frame else "",
            "boxes": boxes_json(mask.boxes) if mask and anomalous else "[]", "worker": self.worker_id,
            "part": meta.part, "recipe": route.recipe if route is not None else "",
        }
        alert = b""
        if anomalous:
            alert = Alert(
                camera=camera, frame_seq=meta.seq, capture_ns=meta.capture_ns, score_raw=float(job.scores[i]),
                score=score, threshold=threshold, model_name=served.name, model_version=served.version,
                mask_key=mask_key, mask_size=mask.size if mask else (0, 0), boxes=mask.boxes if mask else [],
                frame_id=fid, emitted_ns=now_ns, part=meta.part, recipe=fields["recipe"],
            ).to_json()
        return FrameWrite(
            tp=item.tp, offset=item.offset, fingerprint=item.fingerprint, camera=camera, frame_id=fid,
            anomalous=anomalous, event_ms=meta.capture_ns // 1_000_000 if clock_ok else now_ms, fields=fields,
            mask_png=mask.png if keep_mask and mask else b"", heat_png=heat if keep_frame else b"",
            frame_jpeg=jpeg if keep_frame else b"", preview_jpeg=jpeg, preview_heat=heat, alert_json=alert,
            debounce=route.debounce if route is not None else None,
        )
