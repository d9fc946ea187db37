"""The engine's CPU path here; its CUDA path (pinned buffers, streams, AMP, buckets) where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_store.registry import create_model
from worker.decode import InputSpec
from worker.engine import Engine, bucket_for

SPEC = InputSpec(64, 64, 3)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("autoencoder").eval()


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def _reference(model: torch.nn.Module, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        amap, score = model.cpu()(x)
    return amap.numpy(), score.numpy()


@pytest.mark.parametrize(("size", "expected"), [(1, 1), (3, 4), (8, 8), (9, 16), (40, 40)])
def test_bucket_for(size: int, expected: int) -> None:
    assert bucket_for(size, [1, 2, 4, 8, 16, 32]) == expected


def test_cpu_engine_matches_the_eager_model() -> None:
    model = _model()
    frames = _frames(5)
    ref_map, ref_score = _reference(model, frames)
    engine = Engine(_model(), SPEC, torch.device("cpu"))
    engine.warm_up()
    maps, scores = engine.infer(frames)
    assert maps.shape == (5, 64, 64) and scores.shape == (5,)
    np.testing.assert_allclose(maps, ref_map, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, ref_score, rtol=1e-4, atol=1e-5)


def test_results_are_collected_in_submission_order() -> None:
    engine = Engine(_model(), SPEC, torch.device("cpu"))
    engine.submit(_frames(2, seed=1))
    second = engine.submit(_frames(3, seed=2))
    with pytest.raises(RuntimeError):
        engine.collect(second)  # the first batch is still waiting


def test_compiled_cpu_engine_matches_the_eager_model() -> None:
    """torch.compile on the fixed shapes: the tiny host-benchmark model keeps the compile short."""
    torch.manual_seed(0)
    model = create_model("hostcheck").eval()
    frames = _frames(3)
    ref_map, ref_score = _reference(model, frames)
    engine = Engine(model, SPEC, torch.device("cpu"), buckets=[1, 4], compile_mode="default")
    engine.warm_up()
    assert engine.compiled
    maps, scores = engine.infer(frames)
    np.testing.assert_allclose(maps, ref_map, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, ref_score, rtol=1e-4, atol=1e-5)


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_cuda_engine_overlapped_batches_match_cpu(amp: str, graphs: bool) -> None:
    model = _model()
    batches = [_frames(n, seed=n) for n in (3, 8, 5, 1, 16, 7)]  # odd sizes exercise bucket padding
    engine = Engine(_model(), SPEC, torch.device("cuda"), amp=amp, buckets=[1, 2, 4, 8, 16], streams=2, cuda_graphs=graphs)
    engine.warm_up()
    assert all(len(slot.graphs) == (5 if graphs else 0) for slot in engine._slots)
    assert all(slot.host_in.is_pinned() for slot in engine._slots)
    results = []
    for batch in batches:  # keep two batches in flight, as the batch thread does
        if engine.pending() >= engine.capacity:
            results.append(engine.collect())
        engine.submit(batch)
    while engine.pending():
        results.append(engine.collect())
    tol = {"off": 1e-3, "bf16": 5e-2, "fp16": 2e-2}[amp]
    for batch, (maps, scores) in zip(batches, results):
        ref_map, ref_score = _reference(model, batch)
        assert maps.shape == ref_map.shape
        np.testing.assert_allclose(scores, ref_score, rtol=tol, atol=tol)
        np.testing.assert_allclose(maps, ref_map, rtol=tol, atol=tol)
