"""The live inspection screen (camera wall, camera page, alert review) on Starlette: its routes.

The `linewatch-view` program (start-up, uvicorn) is view/server.py.

Routes (all reads come from Redis; the only writes are feedback entries):
    /  /camera?id=<camera>  /review         the three pages (static HTML; data arrives as JSON)
    /api/events                             server-sent events: camera states, alert queue (view.live)
    /api/cameras  /api/history  /api/entry  /api/alerts  /api/config
    /part  /api/part?id=<part id>           a part's verdicts: every result whose lw-part is that id
    /recipes  /api/recipes                  the line's recipes, assignments and newest changes, read-only
                                            from the model store folder (LW_MODEL_ROOT; model_store/recipes.py)
    /img/preview  /img/frame  /img/overlay  JPEG frames and PNG overlays (view.overlay)
    /api/shift.csv?shift=<id>               a shift's counts per camera (default: the current shift)
    POST /api/feedback                      an operator's verdict -> <prefix>:feedback
    POST /api/acknowledge                   a camera's alarm seen -> `acknowledged` entries on <prefix>:feedback
    /healthz                                200 when Redis answers, else 503

Camera ids and frame ids travel as query parameters, never in the path, and are validated against
the contract's rules before any key is built from them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from collections import Counter
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from linewatch.contract import MAX_PART_ID, VERDICT_ACKNOWLEDGED, VERDICTS, valid_part
from linewatch.errors import ConfigError, ServiceUnavailable
from linewatch.shifts import summarise, valid_shift_id
from model_store.backend import LocalBackend
from model_store.recipes import RecipeBook
from model_store.shadow import build_report, parse_entry
from view import overlay
from view.auth import AccessGuard
from view.live import Hub, now_ms
from view.results import decimate, frame_detail, timeline_point, valid_camera, valid_id
from view.review import AlertQueue
from view.settings import ViewSettings
from view.store import Store

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("static")
MAX_BODY = 16 * 1024  # a verdict with a note: far below this
MAX_USER = 64
NO_STORE = {"cache-control": "no-store"}


# ---- request helpers -------------------------------------------------------------------------

def _camera(request: Request, name: str = "camera") -> str:
    camera = request.query_params.get(name, "")
    if not valid_camera(camera):
        raise HTTPException(400, f"{name}: a camera id (1-128 printable characters, no ':') is required")
    return camera


def _id(request: Request, name: str, required: bool = True) -> str:
    value = request.query_params.get(name, "")
    if (value or required) and not valid_id(value):
        raise HTTPException(400, f"{name}: expected <number>-<number>")
    return value


def _float(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise HTTPException(400, f"{name}: not a number") from None
    if not low < value <= high:
        raise HTTPException(400, f"{name}: outside ({low}, {high}]")
    return value


def _state(request: Request) -> tuple[ViewSettings, Store, Hub, AlertQueue]:
    s = request.app.state
    return s.settings, s.store, s.hub, s.queue


# ---- pages and config ----------------------------------------------------------------------------

def _page(name: str):
    async def page(_: Request) -> Response:
        return FileResponse(STATIC / name, headers={"cache-control": "no-cache"})
    return page


async def config(request: Request) -> Response:
    settings, *_ = _state(request)
    return JSONResponse({
        "stale_s": settings.view_stale_s, "push_ms": settings.view_push_ms,
        "timeline_minutes": settings.view_timeline_minutes, "note_max": settings.view_note_max,
        "overlay_modes": [*overlay.MODES, "off"], "verdicts": list(VERDICTS),
        "user": getattr(request.state, "user", ""), "layouts": settings.view_layouts,
    })


async def healthz(request: Request) -> Response:
    _, store, hub, _ = _state(request)
    try:
        await store.ping()
    except ServiceUnavailable as exc:
        return JSONResponse({"ok": False, "error": str(exc)[:200]}, 503)
    return JSONResponse({"ok": True, "cameras": len(hub.states), "subscribers": hub.subscribers})


# ---- live state ------------------------------------------------------------------------------------

async def cameras(request: Request) -> Response:
    _, _, hub, _ = _state(request)
    return JSONResponse(hub.snapshot(), headers=NO_STORE)


async def events(request: Request) -> Response:
    _, _, hub, _ = _state(request)
    return StreamingResponse(
        hub.events(request.is_disconnected), media_type="text/event-stream",
        headers={**NO_STORE, "x-accel-buffering": "no"},
    )


async def history(request: Request) -> Response:
    """A camera's score timeline: the last `minutes`, or only entries after stream ID `after`."""
    settings, store, _, _ = _state(request)
    camera = _camera(request)
    minutes = _float(request, "minutes", settings.view_timeline_minutes, 0, 24 * 60)
    after = _id(request, "after", required=False)
    cap = settings.view_timeline_points
    start = f"({after}" if after else f"{now_ms() - int(minutes * 60_000)}-0"
    entries = await store.history(camera, start, count=10 * cap)
    points = decimate([timeline_point(i, f) for i, f in entries], cap)
    return JSONResponse({"camera": camera, "now_ms": now_ms(), "points": points}, headers=NO_STORE)


async def entry(request: Request) -> Response:
    """One history entry with what is still kept of its images, and the size its boxes refer to."""
    _, store, _, queue = _state(request)
    camera, entry_id = _camera(request), _id(request, "id")
    fields = await store.entry(camera, entry_id)
    if fields is None:
        raise HTTPException(404, "no such history entry (trimmed or expired)")
    detail = frame_detail(camera, entry_id, fields)
    keys = store.keys
    frame_id = detail["frame_id"] if valid_id(detail["frame_id"]) else ""
    has_frame = has_heat = has_mask = False
    if frame_id:
        has_frame, has_heat, has_mask = await store.existing(
            [keys.frame_at(camera, frame_id), keys.heat_at(camera, frame_id), keys.mask(camera, frame_id)]
        )
    size = None
    if has_heat or has_mask:
        header = await store.header(keys.heat_at(camera, frame_id) if has_heat else keys.mask(camera, frame_id))
        size = overlay.png_size(header)
    detail.update(frame_kept=has_frame, heat_kept=has_heat, mask_kept=has_mask, map_size=size,
                  verdict=queue.verdict(camera, frame_id) if frame_id else None)
    return JSONResponse(detail, headers=NO_STORE)


async def alerts(request: Request) -> Response:
    """The review queue (alerts nobody judged, newest first), or one camera's alerts with verdicts."""
    _, _, _, queue = _state(request)
    if "camera" in request.query_params:
        items = queue.of_camera(_camera(request))
    else:
        items = queue.pending()
    limit = int(_float(request, "limit", 100, 0, 10_000))
    return JSONResponse({"now_ms": now_ms(), "alerts": items[:limit], "pending": len(queue.pending())},
                        headers=NO_STORE)


def _shift_rows(shift: str, counts: dict[str, tuple[dict[str, str], dict[str, str]]]) -> list[list[str]]:
    rows = [["shift", "camera", "frames", "ok", "ng", "reject_rate_pct", "first_frame_utc", "last_frame_utc",
             "mean_frames_per_s"]]
    for camera in sorted(counts, key=str.casefold):
        c = summarise(counts[camera][0], {}, 0)["shift"]
        first, last = c["first_ms"], c["last_ms"]
        span_s = (last - first) / 1000 if first and last and last > first else 0
        rows.append([
            shift, _csv_text(camera), str(c["frames"]), str(c["ok"]), str(c["ng"]),
            f"{100 * c['reject_rate']:.2f}" if c["reject_rate"] is not None else "",
            _utc(first), _utc(last), f"{c['frames'] / span_s:.2f}" if span_s else "",
        ])
    return rows


def _utc(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z" if ms else ""


def _csv_text(value: str) -> str:
    """A sender-chosen camera id must not become a formula in a spreadsheet (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def shift_csv(request: Request) -> Response:
    """One shift's counts per camera as CSV (`shift` = its id, e.g. 2026-12-07T06:00; default: the current one)."""
    settings, store, hub, _ = _state(request)
    shift = request.query_params.get("shift") or hub.calendar.at(now_ms()).id
    if not valid_shift_id(shift):
        raise HTTPException(400, "shift: expected YYYY-MM-DDTHH:MM (the shift's local start)")
    cameras = await store.shift_cameras(shift)
    counts = await store.counts(cameras, shift, 0) if cameras else {}
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(_shift_rows(shift, counts))
    name = f"linewatch-shift-{shift.replace(':', '')}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**NO_STORE, "content-disposition": f'attachment; filename="{name}"'})


async def part(request: Request) -> Response:
    """Every result of a part (its lw-part id), newest first, searched in each camera's newest
    `view_part_search_depth` history entries, a page at a time. The cost is a scan (a worker-written
    part index would make it a lookup); the default depth covers about an hour of a triggered line at
    one part per second per camera."""
    settings, store, _, queue = _state(request)
    wanted = request.query_params.get("id", "")
    if not valid_part(wanted):
        raise HTTPException(400, f"id: a part id (printable ASCII, 1-{MAX_PART_ID} characters) is required")
    found = []
    for camera in await store.cameras():
        for entry_id, fields in await store.matching(camera, "part", wanted, settings.view_part_search_depth):
            detail = frame_detail(camera, entry_id, fields)
            detail["verdict"] = queue.verdict(camera, detail["frame_id"]) if valid_id(detail["frame_id"]) else None
            found.append(detail)
    found.sort(key=lambda d: d["t"], reverse=True)
    return JSONResponse({"part": wanted, "results": found, "searched": settings.view_part_search_depth}, headers=NO_STORE)


async def shadow(request: Request) -> Response:
    """The shadow report of every candidate with streams (model_store/shadow.py: the same figures as
    `linewatch-models shadow report`), over each camera's newest `view_shadow_frames` entries; the
    gate itself needs the model store and stays with `promote --require-shadow`."""
    settings, store, _, queue = _state(request)
    reports = []
    for candidate, cameras in (await store.shadow_streams()).items():
        pairs = []
        for camera in cameras[: settings.view_max_cameras]:
            pairs += [p for f in await store.shadow_entries(candidate, camera, settings.view_shadow_frames)
                      if (p := parse_entry(f)) is not None]
        # Compare against the production version most of the entries were scored by (a promotion
        # mid-shadow leaves older pairs against another version: they are counted as skipped).
        production = Counter(p.production_model for p in pairs).most_common(1)[0][0] if pairs else None
        verdicts = {(p.camera, p.frame_id): v for p in pairs if (v := queue.verdict(p.camera, p.frame_id))}
        report = await run_in_threadpool(build_report, pairs, verdicts, candidate, production)  # numpy/scipy work
        reports.append(report.to_json())
    return JSONResponse({"reports": reports, "frames_per_camera": settings.view_shadow_frames}, headers=NO_STORE)


# ---- images ----------------------------------------------------------------------------------------

def line_recipes(root: Path, history: int = 20) -> dict[str, Any]:
    """The line's recipes, assignments and newest changes, read from the model store's folder
    (model_store/recipes.py); the view never writes them (`linewatch-models recipes` does)."""
    book = RecipeBook(LocalBackend(root))
    table = book.table()
    return {
        "seq": table.seq, "root": str(root),
        "recipes": [recipe.model_dump(mode="json") for recipe in table.recipes.values()],
        "assignments": [{"pattern": p, "recipe": r} for p, r in sorted(table.assignments.items())],
        "history": book.history(history),
    }


async def recipes(request: Request) -> Response:
    settings, _, _, _ = _state(request)
    try:
        data = await run_in_threadpool(line_recipes, settings.model_root)
    except (OSError, ConfigError) as exc:
        raise HTTPException(503, f"recipes unreadable in {settings.model_root}: {exc}") from exc
    return JSONResponse(data, headers=NO_STORE)


def _image(data: bytes | None, media_type: str, what: str, cache: str = "no-store") -> Response:
    if data is None:
        raise HTTPException(404, f"{what} not kept (never stored or expired)")
    return Response(data, media_type=media_type, headers={"cache-control": cache})


async def preview(request: Request) -> Response:
    _, store, _, _ = _state(request)
    camera = _camera(request)
    return _image(await store.blob(store.keys.frame(camera)), "image/jpeg", "preview frame")


async def frame(request: Request) -> Response:
    _, store, _, _ = _state(request)
    camera, frame_id = _camera(request), _id(request, "frame_id")
    # A frame's JPEG never changes once written: the browser may keep it for a while.
    return _image(await store.blob(store.keys.frame_at(camera, frame_id)), "image/jpeg", "frame", "private, max-age=300")


async def overlay_image(request: Request) -> Response:
    """The overlay (heat, mask or outline) of a camera's preview, or of one frame (`frame_id`)."""
    _, store, _, _ = _state(request)
    camera, frame_id = _camera(request), _id(request, "frame_id", required=False)
    mode = request.query_params.get("mode", "heat")
    if mode not in overlay.MODES:
        raise HTTPException(400, f"mode: one of {', '.join(overlay.MODES)}")
    keys = store.keys
    if frame_id:
        data = await store.blob(keys.heat_at(camera, frame_id)) or await store.blob(keys.mask(camera, frame_id))
    else:
        data = await store.blob(keys.heat(camera))
    if data is None:
        raise HTTPException(404, "no heatmap or mask kept for this frame")
    png = await run_in_threadpool(overlay.render, data, mode)
    if png is None:
        raise HTTPException(422, "the stored map is not a readable image")
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=300" if frame_id else "no-store"})


# ---- the one write -----------------------------------------------------------------------------

def _check_origin(request: Request) -> None:
    """A browser sends Origin on cross-site POSTs; refuse any other site (basic auth and the cookie
    would otherwise ride along)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site request refused")


async def _json_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body must be a JSON object")
    return data


def feedback_fields(data: dict[str, Any], note_max: int, user: str) -> dict[str, str]:
    """Validate a verdict; the feedback entry's fields (contract.FEEDBACK_FIELDS, in order), or HTTP 422 with the reason."""
    camera, frame_id = data.get("camera"), data.get("frame_id")
    verdict, note = data.get("verdict"), data.get("note", "")
    if not isinstance(camera, str) or not valid_camera(camera):
        raise HTTPException(422, "camera: a camera id (1-128 printable characters, no ':')")
    if not isinstance(frame_id, str) or not valid_id(frame_id):
        raise HTTPException(422, "frame_id: expected <partition>-<offset>")
    if verdict not in VERDICTS:
        raise HTTPException(422, f"verdict: one of {', '.join(VERDICTS)}")
    if not isinstance(note, str) or len(note) > note_max:
        raise HTTPException(422, f"note: text of at most {note_max} characters")
    if not user:
        named = data.get("user", "")
        if not isinstance(named, str) or len(named) > MAX_USER or not named.isprintable():
            raise HTTPException(422, f"user: printable text of at most {MAX_USER} characters")
        user = named
    return {"camera": camera, "frame_id": frame_id, "verdict": verdict, "note": note,
            "time_ns": str(time.time_ns()), "user": user}


async def acknowledge(request: Request) -> Response:
    """An operator saw a camera's alarm: every alert of it that nobody judged or acknowledged gets an
    `acknowledged` entry on the feedback stream (the review queue still asks for a judgement)."""
    settings, store, _, queue = _state(request)
    _check_origin(request)
    data = await _json_body(request)
    await queue.refresh(store)
    camera = data.get("camera")
    if not isinstance(camera, str) or not valid_camera(camera):
        raise HTTPException(422, "camera: a camera id (1-128 printable characters, no ':')")
    written = []
    for frame_id in queue.unacknowledged(camera):
        fields = feedback_fields({**data, "frame_id": frame_id, "verdict": VERDICT_ACKNOWLEDGED, "note": ""},
                                 settings.view_note_max, getattr(request.state, "user", ""))
        written.append(await store.add_feedback(fields))
    log.info("acknowledged", camera=camera[:64], alerts=len(written))
    await queue.refresh(store)
    return JSONResponse({"acknowledged": len(written), "alarms": queue.alarms()}, 201 if written else 200)


async def feedback(request: Request) -> Response:
    settings, store, _, queue = _state(request)
    _check_origin(request)
    # A basic-auth user is who they signed in as; otherwise the name the page sends, if any.
    fields = feedback_fields(await _json_body(request), settings.view_note_max, getattr(request.state, "user", ""))
    entry_id = await store.add_feedback(fields)
    log.info("feedback", camera=fields["camera"][:64], frame_id=fields["frame_id"], verdict=fields["verdict"])
    await queue.refresh(store)  # the queue the next request reads already leaves this alert out
    return JSONResponse({"id": entry_id, "pending": len(queue.pending())}, 201)


# ---- errors and wiring -------------------------------------------------------------------------

async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=NO_STORE)


async def _unavailable(_: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)[:300]}, 503, headers=NO_STORE)


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: ViewSettings = app.state.settings
    app.state.store = store = Store(settings)
    app.state.queue = queue = AlertQueue(settings.view_alerts_kept)
    app.state.hub = hub = Hub(store, queue, settings.view_push_ms, settings.calendar, app.state.closing)
    await hub.tick()  # the first page load already has the cameras
    poller = asyncio.create_task(hub.run(), name="view-poller")
    try:
        yield
    finally:
        app.state.closing.set()
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await store.close()


def create_app(settings: ViewSettings, closing: threading.Event | None = None) -> AccessGuard:
    """The ASGI application: Starlette routes behind the access guard. Setting `closing` ends the
    open event streams (the server does so when asked to stop)."""
    routes = [
        Route("/", _page("index.html")),
        Route("/camera", _page("camera.html")),
        Route("/review", _page("review.html")),
        Route("/part", _page("part.html")),
        Route("/recipes", _page("recipes.html")),
        Route("/api/recipes", recipes),
        Route("/shadow", _page("shadow.html")),
        Route("/api/shadow", shadow),
        Route("/api/part", part),
        Route("/healthz", healthz),
        Route("/api/config", config),
        Route("/api/cameras", cameras),
        Route("/api/events", events),
        Route("/api/history", history),
        Route("/api/entry", entry),
        Route("/api/alerts", alerts),
        Route("/api/feedback", feedback, methods=["POST"]),
        Route("/api/acknowledge", acknowledge, methods=["POST"]),
        Route("/api/shift.csv", shift_csv),
        Route("/img/preview", preview),
        Route("/img/frame", frame),
        Route("/img/overlay", overlay_image),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=_lifespan,
                    exception_handlers={HTTPException: _http_error, ServiceUnavailable: _unavailable})
    app.state.settings = settings
    app.state.closing = closing or threading.Event()
    return AccessGuard(app, settings)
