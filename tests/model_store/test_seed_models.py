"""DAAD, UTAD and DDR-ID: every registered variant builds, trains a few steps, survives the store and
traces for export; the small variants also train on a tiny real subset of ../shared/data.

Synthetic images keep the checks alive where the data is absent (CI); the real-data case skips then.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import create_model, list_models
from model_store.store import ModelStore
from model_store.training import train_model

SEED_MODELS = ["daad", "daad_small", "utad", "utad_small", "ddrid", "ddrid_small"]
SMALL = [n for n in SEED_MODELS if n.endswith("_small")]
SIZE = 64
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_SETS = [DATA / "magnetic_tile" / "magnetic_tile", DATA / "ball_screw" / "ball_screw"]


def synthetic_uint8(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Smooth random textures, uint8 [N, 3, H, W]: structured enough for BatchNorm and the memories."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 8, size // 8, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    img = (0.7 * img + 0.3 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return (img.expand(n, 3, size, size) * 255).round().to(torch.uint8)


def real_uint8(root: Path, n: int, size: int = SIZE) -> torch.Tensor:
    from model_store.data import load_uint8, train_images

    return load_uint8(train_images(root)[:n], (size, size))


def publish_and_load(tmp_path: Path, arch: str, module: AnomalyModel):
    store = ModelStore(tmp_path / "store")
    man = store.publish(
        arch,
        module,
        {
            "architecture": arch,
            "kwargs": {},
            "input_size": (SIZE, SIZE),
            "channels": module.in_channels,
            "score_definition": module.score_definition,
        },
    )
    return store.load(f"{arch}@{man.version}", require_calibration=False)


def check_outputs(amap: torch.Tensor, score: torch.Tensor, batch: int) -> None:
    assert amap.shape == (batch, SIZE, SIZE)
    assert score.shape == (batch,)
    assert torch.isfinite(amap).all() and torch.isfinite(score).all()


def test_all_registered() -> None:
    assert set(SEED_MODELS) <= set(list_models())


@pytest.mark.parametrize("arch", SEED_MODELS)
def test_train_store_load_trace_synthetic(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images = synthetic_uint8(16)
    steps, batch = (3, 4) if arch in SMALL else (1, 2)  # paper-width variants: one step is the check
    result = train_model(arch, {}, images, TrainConfig(max_steps=steps, batch_size=batch), show_progress=False)
    assert result.steps == steps and all(np.isfinite(v) for v in result.losses.values())
    model = result.module.eval()
    x = images[:3].float() / 255
    with torch.no_grad():
        amap, score = model(x)
    check_outputs(amap, score, 3)

    loaded = publish_and_load(tmp_path, arch, model)
    amap2, score2 = loaded.score(x)
    np.testing.assert_allclose(amap2, amap.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(score2, score.numpy(), rtol=1e-4, atol=1e-5)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns about shape-derived ints: fine for fixed-size export
        traced = torch.jit.trace(loaded.module, x)
        amap3, score3 = traced(x)
    torch.testing.assert_close(amap3, amap, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(score3, score, rtol=1e-4, atol=1e-5)


@pytest.mark.data
@pytest.mark.parametrize("root", REAL_SETS, ids=lambda p: p.name)
@pytest.mark.parametrize("arch", SMALL)
def test_train_store_score_real(arch: str, root: Path, tmp_path: Path) -> None:
    if not (root / "train" / "good").is_dir():
        pytest.skip(f"{root} absent")
    images = real_uint8(root, 16)
    result = train_model(arch, {}, images, TrainConfig(max_steps=4, batch_size=4), show_progress=False)
    loaded = publish_and_load(tmp_path, arch, result.module)
    from model_store.data import mvtec_test_set, read_bgr

    samples = mvtec_test_set(root)[:2] + mvtec_test_set(root)[-2:]
    x = loaded.preprocess([read_bgr(s.path) for s in samples])
    amap, score = loaded.score(x)
    assert amap.shape == (4, SIZE, SIZE) and score.shape == (4,)
    assert np.isfinite(amap).all() and np.isfinite(score).all()


# --- model-specific behaviour ------------------------------------------------------------------


def test_daad_block_memory_assembles_blocks_in_place() -> None:
    """A memory holding exactly one block per item, addressed sharply, rebuilds the map unchanged."""
    from model_store.models.daad import BlockMemory

    mem = BlockMemory(channels=2, block=2, items=4, shrink_thres=0.0)
    f = torch.zeros(1, 2, 4, 4)
    corners = [(0, 0), (0, 2), (2, 0), (2, 2)]
    for k, (i, j) in enumerate(corners):  # orthogonal blocks: each matches only its own item
        f[0, :, i : i + 2, j : j + 2] = 10 * torch.nn.functional.one_hot(torch.tensor(2 * k + 1), 8).float().view(2, 2, 2)
    blocks = [f[0, :, i : i + 2, j : j + 2].reshape(-1) for i, j in corners]
    with torch.no_grad():
        mem.memory.copy_(torch.stack(blocks))
        out, w = mem(f)
    assert w.shape == (4, 4)
    torch.testing.assert_close(out, f, rtol=0, atol=1e-3)


def test_daad_block_sizes_validated() -> None:
    with pytest.raises(Exception):
        create_model("daad_small", block_sizes=[4, 2])


def test_utad_impression_is_an_image() -> None:
    model = create_model("utad_small").eval()
    x = synthetic_uint8(2).float() / 255
    with torch.no_grad():
        imp = model.impression(x)
    assert imp.shape == x.shape and imp.min() >= 0 and imp.max() <= 1


def test_ddrid_decomposition_and_centre() -> None:
    model = create_model("ddrid_small")
    x = synthetic_uint8(8).float() / 255
    model.on_train_start(x, TrainConfig())
    assert bool(model.centre_set) and model.centre.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        parts = model.decompose(x)
    torch.testing.assert_close(parts["x_n"] + parts["residual"], parts["x_f"])
    assert parts["z_n"].shape[1] == model.cfg.latent

