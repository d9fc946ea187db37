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


@pytest.mark.parametrize("bad", ["", "x" * 161, "tab\there", "caf\u00e9"])
def test_part_search_refuses_ids_the_contract_refuses(view: ViewServer, http: httpx.Client, bad: str) -> None:
    assert http.get("/api/part", params={"id": bad}).status_code == 400


def test_part_page_is_served(view: ViewServer, http: httpx.Client) -> None:
    reply = http.get("/part", params={"id": "P-1"})
    assert reply.status_code == 200 and "part.js" in reply.text
