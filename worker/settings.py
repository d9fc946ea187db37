"""The worker's settings: one class, environment prefix LW_, documented field by field."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from linewatch.settings import KafkaSettings, RedisSettings
from linewatch.shifts import ShiftSettings


class WorkerSettings(KafkaSettings, RedisSettings, ShiftSettings):
    """Everything a worker reads at start-up (see README: Settings)."""

    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Name of this worker in logs, metrics and results (default: host-pid).",
    )
    group_id: str = Field("linewatch-workers", description="Kafka consumer group shared by all workers.")
    model: str = Field("default@production", description="Model to serve: name, name@version or name@alias.")
    model_root: Path = Field(Path("models"), description="Root folder of the model store.")
    model_poll_s: float = Field(5.0, description="How often to check whether the model alias moved (0: never).")
    recipe_poll_ms: float = Field(
        2000.0, ge=100,
        description="How often the line's recipe table (<model root>/_line/recipes.json) is checked; a recipe change "
        "takes effect on every worker within this (the changeover bound). No recipes: every camera gets LW_MODEL.",
    )
    max_loaded_models: int = Field(
        4, ge=1, le=64,
        description="Models loaded at once when recipes route cameras to several; beyond it the least recently used "
        "is unloaded (and loaded again when a frame needs it). The bound is memory: README, Recipes.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device; auto picks CUDA when present.")
    amp: Literal["off", "fp16", "bf16"] = Field("off", description="Mixed precision on CUDA (ignored on CPU, where it is slower).")
    torch_threads: int = Field(
        0, ge=0, description="Intra-op CPU threads for inference (0: the usable cores less one, at least 1, so the host path keeps a core)."
    )

    def inference_threads(self) -> int:
        """The torch thread count a worker uses: the setting, or every usable core but one.

        On CPU the model and the host path (decode, Kafka, verdicts, Redis) share the cores; with
        torch on all of them the pipeline ran slower than with one core left free
        (docs/benchmarks.md, draem_small on 2 cores)."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, len(os.sched_getaffinity(0)) - 1)

    max_batch: int = Field(16, ge=1, le=256, description="Largest batch sent to the model.")
    max_wait_ms: float = Field(10.0, ge=0, description="Longest a frame waits for its batch to fill.")
    batch_buckets: str = Field(
        "1,2,4,8,16,32",
        description="Batch sizes a CUDA batch is padded up to, so shapes stay fixed (CUDA graphs, compile).",
    )
    cuda_streams: int = Field(2, ge=1, le=8, description="Batches in flight on CUDA, one compute stream each.")
    cuda_graphs: bool = Field(
        False, description="On CUDA, capture one CUDA graph per batch bucket and stream at start and replay it per batch."
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off", description="torch.compile the model with this mode; every batch bucket is compiled at start (slow start)."
    )
    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding and resizing frames.")
    inflight_frames: int = Field(
        256, ge=1, description="Frames accepted but not yet published before the worker stops taking more (it pauses its "
        "partitions if the pipeline stays full 2 s).",
    )
    max_poll_records: int = Field(64, ge=1, description="Records one Kafka poll may return.")
    kafka_consumer: Literal["kafka-python", "confluent"] = Field(
        "kafka-python",
        description="Client that reads the frames topic: kafka-python, or librdkafka through confluent-kafka (the `rdkafka` "
        "extra), which fetches and parses records on its own threads outside the GIL (docs/benchmarks.md compares them).",
    )
    intake_linger_ms: float = Field(
        5.0, ge=0, le=100,
        description="After a poll that brought less than a batch, the consumer waits this long before fetching again, "
        "so frames are taken in handfuls; it adds at most this much latency to a frame. At 900 frames/s on 2 cores, "
        "5 ms took p99 capture-to-Redis latency from 111 to 27-28 ms and the worker from 1.08 to 0.76 cores "
        "(docs/benchmarks.md). 0: fetch again at once.",
    )
    session_timeout_ms: int = Field(
        6000, ge=6000,
        description="How long the group waits for a silent worker (killed, cut off) before its partitions move on "
        "(6000 is the broker's default minimum). Heartbeats come from kafka-python's I/O thread, so long batches "
        "do not count against it; at 10000, five kills in a minute stalled a partition over 30 s (docs/reliability.md).",
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Default normalised threshold (0.5 = the model's calibrated one).")
    camera_thresholds: dict[str, float] = Field(
        default_factory=dict, description='Per-camera normalised thresholds, JSON: {"cam-1": 0.6}.'
    )
    threshold_refresh_s: float = Field(
        2.0, description="How often runtime threshold overrides are read from Redis (<prefix>:thresholds)."
    )
    debounce_n: int = Field(3, ge=1, description="Alert when at least N of the last M frames of a camera are anomalous...")
    debounce_m: int = Field(5, ge=1, description="...out of the last M frames.")
    alert_cooldown_s: float = Field(
        30.0, ge=0, description="After an alert, no new alert for that camera for this long (capture time)."
    )
    result_ttl_s: int = Field(3600, ge=1, description="TTL of a camera's latest-result hash and preview.")
    mask_ttl_s: int = Field(600, ge=1, description="TTL of mask PNGs.")
    masks: Literal["all", "anomalous", "none"] = Field("all", description="Which frames get a mask PNG in Redis.")
    history_maxlen: int = Field(10000, ge=1, description="Approximate length cap of each camera's history stream.")
    history_ttl_s: int = Field(
        86400, ge=60, description="A camera's history stream expires this long after its last frame."
    )
    dedupe_ttl_s: int = Field(
        86400, ge=60,
        description="How long a scored record's offset is remembered, so a replay is not written twice "
        "(cover the longest time a record can stay uncommitted).",
    )
    previews: bool = Field(True, description="Write preview JPEGs and heatmaps for the live view (off: neither).")
    preview_width: int = Field(320, ge=16, le=4096, description="Width of preview JPEGs (narrower frames are kept as sent).")
    preview_interval_ms: float = Field(
        250.0, ge=0, description="A camera's preview is refreshed at most this often (anomalous frames always)."
    )
    frame_ttl_s: int = Field(6 * 3600, ge=1, description="TTL of the JPEG and heatmap kept for each anomalous frame.")
    alerts_maxlen: int = Field(10000, ge=1, description="Approximate length cap of the Redis alert stream.")
    max_cameras: int = Field(
        1000, ge=1,
        description="Cameras kept in Redis (index, latest, history, preview) and in per-camera worker state; "
        "beyond it the least recently seen camera is forgotten and its keys deleted.",
    )
    camera_admit_frames: int = Field(
        3, ge=1,
        description="A new camera id is on probation until it has sent this many frames: its results are written, but "
        "it is not on the camera wall, and a flood of new ids evicts only other ids on probation, never an admitted camera.",
    )
    probation_max_cameras: int = Field(
        1000, ge=1, description="Camera ids on probation kept at once; beyond it the least recently seen is forgotten "
        "with its keys.",
    )
    max_blobs_per_camera: int = Field(
        2000, ge=1, description="Per-frame keys (masks, pictures of anomalous frames) kept per camera; beyond it the "
        "oldest are deleted before their TTL.",
    )
    metrics_max_cameras: int = Field(
        256, ge=1, description="Cameras with metric series of their own; later ones are counted under camera=\"_other\"."
    )
    shadow: bool = Field(
        True, description="Score the frames shadow plans pick with their candidates, after production "
        "(`linewatch-models shadow start`; worker/shadow.py). Off: plans are ignored.",
    )
    shadow_poll_s: float = Field(2.0, gt=0, description="How often the shadow plans are read again (the start/stop bound).")
    shadow_queue_batches: int = Field(
        2, ge=1, le=64, description="Published batches waiting for the shadow thread; more are shed (counted)."
    )
    shadow_max_batch: int = Field(
        4, ge=1, le=256, description="Frames per candidate pass: the longest a production batch waits on a shadow pass."
    )
    shadow_ttl_s: int = Field(7 * 86400, ge=60, description="Expiry of a shadow stream after its last entry.")
    rollout_watch_frames: int = Field(
        500, ge=0, description="Frames per camera watched after a shadow-gated promotion (0: no watch)."
    )
    rollout_alpha: float = Field(
        0.001, gt=0, lt=0.5, description="Significance of the watch's binomial test against the shadow's predicted alarm rate.",
    )
    drift_window: int = Field(200, ge=10, description="Frames per drift summary of a camera (scores, brightness, contrast).")
    drift_every: int = Field(20, ge=1, description="A camera's drift summary is recomputed every this many frames.")
    drift_image_pct: float = Field(
        15.0, gt=0, description="Brightness and contrast band: +- this % of the camera's baseline (else a recalibrate event)."
    )
    drift_score_rise: float = Field(
        0.15, gt=0, description="A camera's median normalised score may rise this much above its baseline's."
    )
    max_frame_pixels: int = Field(
        4096 * 4096, ge=1, description="Largest frame (width x height) decoded; bigger ones are dead-lettered unread."
    )
    clock_max_ahead_s: float = Field(
        60.0, ge=0, description="A capture time further ahead of the worker's clock is implausible (clock_ok=0)."
    )
    clock_max_age_s: float = Field(
        86400.0, gt=0, description="A capture time older than this is implausible (clock_ok=0)."
    )
    publish_retry_max_s: float = Field(5.0, description="Longest back-off between publish retries while Redis/Kafka is down.")
    fatal_after_s: float = Field(
        120.0, gt=0,
        description="Outputs refusing every write (ACL, missing topic, Redis out of memory) for this long end "
        "the worker with exit code 3.",
    )
    outage_exit_after_s: float = Field(
        900.0, ge=0, description="Outputs unreachable for this long end the worker with exit code 3 (0: never)."
    )
    http_port: int = Field(8080, description="Port of /metrics, /healthz and /readyz (0: off).")
    http_host: str = Field("0.0.0.0", description="Address the HTTP endpoint binds.")
    stall_after_s: float = Field(
        60.0, description="Not ready when a batch, or a partition's commit point, has not moved for this long."
    )
    drain_timeout_s: float = Field(
        30.0, description="On SIGTERM, longest wait for in-flight frames to publish; the process ends within this + 10 s."
    )
    create_topics: int = Field(0, ge=0, description="Create missing topics with this many partitions at start (0: don't).")
    results_topic: bool = Field(
        False, description="Also publish every scored frame's compact verdict (OK/NG) to <base>.results, key = camera, "
        "acknowledged before the frame's offset is (for linewatch-bridge and other line integrations).",
    )

    @field_validator("batch_buckets")
    @classmethod
    def _buckets_are_sizes(cls, value: str) -> str:
        sizes = [int(s) for s in value.split(",") if s.strip()]
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError("batch_buckets must list positive sizes")
        return value

    @property
    def buckets(self) -> list[int]:
        return sorted({int(s) for s in self.batch_buckets.split(",") if s.strip()})
