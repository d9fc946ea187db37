"""Part search: results carry the frame's lw-part, and the view finds a part's verdicts and images."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.view.shapes_writer import ShapesWriter
from view.server import ViewServer

pytestmark = pytest.mark.integration


def test_part_search_finds_every_result_of_a_part(writer: ShapesWriter, view: ViewServer, http: httpx.Client) -> None:
    writer.result("cam-1", 1, 0.2, part="P-100")
    writer.result("cam-1", 2, 0.3, part="P-101")
    writer.result("cam-2", 1, 0.2)  # a frame without lw-part: still a result, never a match
    writer.result("cam-2", 2, 0.9, part="P-100")  # the same part, seen by the next station: NG
    deadline = time.monotonic() + 10
    while len(http.get("/api/cameras").json()["cameras"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    reply = http.get("/api/part", params={"id": "P-100"})
    assert reply.status_code == 200
    data = reply.json()
    found = {r["camera"]: r for r in data["results"]}
    assert data["part"] == "P-100" and set(found) == {"cam-1", "cam-2"}
    assert found["cam-2"]["anomalous"] and not found["cam-1"]["anomalous"]
    assert all(r["part"] == "P-100" for r in data["results"])
    image = http.get("/img/frame", params={"camera": "cam-2", "frame_id": found["cam-2"]["frame_id"]})
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # the NG frame's JPEG is kept
    assert http.get("/api/part", params={"id": "P-999"}).json()["results"] == []
    states = {s["camera"]: s for s in http.get("/api/cameras").json()["cameras"]}
    assert states["cam-2"]["part"] == "P-100" and states["cam-1"]["part"] == "P-101"  # the tiles show it


def test_part_search_reads_deep_history_a_page_at_a_time(writer: ShapesWriter, serve, redis_client, redis_prefix) -> None:
    view = serve(view_part_search_depth=2500)
    writer.result("cam-1", 0, 0.2, part="OLD-1", images=False, preview=False)  # the oldest entry
    pipe = redis_client.pipeline(transaction=False)
    for n in range(2400):  # newer results of other parts, in the workers' shape (part field only matters here)
        pipe.xadd(f"{redis_prefix}:history:cam-1", {"camera": "cam-1", "seq": str(n + 1), "frame_id": f"0-{n + 1}", "part": f"P-{n}"})
    pipe.execute()
    with httpx.Client(base_url=view.url, timeout=30) as http:
        found = http.get("/api/part", params={"id": "OLD-1"}).json()["results"]
        assert [r["seq"] for r in found] == [0]  # 2401 entries deep, across three pages
        assert [r["seq"] for r in http.get("/api/part", params={"id": "P-1234"}).json()["results"]] == [1235]
    shallow = serve(view_part_search_depth=1000)
    with httpx.Client(base_url=shallow.url, timeout=30) as http:
        assert http.get("/api/part", params={"id": "OLD-1"}).json()["results"] == []  # beyond the depth: not searched


@pytest.mark.parametrize("bad", ["", "x" * 161, "tab\there", "caf\u00e9"])
def test_part_search_refuses_ids_the_contract_refuses(view: ViewServer, http: httpx.Client, bad: str) -> None:
    assert http.get("/api/part", params={"id": bad}).status_code == 400


def test_part_page_is_served(view: ViewServer, http: httpx.Client) -> None:
    reply = http.get("/part", params={"id": "P-1"})
    assert reply.status_code == 200 and "part.js" in reply.text


def test_a_triggered_run_shows_part_ids_from_source_to_the_view(
    kafka_bootstrap, topic_base, redis_prefix, redis_client, worker_settings, http: httpx.Client,
) -> None:
    """POST /trigger with part ids -> one frame each (lw-part) -> worker -> results, history, alert -> /api/part."""
    import json
    import threading
    import urllib.request

    from linewatch.contract import Alert, parse_frame_record
    from producer.app import ProducerApp
    from producer.settings import CameraSpec, ProducerSettings
    from tests.producer.camera_helpers import free_port
    from tests.worker.helpers import history, running_worker, wait_for_results

    port = free_port()
    source = "synthetic://?seed=1&defect_rate=0&defect_from=2&defect_to=4&width=256&height=256"
    settings = ProducerSettings(
        kafka_bootstrap=kafka_bootstrap, topic_base=topic_base, metrics_port=0, trigger_port=port, drop_policy="block",
        cameras=[CameraSpec(id="line-1", source=source, trigger="http")],
    )
    acked: list = []
    lock = threading.Lock()

    def on_ack(frame, _metadata) -> None:
        with lock:
            acked.append(frame)

    app = ProducerApp(settings, on_ack=on_ack)
    parts = [f"SN-{n:04d}" for n in range(6)]
    try:
        app.start()
        for part in parts:  # what a PLC gateway sends when a part reaches the camera
            request = urllib.request.Request(f"http://127.0.0.1:{port}/trigger?camera=line-1&part={part}", method="POST")
            with urllib.request.urlopen(request, timeout=5) as reply:
                assert reply.status == 202 and json.loads(reply.read())["part"] == part
        deadline = time.monotonic() + 20
        while len(acked) < len(parts) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.drain(10)
    finally:
        app.stop()
    assert [parse_frame_record(f.camera.encode(), f.headers).part for f in acked] == parts
    with running_worker(worker_settings(debounce_n=1, debounce_m=1, alert_cooldown_s=0)):
        assert wait_for_results(redis_client, redis_prefix, ["line-1"], len(parts), timeout_s=90) == len(parts)
    entries = history(redis_client, redis_prefix, "line-1")
    assert [e["part"] for e in entries] == parts  # every history entry carries its part
    alerts = [Alert.from_json(fields[b"alert"]) for _, fields in redis_client.xrange(f"{redis_prefix}:alerts")]
    assert alerts and {a.part for a in alerts} <= {"SN-0002", "SN-0003"}  # the defective parts' alerts say which
    found = http.get("/api/part", params={"id": alerts[0].part}).json()["results"]
    assert len(found) == 1 and found[0]["anomalous"] and found[0]["frame"]
    image = http.get("/img/frame", params={"camera": "line-1", "frame_id": found[0]["frame_id"]})
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # the part's image, found by its id
