"""Latency a reject gate can use: capture -> OPC UA value change seen by a subscribed client, and
capture -> MQTT message received, at a steady load through a real producer, worker and bridge.

    .venv/bin/python bench/bench_bridge.py                         # 8 cameras x 8 fps for 40 s
    .venv/bin/python bench/bench_bridge.py --cameras 8 --fps 8 --seconds 60 --model-root /work/.model-cache

Processes: a producer (`python -m producer.app`, synthetic cameras at --fps each, capture time =
the frame's capture clock), one worker (`python -m worker.app`, LW_RESULTS_TOPIC=true), the
bridge (`python -m bridge.app`, sinks opcua,mqtt) and a private mosquitto; this process holds an
asyncua client subscribed (Basic256Sha256 SignAndEncrypt, 20 ms publishing interval) to every
camera's FrameId and a paho subscriber (QoS 1) to <prefix>/+/verdict. Latency = the receiving
client's clock at arrival minus the frame's capture time (one host, one clock). The first
--warmup seconds are left out. Model: `synth@production` from --model-root (trained here with the
tests' recipe when missing: a small autoencoder at 64 px).
The same arrivals are also measured from the worker's publish time (the verdict's emitted_ns): that
part is Kafka + bridge + sink + client, without the camera, the frames topic and the model.
With --plc the bridge also runs the opcua_client sink, writing into a PLC server (tests/bridge/plc.py)
in this process: capture -> the PLC's server took the verdict's ResultCounter write.
Results: bench/results/bridge-<date>.json and Markdown rows on stdout, with how many of the frames
offered after the warm-up were measured and whether that was steady (>= 95 %: the pipeline kept
pace; else the figures time its growing queue) and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kafka.admin import KafkaAdminClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testkit.workers import spawn  # noqa: E402
from linewatch.settings import KafkaSettings  # noqa: E402
from linewatch.topics import ensure_topics  # noqa: E402
from producer.app import synthetic_specs  # noqa: E402
from tests.bridge.helpers import Mosquitto, MqttWatcher, OpcUaWatcher, free_port  # noqa: E402
from tests.bridge.plc import PlcServer  # noqa: E402


class TimedPlc(PlcServer):
    """The tests' PLC server (client mode writes into it), keeping when each counter write was taken."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[str, str, int]] = []

    def _written(self, event: Any, dispatcher: Any) -> None:
        now = time.time_ns()
        before = {s: len(h) for s, h in self.handshakes.items()}
        super()._written(event, dispatcher)
        with self.lock:
            for station, handshakes in self.handshakes.items():
                self.arrivals += [(station, frame, now) for frame, _ in handshakes[before[station]:]]


class TimedOpcUa(OpcUaWatcher):
    """The tests' subscribed client, keeping the arrival time of each FrameId change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[str, str, int]] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if val:
            self.arrivals.append((self._names[node.nodeid], val, time.time_ns()))


class TimedMqtt(MqttWatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.arrivals: list[tuple[str, str, int, int]] = []
        self.emitted: dict[tuple[str, str], int] = {}
        super().__init__(*args, **kwargs)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.time_ns()
        m = json.loads(msg.payload)
        self.arrivals.append((m["camera"], m["frame_id"], int(m["capture_ns"]), now))
        self.emitted[(m["camera"], m["frame_id"])] = int(m["emitted_ns"])


def model_root(path: str | None) -> Path:
    if path and (Path(path) / "synth").is_dir():
        return Path(path)
    from programs.demo import DEMO_AE
    from model_store.quick import train_quick
    from producer.synthetic import SyntheticCamera

    root = Path(tempfile.mkdtemp(prefix="bench-bridge-models-"))
    frames = [SyntheticCamera(seed=s, defect_rate=0.0).render(seq)[0] for s in (1, 2, 3, 4) for seq in range(500, 560)]
    train_quick(frames, root, "synth", seconds=3600, steps=150, seed=0, kwargs=DEMO_AE)
    return root


def env_of(settings: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LW_")}
    env.update({f"LW_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {"n": len(ms), "p50": round(float(np.percentile(a, 50)), 1), "p90": round(float(np.percentile(a, 90)), 1),
            "p99": round(float(np.percentile(a, 99)), 1), "max": round(float(a.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=8)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--bootstrap", default=os.environ.get("LW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("LW_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--model-root", default=os.environ.get("LINEWATCH_TEST_MODEL_CACHE"))
    parser.add_argument("--plc", action="store_true", help="also the opcua_client sink, writing into a PLC server in this process "
                        "(one more sink in the bridge: compare the other rows only between runs with the same choice)")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    base, work = f"bench-bridge-{uuid.uuid4().hex[:8]}", Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    ensure_topics(KafkaSettings(kafka_bootstrap=args.bootstrap, topic_base=base), partitions=args.cameras)
    cameras = [f"cam-{i + 1}" for i in range(args.cameras)]
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    endpoint, password = f"opc.tcp://127.0.0.1:{free_port()}/linewatch/", uuid.uuid4().hex
    common = {"kafka_bootstrap": args.bootstrap, "topic_base": base, "log_json": True, "log_level": "warning"}
    procs = []
    plc_server = TimedPlc(work / "plc-server", cameras) if args.plc else None
    client_mode: dict[str, Any] = {}
    if plc_server is not None:
        plc_server.start()
        client_mode = {"opcua_client_url": plc_server.url, "opcua_client_username": plc_server.user,
                       "opcua_client_password": plc_server.password, "opcua_client_cert_dir": str(work / "opcua-client")}
    try:
        bridge = spawn([sys.executable, "-m", "bridge.app"], env=env_of({
            **common, "bridge_sinks": "opcua,mqtt" + (",opcua_client" if args.plc else ""), "bridge_http_port": 0,
            "bridge_group_id": base, "opcua_endpoint": endpoint, "opcua_password": password, "opcua_cameras": ",".join(cameras),
            "opcua_cert_dir": str(work / "opcua"), "mqtt_port": broker.port, "mqtt_username": broker.user,
            "mqtt_password": broker.password, "mqtt_prefix": base, **client_mode,
        }), stdout=(work / "bridge.log").open("wb"), stderr=-2)
        procs.append(bridge)
        worker = spawn([sys.executable, "-m", "worker.app"], env=env_of({
            **common, "redis_url": args.redis, "redis_prefix": f"bench:{base}", "model": "synth@production",
            "model_root": str(model_root(args.model_root)), "group_id": base, "http_port": 0, "results_topic": True,
            "max_wait_ms": 5,
        }), stdout=(work / "worker.log").open("wb"), stderr=-2)
        procs.append(worker)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the OPC UA server answers once the bridge is up
            plc = TimedOpcUa(endpoint, "plc", password, cameras, work / "plc")
            plc.start()
            plc.subscribed.wait(60)
            if plc.error is None:
                break
            time.sleep(2)
        assert plc.error is None, f"OPC UA client could not subscribe: {plc.error}"
        mqtt = TimedMqtt(broker, base, persistent=False)
        specs = [s.model_dump(mode="json") for s in synthetic_specs(args.cameras, fps=args.fps, defect_rate=0.05)]
        producer = spawn([sys.executable, "-m", "producer.app"], env=env_of({**common, "cameras": specs, "metrics_port": 0}),
                         stdout=(work / "producer.log").open("wb"), stderr=-2)
        procs.append(producer)
        started_ns = time.time_ns()
        time.sleep(args.seconds)
        producer.terminate()
        producer.wait(30)
        time.sleep(5)  # what was captured arrives
        mqtt.close()
        plc.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except Exception:  # noqa: BLE001 - a child that will not stop is killed; the figures are taken already
                p.kill()
        broker.stop()
        if plc_server is not None:
            plc_server.close()
        admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
        names = [f"{base}.{t}" for t in ("frames", "alerts", "results", "frames.dlq", "bridge.dlq")]
        admin.delete_topics(names, raise_errors=False)
        admin.close()
    cut_ns = started_ns + int(args.warmup * 1e9)
    captures = {(c, f): cap for c, f, cap, _ in mqtt.arrivals}
    mqtt_ms = [(now - cap) / 1e6 for _, _, cap, now in mqtt.arrivals if cap >= cut_ns]
    opc_ms = [(now - captures[(c, f)]) / 1e6 for c, f, now in plc.arrivals if (c, f) in captures and captures[(c, f)] >= cut_ns]
    emitted = mqtt.emitted
    mqtt_after_worker = [(now - emitted[(c, f)]) / 1e6 for c, f, cap, now in mqtt.arrivals if cap >= cut_ns]
    opc_after_worker = [(now - emitted[(c, f)]) / 1e6 for c, f, now in plc.arrivals
                        if (c, f) in captures and captures[(c, f)] >= cut_ns]
    plc_ms = [(now - captures[(c, f)]) / 1e6 for c, f, now in (plc_server.arrivals if plc_server else [])
              if (c, f) in captures and captures[(c, f)] >= cut_ns]
    offered = int(args.cameras * args.fps * (args.seconds - args.warmup))
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_start": load_at_start, "load_avg": os.getloadavg(), "cameras": args.cameras, "fps": args.fps,
        "seconds": args.seconds, "warmup": args.warmup, "verdicts_mqtt": len(mqtt.arrivals), "changes_opcua": len(plc.arrivals),
        "capture_to_mqtt_ms": percentiles(mqtt_ms), "capture_to_opcua_ms": percentiles(opc_ms),
        # from the worker's publish (emitted_ns, ms resolution): Kafka + bridge + sink + client, without the worker
        "worker_publish_to_mqtt_ms": percentiles(mqtt_after_worker), "worker_publish_to_opcua_ms": percentiles(opc_after_worker),
        "frames_expected": offered,
        # steady: the pipeline kept pace with the cameras (else the figures time a growing queue, not the line)
        "steady": len(mqtt_ms) >= 0.95 * offered,
    }
    if plc_server is not None:
        result["capture_to_plc_write_ms"] = percentiles(plc_ms)
    out = REPO / "bench" / "results" / f"bridge-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(f"| path | frames measured | p50 | p90 | p99 | max |  (load {args.cameras} x {args.fps} fps, {args.seconds:.0f} s, {out.name})")
    print("|---|---|---|---|---|---|")
    for name, key in (("capture -> MQTT message received", "capture_to_mqtt_ms"),
                      ("capture -> OPC UA value change at a subscribed client", "capture_to_opcua_ms"),
                      ("worker's publish -> MQTT message received", "worker_publish_to_mqtt_ms"),
                      ("worker's publish -> OPC UA value change", "worker_publish_to_opcua_ms"),
                      ("capture -> PLC's server took the handshake (client mode)", "capture_to_plc_write_ms")):
        if key not in result:
            continue
        r = result[key]
        print(f"| {name} | {r['n']} | {r.get('p50')} ms | {r.get('p90')} ms | {r.get('p99')} ms | {r.get('max')} ms |")
    load = "/".join(f"{x:.1f}" for x in load_at_start) + " -> " + "/".join(f"{x:.1f}" for x in result["load_avg"])
    print(f"\n{len(mqtt_ms)} of {offered} frames offered after the warm-up measured; load average (1/5/15 min) {load}"
          + ("" if result["steady"] else "; NOT steady: the pipeline fell behind the cameras, the figures include its queue"))


if __name__ == "__main__":
    main()
