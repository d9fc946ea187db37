"""Image folders -> model inputs. One preprocessing path, shared by training, evaluation and serving.

Layouts: MVTec AD (`<category>/train/good`, `<category>/test/<type>`,
`<category>/ground_truth/<type>/<stem>_mask.png`) or a flat folder of normal images.
Preprocessing (recorded in every manifest): decode BGR uint8, gray -> 3 channels, resize with
INTER_AREA to the input size (no crop), BGR -> RGB, scale to [0, 1]; 1-channel models get luma.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

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


def read_bgr(path: Path | str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # gray files come back as 3 equal channels
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return img


def to_rgb_resized(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR (or gray) uint8 frame -> RGB uint8 [H, W, 3] at size (H, W)."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    h, w = size
    return cv2.cvtColor(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def frames_to_tensor(frames: list[np.ndarray], size: tuple[int, int], channels: int = 3, device: str = "cpu") -> torch.Tensor:
    """BGR uint8 frames -> float [B, C, H, W] in [0, 1] on device (the manifest's preprocessing)."""
    batch = np.stack([to_rgb_resized(f, size) for f in frames])  # [B, H, W, 3]
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().mul_(1 / 255)
    if channels == 1:
        x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).contiguous()
    return x


def load_uint8(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    """Decode and resize once; [N, 3, H, W] uint8 RGB (a 761-image set at 128 px is 37 MB)."""
    return torch.from_numpy(np.stack([to_rgb_resized(read_bgr(p), size) for p in paths])).permute(0, 3, 1, 2).contiguous()


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
