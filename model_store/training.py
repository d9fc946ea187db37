"""The generic training loop: any registered AnomalyModel, a tensor of normal images, a budget.

Bounded by steps, wall-clock seconds and/or CPU seconds, whichever ends first; the lr schedule
follows the same progress measure (see AnomalyModel.lr_factor).

Why a CPU budget: on a shared machine a wall-clock budget buys a different number of steps
depending on everyone else's load (the baseline got 610 steps from 10 wall-clock minutes under a
load average of 4-8, and 2190 from 10 CPU minutes). The
CPU time of the training process (`time.process_time()`, all its threads) grows only while this
process computes, so with one torch thread a given CPU budget buys nearly the same steps whatever
else runs. The results table in docs/models.md uses `--cpu-budget`; `--time-budget` keeps its
wall-clock meaning.

`TrainConfig.photometric` > 0 puts each normal batch under random lighting first
(model_store/lighting.py `augment`: gain, contrast, gamma, white balance, a side lamp), so the
model learns that a lamp change is normal; the strength is recorded in the manifest's
training settings.

Checkpoints are one safetensors file holding the model's state, every optimizer's state tensors
and the torch RNG state; the small non-tensor parts (step, elapsed wall and CPU time, param groups)
are JSON in the safetensors metadata: no pickle anywhere. Resuming continues the step count and
both budgets where the checkpoint left them.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from model_store.lighting import augment
from model_store.models.base import AnomalyModel, TrainConfig
from model_store.registry import create_model

log = structlog.get_logger(__name__)


@dataclass
class TrainResult:
    module: AnomalyModel
    steps: int
    seconds: float  # wall clock
    epochs: float
    losses: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of the training process spent in this run (incl. resumed part)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_input(batch_u8: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [B, 3, H, W] RGB -> float [B, C, H, W] in [0, 1] (luma for 1-channel models)."""
    x = batch_u8.float().mul_(1 / 255)
    if channels == 1:
        x = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return x


def save_checkpoint(path: Path, model: AnomalyModel, opts: list[torch.optim.Optimizer], meta: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    groups = []
    for i, opt in enumerate(opts):
        sd = opt.state_dict()
        for pid, st in sd["state"].items():
            for key, val in st.items():
                t = val if torch.is_tensor(val) else torch.tensor(val)
                tensors[f"opt{i}.{pid}.{key}"] = t.detach().cpu().contiguous()
        groups.append(sd["param_groups"])
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**meta, "param_groups": groups}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    tmp.replace(path)  # a crash mid-write keeps the previous checkpoint


def load_checkpoint(path: Path, model: AnomalyModel, opts: list[torch.optim.Optimizer], device: str) -> dict[str, Any]:
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, opt in enumerate(opts):
        state: dict[int, dict[str, torch.Tensor]] = {}
        prefix = f"opt{i}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, key = k[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[key] = v.to(device) if v.ndim else v
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][i]})
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def train_model(
    arch: str,
    kwargs: dict[str, Any],
    images: torch.Tensor,  # uint8 [N, 3, H, W] RGB normal images
    cfg: TrainConfig,
    device: str = "cpu",
    checkpoint: Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 120.0,
    show_progress: bool = True,
) -> TrainResult:
    if cfg.max_steps is None and cfg.time_budget_s is None and cfg.cpu_budget_s is None:
        raise ValueError("give max_steps, time_budget_s and/or cpu_budget_s")
    seed_everything(cfg.seed)
    model = create_model(arch, **kwargs).to(device).train()
    n = len(images)
    images = images.to(device)
    pool = images[torch.randperm(n)[: min(n, 512)]]  # texture pool / statistics sample
    model.on_train_start(to_input(pool, model.in_channels), cfg)
    opts = model.configure_optimizers(cfg)
    base_lrs = [[g["lr"] for g in o.param_groups] for o in opts]

    step, elapsed0, cpu0 = 0, 0.0, 0.0
    if resume and checkpoint is not None and checkpoint.exists():
        meta = load_checkpoint(checkpoint, model, opts, device)
        step, elapsed0 = int(meta["step"]), float(meta["elapsed"])
        cpu0 = float(meta.get("cpu_elapsed", meta["elapsed"]))  # older checkpoints: wall as the best guess
        log.info("training_resumed", checkpoint=str(checkpoint), step=step, elapsed_s=round(elapsed0, 1))

    bs = min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(cfg.seed * 1000003 + step)  # resumed runs draw fresh batches
    light = torch.Generator().manual_seed(cfg.seed * 1000033 + step + 7)  # lighting draws: their own stream
    t0, c0 = time.monotonic(), time.process_time()
    last_ckpt = t0
    losses: dict[str, float] = {}
    ema: dict[str, float] = {}

    def wall() -> float:
        return elapsed0 + time.monotonic() - t0

    def cpu() -> float:
        return cpu0 + time.process_time() - c0

    def progress() -> float:
        p = 0.0
        if cfg.max_steps:
            p = max(p, step / cfg.max_steps)
        if cfg.time_budget_s:
            p = max(p, wall() / cfg.time_budget_s)
        if cfg.cpu_budget_s:
            p = max(p, cpu() / cfg.cpu_budget_s)
        return p

    def meta() -> dict[str, Any]:
        return {"step": step, "elapsed": wall(), "cpu_elapsed": cpu(), "arch": arch, "kwargs": kwargs}

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not show_progress, unit="step", dynamic_ncols=True)
    try:
        while progress() < 1.0:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n - bs + 1, bs):  # drop the ragged last batch (BatchNorm dislikes tiny ones)
                p = progress()
                if p >= 1.0:
                    break
                for opt, lrs in zip(opts, base_lrs):
                    for g, lr in zip(opt.param_groups, lrs):
                        g["lr"] = lr * model.lr_factor(p)
                x = augment(to_input(images[perm[i : i + bs]], model.in_channels), cfg.photometric, light)
                losses = model.training_step(x, opts, step)
                step += 1
                ema = {k: v if k not in ema else 0.95 * ema[k] + 0.05 * v for k, v in losses.items()}
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in ema.items()}, refresh=False)
                if checkpoint is not None and time.monotonic() - last_ckpt > checkpoint_every_s:
                    save_checkpoint(checkpoint, model, opts, meta())
                    last_ckpt = time.monotonic()
    finally:
        bar.close()
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, opts, meta())
    seconds, cpu_seconds = wall(), cpu()
    log.info("training_done", arch=arch, steps=step, seconds=round(seconds, 1), cpu_seconds=round(cpu_seconds, 1),
             **{k: round(v, 5) for k, v in ema.items()})
    return TrainResult(model.eval(), step, seconds, step * bs / n, ema, cpu_seconds)
