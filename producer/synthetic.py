"""A synthetic camera: a machined metal part on a conveyor, with defects injected on demand.

Everything is a pure function of (seed, seq): the same seed renders the same part, lighting and
defects in every process, so tests and the demo know the ground truth of each frame without
sending it anywhere. The part's texture is rendered once per seed (brushed metal, bolt holes,
belt background, a few noise variants); a frame is a jittered crop of it with a small lighting
change, which keeps normal frames alike enough for a small autoencoder to learn them quickly.

Defects (scratch, blob, crack) are drawn on the part together with a 0/255 mask. A forced range
(`defect_from`..`defect_to`) draws the *same* defect on every frame of the range, like a damaged
part sitting under the camera; random defects (`defect_rate`) differ frame to frame.

Lighting drift (`drift_from`, `drift_per_frame`, `drift_max`): from frame `drift_from` on, the
whole frame's gain grows by `drift_per_frame` per frame up to `drift_max` (1.25 = 25 % brighter), like
an ageing or replaced lamp: every pixel changes a little, which is not a defect.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from linewatch.errors import ConfigError

SCHEME = "synthetic"
DEFECT_KINDS = ("scratch", "blob", "crack")
_NOISE_VARIANTS = 4  # precomputed sensor-noise canvases; a frame picks one (cheap, still not static)
_STREAM_FRAME, _STREAM_DEFECT_DRAW, _STREAM_DEFECT_COIN = 0, 1, 2  # independent random streams per seq

# Part colours (BGR): steel, aluminium, brass, dark anodised.
_PART_TINTS = ((1.00, 1.00, 1.00), (1.05, 1.02, 0.98), (0.55, 0.85, 1.05), (0.85, 0.80, 0.75))


@dataclass(frozen=True, slots=True)
class _Base:
    canvases: tuple[np.ndarray, ...]  # (H + 2j, W + 2j, 3) uint8, one per noise variant
    part: np.ndarray  # (H + 2j, W + 2j) uint8, 255 on the part: defects are clipped to it
    part_yx: np.ndarray  # (N, 2) coordinates well inside the part, where defects may be drawn
    part_level: float  # mean brightness of the part, to pick contrasting defect colours


class SyntheticCamera:
    """Procedural part images, deterministic by (seed, seq); `render(seq)` -> (bgr, mask | None)."""

    def __init__(
        self,
        seed: int = 0,
        width: int = 256,
        height: int = 256,
        defect_rate: float = 0.05,
        *,
        defect_seqs: frozenset[int] | set[int] | tuple[int, ...] = (),
        defect_from: int | None = None,
        defect_to: int | None = None,
        jitter: int = 2,
        drift_from: int | None = None,
        drift_per_frame: float = 0.0,
        drift_max: float = 1.0,
    ) -> None:
        if seed < 0 or width < 32 or height < 32 or not 0.0 <= defect_rate <= 1.0 or jitter < 0:
            raise ConfigError(
                f"synthetic camera: seed >= 0, size >= 32, 0 <= defect_rate <= 1, jitter >= 0 "
                f"(got seed={seed}, {width}x{height}, rate={defect_rate}, jitter={jitter})"
            )
        self.seed, self.width, self.height = seed, width, height
        self.defect_rate = defect_rate
        self.defect_seqs = frozenset(defect_seqs)
        self.defect_from, self.defect_to = defect_from, defect_to  # [from, to); to None = open-ended
        self.jitter = jitter
        self.drift_from, self.drift_per_frame, self.drift_max = drift_from, drift_per_frame, drift_max
        self._base = _render_base(seed, width, height, jitter)

    @classmethod
    def from_url(cls, url: str) -> SyntheticCamera:
        """``synthetic://?seed=1&defect_rate=0.05&width=256&height=256&defect_from=50&defect_to=80
        &defect_seqs=3,7&jitter=2`` (every parameter optional)."""
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise ConfigError(f"not a synthetic source: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"seed", "width", "height", "defect_rate", "defect_from", "defect_to", "defect_seqs", "jitter", "fps",
                 "drift_from", "drift_per_frame", "drift_max"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ConfigError(f"synthetic source {url!r}: unknown parameter(s) {', '.join(unknown)}")
        try:
            return cls(
                seed=int(query.get("seed", 0)),
                width=int(query.get("width", 256)),
                height=int(query.get("height", 256)),
                defect_rate=float(query.get("defect_rate", 0.05)),
                defect_seqs=frozenset(int(s) for s in query.get("defect_seqs", "").split(",") if s.strip()),
                defect_from=int(query["defect_from"]) if "defect_from" in query else None,
                defect_to=int(query["defect_to"]) if "defect_to" in query else None,
                jitter=int(query.get("jitter", 2)),
                drift_from=int(query["drift_from"]) if "drift_from" in query else None,
                drift_per_frame=float(query.get("drift_per_frame", 0.0)),
                drift_max=float(query.get("drift_max", 1.0)),
            )
        except ValueError as exc:
            raise ConfigError(f"synthetic source {url!r}: {exc}") from exc

    def _in_forced_range(self, seq: int) -> bool:
        return self.defect_from is not None and seq >= self.defect_from and (
            self.defect_to is None or seq < self.defect_to
        )

    def lighting(self, seq: int) -> float:
        """The lamp's gain at frame `seq` (1.0 without drift)."""
        if self.drift_from is None or seq < self.drift_from:
            return 1.0
        grown = 1.0 + self.drift_per_frame * (seq - self.drift_from)
        return min(grown, self.drift_max) if self.drift_per_frame >= 0 else max(grown, self.drift_max)

    def is_defective(self, seq: int) -> bool:
        """Whether frame `seq` carries a defect (forced, or drawn with probability defect_rate)."""
        if seq in self.defect_seqs or self._in_forced_range(seq):
            return True
        if self.defect_rate <= 0.0:
            return False
        coin = np.random.default_rng([self.seed, seq, _STREAM_DEFECT_COIN]).random()
        return bool(coin < self.defect_rate)

    def render(self, seq: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame `seq`: BGR uint8 (H, W, 3) and, when defective, its uint8 (H, W) mask (255 = defect)."""
        rng = np.random.default_rng([self.seed, seq, _STREAM_FRAME])
        j = self.jitter
        dy, dx = (rng.integers(-j, j + 1, size=2) if j else (0, 0))
        canvas = self._base.canvases[int(rng.integers(len(self._base.canvases)))]
        crop = canvas[j + dy : j + dy + self.height, j + dx : j + dx + self.width]
        # Lighting drift: +-4 % gain and +-4 grey levels; convertScaleAbs also copies the crop.
        gain = self.lighting(seq) * (1.0 + rng.uniform(-0.04, 0.04))
        image = cv2.convertScaleAbs(crop, alpha=gain, beta=rng.uniform(-4.0, 4.0))
        if not self.is_defective(seq):
            return image, None
        # A forced range keeps one defect geometry (the same damaged part); others vary per frame.
        key = self.defect_from if self._in_forced_range(seq) and seq not in self.defect_seqs else seq
        mask = np.zeros((self.height, self.width), np.uint8)
        layer = image.copy()
        _draw_defect(layer, mask, np.random.default_rng([self.seed, key, _STREAM_DEFECT_DRAW]), self._base, (dx, dy))
        # Defects are damage to the part: clip them to it (a scratch may run to the rim, not beyond).
        part = self._base.part[j + dy : j + dy + self.height, j + dx : j + dx + self.width] > 0
        np.copyto(image, layer, where=part[..., None])
        mask[~part] = 0
        return image, mask


def _render_base(seed: int, width: int, height: int, jitter: int) -> _Base:
    """The per-seed part texture on its background, padded by `jitter` on every side."""
    rng = np.random.default_rng([seed, 0xBA5E])
    h, w = height + 2 * jitter, width + 2 * jitter

    # Belt background: dark, faint horizontal ribs plus low-frequency mottling.
    rows = np.arange(h, dtype=np.float32)[:, None]
    # Ribs wide enough to survive a 4x downscale without aliasing (models often run at 64 px).
    ribs = 4.0 * np.sin(rows * (2 * np.pi / rng.uniform(28, 44)))
    mottle = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigmaX=max(w, h) / 20)
    mottle *= 5.0 / (mottle.std() + 1e-6)
    background = rng.uniform(38, 58) + ribs + mottle

    # Part shape: rounded plate or disk, centred with a small per-seed offset, 55-75 % of the frame.
    shape = np.zeros((h, w), np.uint8)
    cy, cx = h / 2 + rng.uniform(-0.04, 0.04) * h, w / 2 + rng.uniform(-0.04, 0.04) * w
    ry, rx = rng.uniform(0.28, 0.37) * h, rng.uniform(0.28, 0.37) * w
    if rng.random() < 0.5:
        cv2.ellipse(shape, (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    else:
        r = int(min(rx, ry) * 0.3)
        x0, y0, x1, y1 = int(cx - rx), int(cy - ry), int(cx + rx), int(cy + ry)
        cv2.rectangle(shape, (x0 + r, y0), (x1 - r, y1), 255, -1)
        cv2.rectangle(shape, (x0, y0 + r), (x1, y1 - r), 255, -1)
        for px, py in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(shape, (px, py), r, 255, -1, cv2.LINE_AA)
    inner = cv2.erode(shape, np.ones((15, 15), np.uint8))  # where defects go: away from the rim

    # Bolt holes near the rim: fixed features the model must learn to reproduce.
    holes = np.zeros((h, w), np.uint8)
    for k in range(int(rng.integers(2, 5))):
        angle = 2 * np.pi * k / 4 + rng.uniform(-0.2, 0.2) + np.pi / 4
        # Well inside the rim: a hole and the rim in one score window would look like damage.
        hx, hy = int(cx + 0.55 * rx * np.cos(angle)), int(cy + 0.55 * ry * np.sin(angle))
        cv2.circle(holes, (hx, hy), int(min(rx, ry) * 0.09), 255, -1, cv2.LINE_AA)

    # Brushed metal: noise smeared along one direction, plus a broad lighting gradient.
    grain = rng.normal(0, 1, (h, w)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), sigmaX=12.0, sigmaY=0.6)
    grain *= 4.0 / (grain.std() + 1e-6)  # subtle: visible, yet below what SSIM's constants ignore
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-1, 1, size=2)
    shading = 18.0 * (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    part_level = float(rng.uniform(150, 185))
    metal = part_level + grain + shading

    alpha = cv2.GaussianBlur(shape.astype(np.float32) / 255.0, (0, 0), 1.0)
    hole_a = cv2.GaussianBlur(holes.astype(np.float32) / 255.0, (0, 0), 0.8)
    grey = background * (1 - alpha) + metal * alpha
    grey = grey * (1 - hole_a) + (background * 0.5) * hole_a
    tint = np.array(_PART_TINTS[int(rng.integers(len(_PART_TINTS)))], np.float32)
    colour = grey[..., None] * (1 + (tint - 1) * alpha[..., None])

    canvases = tuple(
        np.clip(colour + np.random.default_rng([seed, 0x5E, v]).normal(0, 2.0, (h, w, 1)), 0, 255).astype(np.uint8)
        for v in range(_NOISE_VARIANTS)
    )
    inner[holes > 0] = 0
    inner = inner[jitter : jitter + height, jitter : jitter + width]
    part_yx = np.argwhere(inner > 0)
    if len(part_yx) == 0:  # degenerate tiny frame: anywhere will do
        part_yx = np.argwhere(np.ones((height, width), bool))
    return _Base(canvases=canvases, part=shape, part_yx=part_yx, part_level=part_level)


def _draw_defect(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, base: _Base, shift: tuple[int, int]) -> None:
    """Draw one or two defects on `image` (in place) and the same shapes on `mask`."""
    scale = min(image.shape[:2]) / 256.0
    for _ in range(1 if rng.random() < 0.75 else 2):
        y, x = base.part_yx[int(rng.integers(len(base.part_yx)))]
        x, y = int(x - shift[0]), int(y - shift[1])  # follow the part's jitter
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
        if kind == "scratch":
            length, angle = rng.uniform(50, 110) * scale, rng.uniform(0, np.pi)
            dx, dy = int(length / 2 * np.cos(angle)), int(length / 2 * np.sin(angle))
            bright = rng.random() < 0.5
            level = min(255.0, base.part_level + 70) if bright else base.part_level * 0.25
            thick = max(2, int(round(rng.uniform(3, 6) * scale)))
            cv2.line(image, (x - dx, y - dy), (x + dx, y + dy), (level, level, level), thick, cv2.LINE_AA)
            cv2.line(mask, (x - dx, y - dy), (x + dx, y + dy), 255, thick + 2)
        elif kind == "blob":
            axes = (int(rng.uniform(10, 24) * scale) + 2, int(rng.uniform(8, 18) * scale) + 2)
            angle = float(rng.uniform(0, 180))
            colour = (30.0, 60.0, 115.0) if rng.random() < 0.5 else (25.0, 25.0, 28.0)  # rust or oil stain
            cv2.ellipse(image, (x, y), axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
            cv2.ellipse(mask, (x, y), (axes[0] + 1, axes[1] + 1), angle, 0, 360, 255, -1)
        else:  # crack: a jagged random walk
            points = [(x, y)]
            heading = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(6, 12))):
                heading += rng.uniform(-0.9, 0.9)
                step = rng.uniform(8, 14) * scale
                px, py = points[-1]
                points.append((int(px + step * np.cos(heading)), int(py + step * np.sin(heading))))
            poly = np.array(points, np.int32).reshape(-1, 1, 2)
            thick = max(2, int(round(rng.uniform(3, 5) * scale)))
            cv2.polylines(image, [poly], False, (20.0, 20.0, 22.0), thick, cv2.LINE_AA)
            cv2.polylines(mask, [poly], False, 255, thick + 2)
