"""Export a stored model's inference graph: TorchScript (trace) and ONNX when `onnx` is installed.

Each export is checked against the eager model on fresh random inputs (the traced batch size and
one other) with an absolute tolerance; a mismatch raises ModelIntegrityError and nothing is
reported as exported. ONNX is optional (`pip install linewatch[export]`); without the package the
result says so instead of failing. With onnxruntime present the ONNX file is also run and compared.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from linewatch.errors import ModelIntegrityError
from model_store.store import ModelStore


def _max_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b))


def export_ref(store: ModelStore, ref: str, out_dir: Path, batch: int = 2, atol: float = 1e-4) -> dict[str, Any]:
    loaded = store.load(ref, device="cpu", require_calibration=False)
    model = loaded.module.eval()
    h, w = loaded.input_size
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(batch, loaded.channels, h, w, generator=gen)
    checks = [torch.rand(batch, loaded.channels, h, w, generator=gen), torch.rand(batch + 1, loaded.channels, h, w, generator=gen)]
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"model": loaded.name, "version": loaded.version, "input": [batch, loaded.channels, h, w], "atol": atol}

    with torch.inference_mode():
        eager = [model(x) for x in checks]
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        ts_path = out_dir / f"{loaded.name}-{loaded.version}.torchscript"
        traced.save(str(ts_path))
        diff = max(_max_diff(traced(x), e) for x, e in zip(checks, eager))
    if diff > atol:
        raise ModelIntegrityError(f"TorchScript export differs from eager by {diff:.2e} > {atol}")
    result["torchscript"] = {"path": str(ts_path), "max_abs_diff": diff}

    if importlib.util.find_spec("onnx") is None:
        result["onnx"] = {"skipped": "the `onnx` package is not installed (pip install 'linewatch[export]')"}
        return result
    import onnx

    onnx_path = out_dir / f"{loaded.name}-{loaded.version}.onnx"
    torch.onnx.export(
        model, (example,), str(onnx_path), input_names=["image"], output_names=["amap", "score"],
        dynamic_axes={"image": {0: "batch"}, "amap": {0: "batch"}, "score": {0: "batch"}}, opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    info: dict[str, Any] = {"path": str(onnx_path), "checker": "ok"}
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        diff = 0.0
        for x, (a, s) in zip(checks, eager):
            oa, os_ = sess.run(None, {"image": x.numpy()})
            diff = max(diff, float(abs(oa - a.numpy()).max()), float(abs(os_ - s.numpy()).max()))
        if diff > atol:
            raise ModelIntegrityError(f"ONNX export differs from eager by {diff:.2e} > {atol}")
        info["max_abs_diff"] = diff
    else:
        info["runtime_check"] = "skipped: onnxruntime not installed (graph validated with onnx.checker only)"
    result["onnx"] = info
    return result
