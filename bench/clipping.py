"""How much of a good image a brightness shift pushes past white: what no input normalisation can undo.

A gain normalisation divides a global lamp gain out exactly, up to clipping: pixels that a brighter
lamp drives above 1.0 (255) are cut, and the model sees a different image. This counts, per
dataset, the share of pixels of the good test images (at the lighting table's input sizes, the
one preprocessing path) that `model_store.lighting.brightness` clips at each shift.

    .venv/bin/python bench/clipping.py                      # +10 %, +20 %, +30 %
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.model_table import DATASETS  # noqa: E402
from model_store.cli import parse_size  # noqa: E402
from model_store.data import load_uint8  # noqa: E402


def clipped_share(images: torch.Tensor, gain: float) -> torch.Tensor:
    """Per image: the share of pixel values that (1 + gain) x value puts above 1.0."""
    x = images.float().div(255.0)
    return (x * (1.0 + gain) > 1.0).flatten(1).float().mean(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--gains", default="0.1,0.2,0.3")
    args = ap.parse_args()
    print("| dataset | input | good images | " + " | ".join(f"+{float(g):.0%} clipped: mean / max" for g in args.gains.split(",")) + " |")
    print("|---|---|---|" + "---|" * len(args.gains.split(",")))
    for folder, size in DATASETS.values():
        paths = sorted((Path(args.data) / folder / "test" / "good").iterdir())
        images = load_uint8(paths, parse_size(size))
        cells = []
        for g in args.gains.split(","):
            share = clipped_share(images, float(g))
            cells.append(f"{share.mean():.2%} / {share.max():.2%}")
        print(f"| {Path(folder).name} | {size} | {len(paths)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
