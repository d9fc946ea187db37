from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from producer.settings import CameraSpec
from producer.sources import CameraLost, ImageFolderSource, SyntheticSource, VideoCaptureSource, open_source
from producer.stream import StreamSource
from producer.synthetic import SyntheticCamera


def spec(source: str, loop: bool = True) -> CameraSpec:
    return CameraSpec(id="c", source=source, loop=loop)


def test_open_source_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_source(spec("synthetic://?seed=2")), SyntheticSource)
    assert isinstance(open_source(spec(f"folder://{tmp_path}")), ImageFolderSource)
    assert isinstance(open_source(spec(str(tmp_path))), ImageFolderSource)
    device = open_source(spec("0"))
    assert isinstance(device, VideoCaptureSource) and device.target == 0 and device.live
    stream = open_source(spec("rtsp://10.0.0.9/line1"))
    assert isinstance(stream, StreamSource) and stream.live  # PyAV: timeouts, newest frame
    assert isinstance(open_source(spec("rtsp://10.0.0.9/line1"), backend="opencv"), VideoCaptureSource)
    v4l2 = open_source(spec("/dev/video7"))
    assert isinstance(v4l2, VideoCaptureSource) and v4l2.live
    video = open_source(spec(str(tmp_path / "clip.avi")))
    assert isinstance(video, VideoCaptureSource) and not video.live


def test_synthetic_source_matches_the_camera_and_survives_reopening() -> None:
    source = SyntheticSource("synthetic://?seed=3&defect_rate=0.3&width=64&height=64")
    camera = SyntheticCamera(3, width=64, height=64, defect_rate=0.3)
    frames = [source.read() for _ in range(5)]
    source.close()
    source.open()
    frames.append(source.read())  # seq 5, not 0 again
    for seq, frame in enumerate(frames):
        image, mask = camera.render(seq)
        assert frame is not None and np.array_equal(frame.image, image) and frame.defective == (mask is not None)


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), np.full((20, 30, 3), i * 10, np.uint8))
    (folder / "notes.txt").write_text("not an image")


def test_image_folder_in_name_order_with_and_without_loop(tmp_path: Path) -> None:
    write_images(tmp_path, 3)
    looping = ImageFolderSource(tmp_path, loop=True)
    looping.open()
    values = [int(looping.read().image[0, 0, 0]) for _ in range(5)]  # type: ignore[union-attr]
    assert values == [0, 10, 20, 0, 10]
    once = ImageFolderSource(tmp_path, loop=False)
    once.open()
    assert [once.read() is not None for _ in range(4)] == [True, True, True, False]


def test_image_folder_missing_or_empty_is_camera_lost(tmp_path: Path) -> None:
    with pytest.raises(CameraLost):
        ImageFolderSource(tmp_path / "nope").open()
    with pytest.raises(CameraLost):
        ImageFolderSource(tmp_path).open()
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    source = ImageFolderSource(tmp_path)
    source.open()
    with pytest.raises(CameraLost):
        source.read()


def write_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((24, 32, 3), i * 20, np.uint8))
    writer.release()


def test_video_file_rewinds_when_looping(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 4)
    source = VideoCaptureSource(str(path), loop=True)
    source.open()
    assert source.native_fps == pytest.approx(25.0)
    levels = [int(source.read().image.mean()) for _ in range(6)]  # type: ignore[union-attr]
    assert levels[4] == pytest.approx(levels[0], abs=3) and levels[5] == pytest.approx(levels[1], abs=3)
    source.close()
    once = VideoCaptureSource(str(path), loop=False)
    once.open()
    assert [once.read() is not None for _ in range(5)] == [True] * 4 + [False]
    once.close()


def test_missing_video_device_fails_with_the_cause() -> None:
    # No USB camera on this machine or CI: a device index / node that does not exist names the node.
    for target in (57, "/dev/video57"):
        with pytest.raises(CameraLost, match=r"/dev/video57 does not exist"):
            VideoCaptureSource(target).open()


def test_unopenable_video_is_camera_lost(tmp_path: Path) -> None:
    with pytest.raises(CameraLost):
        VideoCaptureSource(str(tmp_path / "missing.avi")).open()
    with pytest.raises(CameraLost):
        VideoCaptureSource(str(tmp_path / "x.avi")).read()  # never opened
