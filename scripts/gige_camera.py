#!/usr/bin/python3
"""A real GigE Vision camera for tests and demos: Aravis's fake GigE Vision device on loopback.

The same emulator as Debian's `arv-fake-gv-camera-0.8` (ArvGvFakeCamera: GVCP control on UDP
3956, GVSP streaming, a GenICam XML with Width, Height, ExposureTime, Gain, TriggerMode and
TriggerSoftware), run from Aravis's library, so the package with the GTK viewer is not needed.
Run with Debian's python3 (it has `gi`): scripts/cameras.sh installs gir1.2-aravis-0.8.

    /usr/bin/python3 scripts/gige_camera.py --interface lo --serial LW0001
    prints "ready <address>" once it answers; SIGTERM/SIGINT stop it. A genicam://127.0.0.1 source
    (or genicam://Aravis-Fake-LW0001 ...) reaches it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Aravis", "0.8")
from gi.repository import Aravis, GLib  # noqa: E402 - after require_version, as gi needs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", default="lo", help="network interface to answer on (lo = 127.0.0.1)")
    parser.add_argument("--serial", default="LW0001")
    args = parser.parse_args()
    camera = Aravis.GvFakeCamera.new(args.interface, args.serial)
    if camera is None or not camera.is_running():
        print(f"gige_camera: cannot start the fake camera on {args.interface} (port 3956 busy?)", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"ready {args.interface} {args.serial}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
