"""Writes Redis records in exactly the shapes workers write (the contract's RedisKeys, RESULT_FIELDS,
PREVIEW_FIELD and Alert), for the view's tests and benchmark: frames of a synthetic camera, a
heatmap from its true defect mask, history entries with Redis-chosen IDs, alerts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import redis

from linewatch.contract import PREVIEW_FIELD, RESULT_FIELDS, Alert, RedisKeys
from producer.synthetic import SyntheticCamera

MAP = 64  # model resolution of masks and heatmaps
PREVIEW = 192  # preview JPEG width


@dataclass
class Written:
    camera: str
    frame_id: str
    entry_id: str
    fields: dict[str, str]


@dataclass
class ShapesWriter:
    client: redis.Redis
    prefix: str
    model: tuple[str, str] = ("synth", "3")
    _cameras: dict[str, SyntheticCamera] = field(default_factory=dict)
    _offsets: dict[str, int] = field(default_factory=dict)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.prefix)

    def _camera(self, camera: str) -> SyntheticCamera:
        if camera not in self._cameras:
            seed = len(self._cameras) + 1
            self._cameras[camera] = SyntheticCamera(seed=seed, width=256, height=256, defect_rate=0.0,
                                                    defect_from=20, defect_to=10**9)
        return self._cameras[camera]

    def images(self, camera: str, seq: int, defect: bool) -> tuple[bytes, bytes, bytes]:
        """(preview JPEG, heatmap PNG, mask PNG) of a frame: defect frames use the camera's true defect."""
        image, truth = self._camera(camera).render(seq if defect else seq % 20)
        jpeg = cv2.imencode(".jpg", cv2.resize(image, (PREVIEW, PREVIEW)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        heat = np.full((MAP, MAP), 30, np.uint8)
        if defect and truth is not None:
            small = cv2.resize(truth, (MAP, MAP), interpolation=cv2.INTER_AREA).astype(np.float32)
            heat = np.clip(30 + cv2.GaussianBlur(small, (0, 0), 1.5) * 1.2, 0, 255).astype(np.uint8)
        mask = np.where(heat >= 128, 255, 0).astype(np.uint8)
        png = lambda a: cv2.imencode(".png", a)[1].tobytes()  # noqa: E731
        return jpeg, png(heat), png(mask)

    def result(
        self, camera: str, seq: int, score: float, *, threshold: float = 0.5, images: bool = True,
        preview: bool = True, published_ms: int | None = None, boxes: list[list[int]] | None = None, part: str = "",
    ) -> Written:
        """One scored frame: history entry, latest hash, index; mask/heat/frame images as a worker keeps them."""
        k = self.keys
        offset = self._offsets.get(camera, 0)
        self._offsets[camera] = offset + 1
        frame_id = f"0-{offset}"
        anomalous = score >= threshold
        jpeg, heat, mask = self.images(camera, seq, anomalous) if images or preview else (b"", b"", b"")
        if boxes is None:
            ys, xs = np.nonzero(cv2.imdecode(np.frombuffer(mask, np.uint8), cv2.IMREAD_GRAYSCALE)) if mask else ((), ())
            boxes = [[int(min(xs)), int(min(ys)), int(max(xs) - min(xs) + 1), int(max(ys) - min(ys) + 1)]] if len(xs) else []
        now_ms = published_ms if published_ms is not None else time.time_ns() // 1_000_000
        fields = {
            "camera": camera, "seq": str(seq), "frame_id": frame_id, "capture_ns": str(now_ms * 1_000_000 - 5_000_000),
            "clock_ok": "1", "score_raw": f"{score * 0.02:.6f}", "score": f"{score:.6f}", "threshold": f"{threshold:.6f}",
            "anomalous": "1" if anomalous else "0", "model_name": self.model[0], "model_version": self.model[1],
            "latency_ms": "5.0", "published_ms": str(now_ms),
            "mask_key": k.mask(camera, frame_id) if images else "",
            "heat_key": k.heat_at(camera, frame_id) if images and anomalous else "",
            "frame_key": k.frame_at(camera, frame_id) if images and anomalous else "",
            "boxes": json.dumps(boxes), "worker": "shapes-writer", "part": part, "recipe": "",
        }
        assert tuple(fields) == RESULT_FIELDS
        pipe = self.client.pipeline(transaction=True)
        if images:
            pipe.set(k.mask(camera, frame_id), mask, ex=600)
            if anomalous:
                pipe.set(k.heat_at(camera, frame_id), heat, ex=600)
                pipe.set(k.frame_at(camera, frame_id), jpeg, ex=600)
        latest = dict(fields)
        if preview:
            pipe.set(k.frame(camera), jpeg, ex=3600)
            pipe.set(k.heat(camera), heat, ex=3600)
            latest[PREVIEW_FIELD] = frame_id
        pipe.xadd(k.history(camera), fields, maxlen=10_000, approximate=True)
        pipe.hset(k.latest(camera), mapping=latest)
        pipe.expire(k.latest(camera), 3600)
        pipe.zadd(k.camera_index, {camera: now_ms})
        entry_id = pipe.execute()[-4].decode()
        return Written(camera, frame_id, entry_id, fields)

    def counted(self, camera: str, ok: int, ng: int, now_ms: int | None = None) -> None:
        """`ok` + `ng` frames through the worker's own result script (worker/sinks.py), so the camera's
        shift and minute counts are what a worker keeps; call result() afterwards for its picture."""
        from worker.sinks import Counting, Debounce, FrameWrite, ResultWriter, Retention
        from linewatch.shifts import ShiftCalendar

        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        writer = ResultWriter(self.client, self.keys, Retention(), Debounce(),
                              Counting(ShiftCalendar.of("06:00,14:00,22:00", "UTC"), 3600))
        writes = []
        for i in range(ok + ng):
            offset = self._offsets.get(camera, 0)
            self._offsets[camera] = offset + 1
            fid, anomalous = f"0-{offset}", i >= ok
            fields = {f: "" for f in RESULT_FIELDS}
            fields.update(camera=camera, seq=str(offset), frame_id=fid, score="0.9" if anomalous else "0.1",
                          threshold="0.5", anomalous="1" if anomalous else "0", published_ms=str(now), boxes="[]",
                          model_name=self.model[0], model_version=self.model[1])
            writes.append(FrameWrite(tp=(f"{self.prefix}.frames", 0), offset=offset, fingerprint=f"{camera}-{offset}",
                                     camera=camera, frame_id=fid, anomalous=anomalous, event_ms=now, fields=fields))
        outcomes, _ = writer.write(writes)
        assert all(getattr(o, "fresh", False) for o in outcomes), outcomes

    def alert(self, written: Written) -> str:
        """The alert a worker sends for `written` (and records on the alerts stream); returns its entry ID."""
        f = written.fields
        alert = Alert(
            camera=written.camera, frame_seq=int(f["seq"]), capture_ns=int(f["capture_ns"]),
            score_raw=float(f["score_raw"]), score=float(f["score"]), threshold=float(f["threshold"]),
            model_name=f["model_name"], model_version=f["model_version"], mask_key=f["mask_key"],
            mask_size=(MAP, MAP), boxes=[tuple(b) for b in json.loads(f["boxes"])], frame_id=written.frame_id,
            emitted_ns=time.time_ns(), part=f["part"],
        )
        return self.client.xadd(self.keys.alerts, {"alert": alert.to_json()}, maxlen=10_000, approximate=True).decode()
