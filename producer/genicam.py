"""GigE Vision / USB3 Vision (GenICam) cameras through Aravis.

    genicam://<device>?exposure_us=5000&gain_db=2&trigger=software&buffers=4&timeout_s=2

<device> is what Aravis accepts: the camera's IP address (``127.0.0.1`` for the fake camera of
scripts/gige_camera.py), its device id (``Aravis-Fake-LW0001``, ``Basler-21234567``, as
``arv-tool-0.8`` lists them) or ``any`` (the first camera found). Exposure (µs) and gain (dB) are
written to the camera at every open, so a camera that rebooted gets them back.

Acquisition modes
    trigger=none (default)  free-running; `read` hands back the frames queued since the last read
                            (counted as skipped) and takes the next one: a camera faster than the
                            line's rate builds no lag
    trigger=software        TriggerMode=On, TriggerSource=Software: every `read` fires
                            TriggerSoftware and waits for that frame. With the camera's
                            ``"trigger": "http"`` (producer/trigger.py) each POST /trigger is one
                            exposure; without it the capture loop triggers at the camera's fps.
A frame with lost packets is handed back and the next one taken (counted as skipped); a camera
that gives no complete frame for timeout_s (a pulled cable, a reboot) raises CameraLost, and the
capture loop reconnects with back-off like any other source.

Why Aravis is reached through Debian's `gi`: Aravis has no PyPI wheel, its Python API is GObject
introspection, and PyGObject from PyPI must be compiled against the system's introspection
libraries (a C toolchain and -dev packages in every image). Debian's python3-gi is built for
CPython 3.11, the ABI of this project's interpreter, so the venv loads that one package
(`gi` alone, not the rest of dist-packages) when it cannot import its own. A helper process
speaking over a pipe would copy every frame once more and need a protocol of its own; measured
on this VM (loaded), opening the fake camera took 0.2-0.6 s and a software-triggered 512x512 Mono8
frame arrived 30-120 ms after the trigger, in-process.

Harvesters (PyPI `harvesters`) is the other route: it needs a vendor's GenTL producer (.cti file,
from the camera maker's SDK); see the README's "Cameras" section.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from producer.frame_source import CameraLost, SourceFrame

DEBIAN_GI = Path("/usr/lib/python3/dist-packages/gi")
INSTALL_HINT = "install Aravis: apt-get install gir1.2-aravis-0.8 python3-gi (or bash scripts/cameras.sh)"
_PARAMS = {"exposure_us", "gain_db", "trigger", "buffers", "timeout_s"}


def _debian_gi() -> ModuleType:
    """Debian's python3-gi, loaded as the package `gi` without putting dist-packages on sys.path."""
    init = DEBIAN_GI / "__init__.py"
    if not init.is_file():
        raise CameraLost(f"genicam:// needs GObject introspection: {INSTALL_HINT}")
    spec = importlib.util.spec_from_file_location("gi", init, submodule_search_locations=[str(DEBIAN_GI)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gi"] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. an interpreter whose ABI is not Debian's 3.11
        del sys.modules["gi"]
        raise CameraLost(f"Debian's python3-gi does not load in this Python ({exc}); {INSTALL_HINT}") from exc
    return module


def aravis() -> Any:
    """The Aravis module (gi.repository.Aravis 0.8)."""
    try:
        import gi
    except ImportError:
        gi = _debian_gi()
    try:
        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ValueError, ImportError) as exc:
        raise CameraLost(f"Aravis 0.8 is not installed ({exc}); {INSTALL_HINT}") from exc
    return Aravis


class AravisSource:
    """One GenICam camera; a stream with a few buffers, free-running or software-triggered."""

    def __init__(
        self, device: str, *, exposure_us: float | None = None, gain_db: float | None = None, trigger: str = "none",
        buffers: int = 4, timeout_s: float = 2.0,
    ) -> None:
        if trigger not in ("none", "software"):
            raise ValueError(f"genicam trigger={trigger!r}: none or software")
        self.name = f"genicam://{device}"
        self.device, self.exposure_us, self.gain_db, self.trigger = device, exposure_us, gain_db, trigger
        self.buffers, self.timeout_s = max(2, buffers), timeout_s
        self.live = trigger == "none"  # triggered: frames come when asked, the capture loop paces them
        self._camera: Any = None
        self._stream: Any = None
        self._aravis: Any = None  # the Aravis module, loaded at the first open
        self._fps: float | None = None

    @classmethod
    def from_url(cls, url: str) -> "AravisSource":
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - _PARAMS
        if unknown or not parts.netloc:
            raise ValueError(f"{url}: genicam://<ip|device id|any>?{'&'.join(sorted(_PARAMS))} (unknown: {sorted(unknown)})")
        number = lambda key: float(query[key]) if key in query else None  # noqa: E731
        return cls(
            parts.netloc, exposure_us=number("exposure_us"), gain_db=number("gain_db"),
            trigger=query.get("trigger", "none"), buffers=int(query.get("buffers", 4)),
            timeout_s=float(query.get("timeout_s", 2.0)),
        )

    @property
    def native_fps(self) -> float | None:
        return self._fps

    def open(self) -> None:
        self.close()
        Aravis = aravis()
        try:
            camera = Aravis.Camera.new(None if self.device == "any" else self.device)
            if self.exposure_us is not None:
                camera.set_exposure_time(self.exposure_us)
            if self.gain_db is not None:
                camera.set_gain(self.gain_db)
            camera.set_acquisition_mode(Aravis.AcquisitionMode.CONTINUOUS)
            if self.trigger == "software":
                camera.set_trigger("Software")
            else:
                camera.clear_triggers()
            stream = camera.create_stream(None, None)
            payload = camera.get_payload()
            for _ in range(self.buffers):
                stream.push_buffer(Aravis.Buffer.new_allocate(payload))
            rate = camera.get_frame_rate() if self.trigger == "none" else 0.0
            camera.start_acquisition()
        except Exception as exc:  # noqa: BLE001 - GLib.Error and TypeError(None) both mean "no such camera / refused"
            raise CameraLost(f"cannot open {self.name}: {exc}") from exc
        self._fps = float(rate) if rate and 0 < rate < 1000 else None
        self._camera, self._stream, self._aravis = camera, stream, Aravis

    def read(self) -> SourceFrame | None:
        if self._camera is None:
            raise CameraLost(f"{self.name} is not open")
        Aravis = self._aravis
        skipped = incomplete = 0
        if self.trigger == "none":
            # Free-running: frames queued since the last read are old (and once every buffer is full
            # the camera's newer frames are dropped): hand them back and wait for the next one, at
            # most a frame period away. No lag builds however slow the line's rate.
            while (old := self._stream.try_pop_buffer()) is not None:
                self._stream.push_buffer(old)
                skipped += 1
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if self.trigger == "software":
                self._fire()
            buffer = self._stream.timeout_pop_buffer(int(remaining * 1e6))
            if buffer is None:
                break
            if buffer.get_status() == Aravis.BufferStatus.SUCCESS:
                try:
                    return SourceFrame(self._image(buffer), skipped=skipped)
                finally:
                    self._stream.push_buffer(buffer)  # back to the camera for a later frame
            # Lost packets (a busy network or host) spoil one frame, not the connection: take the
            # next one (triggered: expose again); counted with the skipped frames.
            self._stream.push_buffer(buffer)
            skipped, incomplete = skipped + 1, incomplete + 1
        raise CameraLost(f"{self.name}: no complete frame for {self.timeout_s:g} s ({incomplete} incomplete)")

    def _fire(self) -> None:
        try:
            self._camera.software_trigger()
        except Exception as exc:  # noqa: BLE001 - a GLib.Error from a camera that stopped answering
            raise CameraLost(f"{self.name}: software trigger failed: {exc}") from exc

    def _image(self, buffer: Any) -> np.ndarray:
        Aravis = self._aravis
        width, height = buffer.get_image_width(), buffer.get_image_height()
        fmt = buffer.get_image_pixel_format()
        data = np.frombuffer(buffer.get_data(), np.uint8)
        if fmt == Aravis.PIXEL_FORMAT_MONO_8:
            return data[: width * height].reshape(height, width).copy()
        if fmt in (Aravis.PIXEL_FORMAT_RGB_8_PACKED, Aravis.PIXEL_FORMAT_BGR_8_PACKED):
            image = data[: width * height * 3].reshape(height, width, 3)
            return image[..., ::-1].copy() if fmt == Aravis.PIXEL_FORMAT_RGB_8_PACKED else image.copy()
        raise CameraLost(f"{self.name}: pixel format 0x{fmt:08x} not supported; set the camera to Mono8, RGB8 or BGR8")

    def close(self) -> None:
        camera, self._camera, self._stream = self._camera, None, None
        if camera is not None:
            try:
                camera.stop_acquisition()
            except Exception:  # noqa: BLE001 - a camera that vanished cannot be stopped; dropping it is enough
                pass
