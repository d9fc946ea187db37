#!/usr/bin/python3
"""A real RTSP server for tests and demos: Debian's GStreamer RTSP server on loopback.

Run with Debian's python3 (it has `gi`; the project's venv does not): scripts/cameras.sh installs
the packages. Serves rtsp://<host>:<port>/<path>, MJPEG over RTP (no x264 CPU cost), GRAY8 frames
(sent as I420: RTP/JPEG carries only 3-component JPEG) whose top 16 rows carry the server's clock when the frame was made: 64 blocks of 5x16 pixels, one
bit each (most significant first, white = 1), the nanoseconds of time.time_ns(). A client on the
same machine reads the bits back (`stamped_ns` in tests/producer/rtsp_helpers.py) and knows each
frame's age: lag measured, not guessed.

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --path line1 --fps 25
    prints "ready rtsp://127.0.0.1:8554/line1" once it listens; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - after require_version, as gi needs

WIDTH, HEIGHT, BITS, STAMP_ROWS = 320, 240, 64, 16
BLOCK = WIDTH // BITS


def stamp_rows(ns: int) -> bytes:
    """STAMP_ROWS rows of 64 black/white blocks: `ns` in binary, most significant bit first."""
    row = b"".join((b"\xff" if (ns >> (BITS - 1 - i)) & 1 else b"\x00") * BLOCK for i in range(BITS))
    return row * STAMP_ROWS


def picture(n: int) -> bytes:
    """A frame: the time stamp, then a gray ramp that moves one step per frame (a changing image)."""
    body = bytes((x + n * 4) % 200 + 20 for x in range(WIDTH)) * (HEIGHT - STAMP_ROWS)
    return stamp_rows(time.time_ns()) + body


class StampedFactory(GstRtspServer.RTSPMediaFactory):
    """One pipeline per client connection (not shared): appsrc of stamped frames -> JPEG -> RTP."""

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.fps = fps
        self.set_shared(False)

    def do_create_element(self, url: GstRtspServer.RTSPUrl) -> Gst.Element:
        caps = f"video/x-raw,format=GRAY8,width={WIDTH},height={HEIGHT},framerate={self.fps}/1"
        launch = (
            f"( appsrc name=src is-live=true do-timestamp=true format=time caps={caps} max-bytes={WIDTH * HEIGHT * 2} "
            "! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )"
        )
        pipeline = Gst.parse_launch(launch)
        src = pipeline.get_by_name("src")
        state = {"n": 0, "due": time.monotonic()}

        def need_data(appsrc: Gst.Element, _length: int) -> None:
            # Paced here so that the stamp is the time the frame leaves, as a camera's would be.
            state["due"] += 1.0 / self.fps
            delay = state["due"] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                state["due"] = time.monotonic()
            appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(picture(state["n"])))
            state["n"] += 1

        src.connect("need-data", need_data)
        return pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 = any free port (printed)")
    parser.add_argument("--path", default="test")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(f"/{args.path}", StampedFactory(args.fps))
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"ready rtsp://{args.host}:{server.get_bound_port()}/{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "rtsp-server"
    sys.exit(main())
