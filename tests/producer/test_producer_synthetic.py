from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from linewatch.errors import ConfigError
from producer.synthetic import SyntheticCamera


def test_deterministic_across_instances() -> None:
    a, b = SyntheticCamera(7), SyntheticCamera(7)
    for seq in (0, 1, 5, 123, 10_000):
        (ia, ma), (ib, mb) = a.render(seq), b.render(seq)
        assert ia.dtype == np.uint8 and ia.shape == (256, 256, 3)
        assert np.array_equal(ia, ib)
        assert (ma is None) == (mb is None) and (ma is None or np.array_equal(ma, mb))
        assert a.is_defective(seq) == b.is_defective(seq)
    assert np.array_equal(a.render(3)[0], a.render(3)[0])  # rendering does not change state


def test_seeds_and_frames_differ() -> None:
    cam = SyntheticCamera(1, defect_rate=0.0)
    assert not np.array_equal(cam.render(0)[0], SyntheticCamera(2, defect_rate=0.0).render(0)[0])
    assert not np.array_equal(cam.render(0)[0], cam.render(1)[0])  # jitter, lighting, sensor noise
    # ...but normal frames stay alike: what makes them learnable.
    diff = np.abs(cam.render(0)[0].astype(int) - cam.render(1)[0].astype(int)).mean()
    assert diff < 25


def test_size_and_mask_shape() -> None:
    cam = SyntheticCamera(3, width=320, height=200, defect_rate=1.0)
    image, mask = cam.render(4)
    assert image.shape == (200, 320, 3) and mask is not None and mask.shape == (200, 320)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}


def test_defect_rate() -> None:
    never, always = SyntheticCamera(1, defect_rate=0.0), SyntheticCamera(1, defect_rate=1.0)
    assert not any(never.is_defective(s) for s in range(500))
    assert all(always.is_defective(s) for s in range(50))
    cam = SyntheticCamera(1, defect_rate=0.1)
    rate = np.mean([cam.is_defective(s) for s in range(3000)])
    assert 0.07 < rate < 0.13


def test_mask_matches_is_defective_and_marks_changed_pixels() -> None:
    cam = SyntheticCamera(5, defect_rate=0.3)
    clean = SyntheticCamera(5, defect_rate=0.0)
    seen = 0
    for seq in range(60):
        image, mask = cam.render(seq)
        assert (mask is not None) == cam.is_defective(seq)
        if mask is None:
            assert np.array_equal(image, clean.render(seq)[0])
            continue
        seen += 1
        assert mask.sum() > 0
        changed = np.abs(image.astype(int) - clean.render(seq)[0].astype(int)).max(axis=2) > 20
        assert changed.any()
        assert (mask[changed] > 0).mean() > 0.8  # what the defect changed lies inside its mask
    assert seen > 5


def test_forced_range_is_one_persistent_defect() -> None:
    cam = SyntheticCamera(2, defect_rate=0.0, defect_from=10, defect_to=15)
    flags = [cam.is_defective(s) for s in range(20)]
    assert flags == [False] * 10 + [True] * 5 + [False] * 5
    masks = [cam.render(s)[1] for s in range(10, 15)]
    # Same defect on the part; the frame jitter may move it by a few pixels.
    area = [int((m > 0).sum()) for m in masks]
    assert max(area) - min(area) <= 0.2 * max(area)
    centres = [np.argwhere(m > 0).mean(axis=0) for m in masks]
    assert max(np.abs(c - centres[0]).max() for c in centres) <= 2 * cam.jitter + 1


def test_open_ended_range_and_explicit_seqs() -> None:
    cam = SyntheticCamera(2, defect_rate=0.0, defect_from=100, defect_seqs={3, 7})
    assert [s for s in range(20) if cam.is_defective(s)] == [3, 7]
    assert cam.is_defective(100) and cam.is_defective(10_000)


def test_from_url() -> None:
    cam = SyntheticCamera.from_url(
        "synthetic://?seed=4&defect_rate=0&width=128&height=96&defect_from=5&defect_to=8&defect_seqs=1,2"
    )
    assert (cam.seed, cam.width, cam.height, cam.defect_rate) == (4, 128, 96, 0.0)
    assert [s for s in range(10) if cam.is_defective(s)] == [1, 2, 5, 6, 7]
    assert SyntheticCamera.from_url("synthetic://").seed == 0
    for bad in ("synthetic://?colour=red", "synthetic://?seed=x", "file:///x", "synthetic://?defect_rate=2"):
        with pytest.raises(ConfigError):
            SyntheticCamera.from_url(bad)


def test_render_is_fast() -> None:
    cam = SyntheticCamera(1, defect_rate=0.5)
    cam.render(0)
    start = time.perf_counter()
    for seq in range(200):
        cam.render(seq)
    per_frame_ms = (time.perf_counter() - start) / 200 * 1000
    assert per_frame_ms < 5.0, per_frame_ms  # about 0.2 ms measured; generous for a busy machine


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_defects_stand_out_to_a_linear_model(seed: int) -> None:
    """Sanity check of learnability: PCA fitted on 200 normal frames (64x64 grey) reconstructs
    defective frames clearly worse. A small autoencoder sees at least as much."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    def prep(image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255

    normal_cam, defect_cam = SyntheticCamera(seed, defect_rate=0.0), SyntheticCamera(seed, defect_rate=1.0)
    pca = PCA(n_components=20, random_state=0).fit(np.stack([prep(normal_cam.render(s)[0]) for s in range(200)]))

    def scores(cam: SyntheticCamera) -> np.ndarray:
        x = np.stack([prep(cam.render(s)[0]) for s in range(1000, 1060)])
        err = ((x - pca.inverse_transform(pca.transform(x))) ** 2).reshape(-1, 64, 64)
        return np.array([cv2.GaussianBlur(e, (5, 5), 0).max() for e in err])

    normal, defective = scores(normal_cam), scores(defect_cam)
    auroc = roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(len(defective))], np.r_[normal, defective])
    assert auroc > 0.95, auroc
