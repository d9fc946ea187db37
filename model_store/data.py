"""Image folders -> model inputs, through the one preprocessing path (model_store/preprocess.py).

Layouts: MVTec AD (`<category>/train/good`, `<category>/test/<type>`,
`<category>/ground_truth/<type>/<stem>_mask.png`) or a flat folder of normal images. Files are
decoded as the worker decodes frames (OpenCV, BGR uint8), then preprocessed as the manifest says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from linewatch.imagesize import declared_size

from model_store.preprocess import decode, frames_to_uint8

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def train_images(root: Path | str) -> list[Path]:
    """Normal training images: `<root>/train/good` if present, else the images in `root` (or below)."""
    root = Path(root)
    if (root / "train" / "good").is_dir():
        return _images_in(root / "train" / "good")
    if not root.is_dir():
        raise FileNotFoundError(f"no such image folder: {root}")
    return _images_in(root) or _images_in(root, recursive=True)


def read_bgr(path: Path | str, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as BGR uint8 (gray files come back as 3 equal channels).

    With `size` (the model's input, (h, w)), JPEG and PNG files are decoded exactly as the worker
    decodes a camera frame of the same bytes (preprocess.decode: reduced JPEG decode).
    """
    data = Path(path).read_bytes()
    for encoding in ("jpeg", "png"):
        declared = declared_size(data, encoding)
        if declared is not None and size is not None:
            img, _ = decode(data, encoding, declared[0], declared[1], size)
            break
    else:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return img


def load_uint8(paths: list[Path], size: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """Decode and preprocess once: uint8 [N, C, H, W] model inputs (RGB for C = 3)."""
    return frames_to_uint8([read_bgr(p, size) for p in paths], size, channels)


def fingerprint(paths: list[Path], root: Path | str) -> str:
    """sha256 over (path relative to root, sha256 of content) of every file, in sorted order."""
    h = hashlib.sha256()
    root = Path(root)
    for p in sorted(paths):
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
        h.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@dataclass
class TestSample:
    path: Path
    defect: str  # "good" or the defect folder name
    mask_path: Path | None  # None for good images (all-zero mask)

    @property
    def label(self) -> int:
        return int(self.defect != "good")


def mvtec_test_set(root: Path | str) -> list[TestSample]:
    """`<root>/test/<type>/*` with masks from `<root>/ground_truth/<type>/<stem>_mask.png`."""
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise FileNotFoundError(f"{root} has no test/ folder (MVTec layout expected)")
    out = []
    for d in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in _images_in(d):
            mask = None
            if d.name != "good":
                cand = root / "ground_truth" / d.name / f"{img.stem}_mask.png"
                mask = cand if cand.exists() else None
            out.append(TestSample(img, d.name, mask))
    return out


def read_mask(sample: TestSample, size: tuple[int, int]) -> np.ndarray:
    """Binary mask [H, W] bool at size; resized nearest, > 127 is anomalous (models.md convention)."""
    h, w = size
    if sample.mask_path is None:
        return np.zeros((h, w), bool)
    m = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"cannot decode mask {sample.mask_path}")
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) > 127
