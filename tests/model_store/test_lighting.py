"""Lighting shifts, training for them, input normalisation, image-score choices and DAAD's weights (issue 27).

Pure functions on small tensors, and two tiny CLI runs through the real store: train with
augmentation and gain normalisation, evaluate --shift.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model_store import lighting
from model_store.calibration import clopper_pearson
from model_store.cli import main
from model_store.image_scores import above, choices, max_mean, topk_mean
from model_store.models._common import InputNorm
from model_store.registry import create_model
from model_store.store import ModelStore

from model_store_helpers import synthetic_frames, write_mvtec
from linewatch.errors import ModelIntegrityError


def _img(b: int = 2, c: int = 3, h: int = 16, w: int = 24, hi: float = 0.8, seed: int = 0) -> torch.Tensor:
    """Values in [0.1, hi]: room for +20 % without clipping when hi <= 1 / 1.2."""
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * (hi - 0.1) + 0.1


# ---- the shifts ------------------------------------------------------------------------------
def test_brightness_changes_the_mean_as_stated() -> None:
    x = _img(hi=0.8)
    for f in (0.1, 0.2, -0.2, -0.3):
        assert lighting.brightness(x, f).mean().item() == pytest.approx(x.mean().item() * (1 + f), rel=1e-6)
    assert lighting.brightness(torch.full((1, 1, 2, 2), 0.9), 0.3).max().item() == 1.0  # clipped, not wrapped


def test_contrast_keeps_each_mean_and_scales_the_spread() -> None:
    x = _img(hi=0.6)
    y = lighting.contrast(x, 0.2)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-6)
    assert y.std().item() == pytest.approx(x.std().item() * 1.2, rel=1e-3)


def test_gamma_lifts_or_darkens_midtones() -> None:
    x = _img()
    assert torch.equal(lighting.gamma(x, 1.0), x)
    assert (lighting.gamma(x, 0.8) > x).all() and (lighting.gamma(x, 1.25) < x).all()


def test_white_balance_moves_red_and_blue_opposite_and_leaves_gray_models_alone() -> None:
    x = _img(hi=0.8)
    y = lighting.white_balance(x, 0.1)
    assert torch.allclose(y[:, 0], x[:, 0] * 1.1) and torch.equal(y[:, 1], x[:, 1]) and torch.allclose(y[:, 2], x[:, 2] * 0.9)
    g = _img(c=1)
    assert torch.equal(lighting.white_balance(g, 0.1), g)


def test_side_lamp_is_a_monotone_gradient_with_the_stated_ends() -> None:
    x = torch.full((1, 3, 10, 20), 0.5)
    y = lighting.side_lamp(x, 0.2, 0.0)  # angle 0: dark left, bright right
    cols = y[0, 0, 0]
    assert (cols[1:] > cols[:-1]).all()
    assert cols[0].item() == pytest.approx(0.5 * 0.8) and cols[-1].item() == pytest.approx(0.5 * 1.2)
    assert torch.allclose(y[0, 0], y[0, 0, :1].expand(10, 20))  # constant down each column
    flipped = lighting.side_lamp(x, 0.2, math.pi)[0, 0, 0]
    assert (flipped[1:] < flipped[:-1]).all()


def test_eval_shifts_are_the_documented_set_and_seeds_reproduce() -> None:
    names = [s.name for s in lighting.EVAL_SHIFTS]
    for p in (10, 20, 30):
        assert f"brightness+{p}%" in names and f"brightness-{p}%" in names
    assert {s.kind for s in lighting.EVAL_SHIFTS} == {"brightness", "contrast", "gamma", "white_balance", "side_lamp"}
    u8 = (_img(b=4, seed=3) * 255).round().to(torch.uint8)
    lamp = lighting.SHIFTS_BY_NAME["side_lamp20%"]
    a, b = lighting.shift_uint8(u8, lamp, seed=5), lighting.shift_uint8(u8, lamp, seed=5)
    assert a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, lighting.shift_uint8(u8, lamp, seed=6))  # the direction comes from the seed
    up = lighting.shift_uint8(u8, lighting.SHIFTS_BY_NAME["brightness+20%"])
    assert up.float().mean().item() == pytest.approx(u8.float().mean().item() * 1.2, rel=5e-3)


def test_augment_is_seeded_bounded_and_off_at_zero() -> None:
    x = _img(b=16)
    assert lighting.augment(x, 0.0, torch.Generator().manual_seed(0)) is x
    a = lighting.augment(x, 0.3, torch.Generator().manual_seed(0))
    b = lighting.augment(x, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    ratio = a.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))
    assert ratio.std() > 0.02 and (ratio - 1).abs().max() < 0.8  # images really lit differently, within the strength


# ---- input normalisation --------------------------------------------------------------------
def test_gain_normalisation_divides_a_lamp_out_and_none_adds_no_weights() -> None:
    x = _img(hi=0.8)
    gain, std = InputNorm("gain"), InputNorm("standardise")
    gain.fit(x)
    std.fit(x)
    assert torch.allclose(gain(x), gain(x * 1.2), atol=1e-6)
    assert torch.allclose(std(x * 0.5 + 0.1), std(x), atol=1e-5)
    assert dict(InputNorm("none").state_dict()) == {} and set(gain.state_dict()) == {"ref_mean", "ref_std"}
    with pytest.raises(ValueError):
        InputNorm("median")


@pytest.mark.parametrize("arch,kwargs", [("autoencoder", {"width": 4, "latent": 8, "depth": 2}),
                                          ("draem_small", {"base_width": 4, "disc_width": 4})])
def test_a_gain_normalised_model_scores_a_brighter_lamp_the_same(arch: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    m = create_model(arch, input_norm="gain", **kwargs).eval()
    m.norm.fit(_img(b=4, h=32, w=32))
    x = _img(b=2, h=32, w=32, hi=0.8, seed=1)
    with torch.no_grad():
        s0, s1 = m(x)[1], m(x * 1.2)[1]
    assert torch.allclose(s0, s1, rtol=1e-4, atol=1e-6)
    assert "input normalised per image (gain)" in m.score_definition
    assert "input normalised" not in create_model(arch, **kwargs).score_definition  # old definitions unchanged


# ---- image scores ---------------------------------------------------------------------------
def test_image_score_choices() -> None:
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, 3:5, 3:5] = 1.0  # a 2x2 blob
    maps[1, 0, 0] = 1.0  # one corner pixel
    assert max_mean(maps, 1).tolist() == [1.0, 1.0]
    assert max_mean(maps, 3)[0] == pytest.approx(4 / 9) and max_mean(maps, 3)[1] == pytest.approx(1 / 9)  # zero padding counts
    assert topk_mean(maps, 4 / 64).tolist() == [1.0, 0.25]
    assert above(maps, 0.5).tolist() == pytest.approx([4 * 0.5 / 64, 0.5 / 64])
    assert above(maps * 0.4, 0.5).tolist() == [0.0, 0.0]
    assert {"max_mean11", "top1%", "above_pixel_threshold"} <= set(choices(0.5))


# ---- DAAD: weights from the calibration normals -----------------------------------------------
def test_daad_weights_come_from_the_calibration_normals_and_fixed_models_keep_their_keys() -> None:
    torch.manual_seed(0)
    fixed = create_model("daad_small")
    assert "weights" not in fixed.state_dict()
    m = create_model("daad_small", score_weights="calibration").eval()
    x = _img(b=6, h=64, w=64)
    for _ in range(3):  # give the running moments a spread to standardise with
        with torch.no_grad():
            m.moments.update(m._components(x, m.reconstruct(x)[0])[1])
    m.on_calibration(x)
    with torch.no_grad():
        z = m.moments.standardise(m._components(x, m.reconstruct(x)[0])[1])
        assert torch.allclose(m.weights, 1 / z.std(0), rtol=1e-4)
        assert torch.allclose(m(x)[1], z @ m.weights, rtol=1e-4)
    assert "calibration normals" in m.score_definition
    with pytest.raises(ModelIntegrityError):
        create_model("daad_small", score_weights="auto")


# ---- through the store and the CLI ----------------------------------------------------------
TINY = ["--input-size", "32", "--batch-size", "4", "--no-progress", "--arch", "autoencoder", "--set", "width=4",
        "--set", "latent=8", "--set", "depth=2", "--steps", "3"]


def test_train_records_lighting_settings_and_evaluate_shift_reports_each_shift(tmp_path: Path, capsys) -> None:
    data = write_mvtec(tmp_path / "part", n_train=12, n_test=5)
    store = ["--store", str(tmp_path / "store"), "--threads", "1"]
    assert main([*store, "train", str(data), "--name", "p", "--target-far", "0.2", "--photometric", "0.3",
                 "--set", 'input_norm="gain"', "--checkpoint", str(tmp_path / "ck.safetensors"), *TINY]) == 0
    capsys.readouterr()
    manifest = ModelStore(tmp_path / "store").manifest("p@v0001")
    assert manifest.preprocessing.input_norm == "gain" and manifest.training.settings["photometric"] == 0.3
    assert main([*store, "evaluate", "p@v0001", str(data), "--shifts", "brightness+20%,side_lamp20%"]) == 0
    out = json.loads(capsys.readouterr().out)
    shifts = out["lighting"]["shifts"]
    assert set(shifts) == {"brightness+20%", "side_lamp20%"}
    row = shifts["brightness+20%"]
    assert row["n_good"] == 5 and 0 <= row["image_auroc"] <= 1 and row["pixel_ap"] is not None
    assert row["false_alarm_ci"] == pytest.approx(list(clopper_pearson(row["false_alarms"], 5, 0.95)))
    assert row["image_auroc_change"] == pytest.approx(row["image_auroc"] - out["image_auroc"])


def test_the_store_refuses_a_manifest_whose_input_norm_disagrees(tmp_path: Path) -> None:
    from model_store.quick import train_quick

    root = tmp_path / "store"
    name, version = train_quick(synthetic_frames(8, 32, 32), root, "n", input_size=32, steps=2,
                                kwargs={"width": 4, "latent": 8, "depth": 2, "input_norm": "gain"})
    store = ModelStore(root)
    assert store.load(f"{name}@{version}").manifest.preprocessing.input_norm == "gain"
    path = root / name / version / "manifest.json"
    doc = json.loads(path.read_text())
    del doc["preprocessing"]["input_norm"]  # as a manifest written before the field existed reads
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelIntegrityError, match="input_norm"):
        store.load(f"{name}@{version}")
