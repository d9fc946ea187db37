"""Runs batches through the model: one interface, a CPU path and an overlapped CUDA path.

CUDA path, per batch slot (``cuda_streams`` slots, so that many batches are in flight):
  pinned uint8 host buffer (allocated once) --non_blocking H2D on the copy stream--> device
  copy-done event --> compute stream waits, converts to float, runs the model (optional AMP)
  --> non_blocking D2H of maps and scores into pinned output buffers --> done event.
``collect`` waits only on that slot's done event, so the host decodes and publishes the next
batches while the GPU works. Batches are padded up to fixed bucket sizes so every shape was seen
at warm-up (what CUDA graphs and torch.compile need).

CPU path: the same ``submit``/``collect`` pair, computed at ``submit``; fp32 only (bf16/fp16 run
many times slower on CPUs without native support), channels_last, inference mode.

Optional, for the fixed bucket shapes (settings LW_CUDA_GRAPHS, LW_COMPILE):
- ``cuda_graphs``: each slot captures one CUDA graph per bucket size at warm-up, on static device
  buffers; a batch is then one H2D copy into the slot's buffer, one graph replay, two D2H copies.
  A slot is reused only after its batch was collected, so its buffers are never overwritten early.
- ``compile``: ``torch.compile`` with the given mode (``reduce-overhead`` uses CUDA graphs of its
  own: our graphs stay off then). Every bucket is compiled at warm-up, not under load.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from worker.decode import InputSpec


@dataclass
class Ticket:
    """A batch in flight: its size, and where its results land."""

    size: int
    slot: int = -1
    done: Any = None  # torch.cuda.Event on CUDA
    maps: np.ndarray | None = None
    scores: np.ndarray | None = None


@dataclass
class _Graph:
    """One captured forward pass: replay() reads `inputs` and writes `maps` and `scores`."""

    graph: Any  # torch.cuda.CUDAGraph
    inputs: torch.Tensor  # uint8 [B, H, W, C] on the device
    maps: torch.Tensor
    scores: torch.Tensor


@dataclass
class _Slot:
    host_in: torch.Tensor
    host_maps: torch.Tensor
    host_scores: torch.Tensor
    stream: Any
    busy: bool = False
    keep: list[torch.Tensor] = field(default_factory=list)
    graphs: dict[int, _Graph] = field(default_factory=dict)  # bucket size -> captured forward


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def bucket_for(size: int, buckets: list[int]) -> int:
    """Smallest bucket holding `size`; sizes above the largest bucket run unpadded."""
    for b in buckets:
        if b >= size:
            return b
    return size


class Engine:
    """Model + device + precision. Not thread-safe: one batching thread drives it."""

    def __init__(
        self,
        module: torch.nn.Module,
        spec: InputSpec,
        device: torch.device,
        amp: str = "off",
        buckets: list[int] | None = None,
        streams: int = 2,
        cuda_graphs: bool = False,
        compile_mode: str = "off",
    ) -> None:
        self.spec = spec
        self.device = device
        self.module = module.to(device).eval()
        self.buckets = sorted(buckets or [1, 2, 4, 8, 16, 32])
        self.cuda = device.type == "cuda"
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp) if self.cuda else None
        if not self.cuda:
            self.module = self.module.to(memory_format=torch.channels_last)
        if compile_mode != "off":
            self.module = torch.compile(self.module, mode=None if compile_mode == "default" else compile_mode)
        self.use_graphs = cuda_graphs and self.cuda and compile_mode != "reduce-overhead"
        self._slots: list[_Slot] = []
        self._next_slot = 0
        self._inflight: deque[Ticket] = deque()
        if self.cuda:
            self._copy_stream = torch.cuda.Stream(device)
            self._slots = [self._make_slot(max(self.buckets)) for _ in range(streams)]

    # -- shared --------------------------------------------------------------------------------
    def _forward(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)  # [B, C, H, W] in [0, 1]
        if not self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is None:  # entering a disabled autocast still costs on every batch
            amap, score = self.module(x)
        else:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                amap, score = self.module(x)
        return amap.float(), score.float()

    def warm_up(self) -> None:
        """Run every bucket once so no shape is first seen under load; capture the CUDA graphs."""
        h, w, c = self.spec.height, self.spec.width, self.spec.channels
        sizes = self.buckets if self.cuda or self.compiled else [1]
        for size in sizes:
            self.collect(self.submit(np.zeros((size, h, w, c), np.uint8)))
        if self.use_graphs:
            for slot in self._slots:
                for size in self.buckets:
                    slot.graphs[size] = self._capture(slot, size)

    @property
    def compiled(self) -> bool:
        return hasattr(self.module, "_orig_mod")

    def _capture(self, slot: _Slot, size: int) -> _Graph:
        h, w, c = self.spec.height, self.spec.width, self.spec.channels
        inputs = torch.zeros((size, h, w, c), dtype=torch.uint8, device=self.device)
        with torch.cuda.stream(slot.stream), torch.inference_mode():
            for _ in range(2):  # warm the kernels and the allocator on this stream before capturing
                self._forward(inputs)
        torch.cuda.current_stream().wait_stream(slot.stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, stream=slot.stream):
            maps, scores = self._forward(inputs)
        return _Graph(graph, inputs, maps, scores)

    @property
    def capacity(self) -> int:
        """Batches that may be in flight before `collect` must be called."""
        return len(self._slots) if self.cuda else 1

    def pending(self) -> int:
        return len(self._inflight)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Synchronous convenience: one batch in, (maps [B, H, W], scores [B]) out."""
        ticket = self.submit(batch)
        return self.collect(ticket)

    def submit(self, batch: np.ndarray) -> Ticket:
        """Start a batch (uint8 [B, H, W, C]); returns a Ticket for `collect`."""
        if self.cuda:
            return self._submit_cuda(batch)
        with torch.inference_mode():
            amap, score = self._forward(torch.from_numpy(batch))
        ticket = Ticket(size=len(batch), maps=amap.numpy(), scores=score.numpy())
        self._inflight.append(ticket)
        return ticket

    def collect(self, ticket: Ticket | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Wait for the oldest batch in flight (or `ticket`, which must be it) and return its results."""
        if ticket is not None and ticket is not self._inflight[0]:
            raise RuntimeError("batches are collected in submission order")
        oldest = self._inflight.popleft()
        if self.cuda:
            self._finish_cuda(oldest)
        assert oldest.maps is not None and oldest.scores is not None
        return oldest.maps, oldest.scores

    # -- CUDA ----------------------------------------------------------------------------------
    def _make_slot(self, rows: int) -> _Slot:
        h, w, c = self.spec.height, self.spec.width, self.spec.channels
        return _Slot(
            host_in=torch.empty((rows, h, w, c), dtype=torch.uint8, pin_memory=True),
            host_maps=torch.empty((rows, h, w), dtype=torch.float32, pin_memory=True),
            host_scores=torch.empty((rows,), dtype=torch.float32, pin_memory=True),
            stream=torch.cuda.Stream(self.device),
        )

    def _submit_cuda(self, batch: np.ndarray) -> Ticket:
        size = len(batch)
        padded = bucket_for(size, self.buckets)
        index = self._next_slot
        slot = self._slots[index]
        if slot.busy:
            raise RuntimeError("all CUDA slots busy: collect before submitting more")
        if padded > slot.host_in.shape[0]:
            self._slots[index] = slot = self._make_slot(padded)
        self._next_slot = (index + 1) % len(self._slots)
        slot.busy = True
        host = slot.host_in[:padded]
        host[:size].copy_(torch.from_numpy(batch))
        if padded > size:
            host[size:].zero_()
        graph = slot.graphs.get(padded)
        with torch.cuda.stream(self._copy_stream):
            if graph is not None:  # into the captured graph's own input buffer
                dev_in = graph.inputs
                dev_in.copy_(host, non_blocking=True)
            else:
                dev_in = host.to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self._copy_stream)
        with torch.cuda.stream(slot.stream), torch.inference_mode():
            slot.stream.wait_event(copied)
            if graph is not None:
                graph.graph.replay()
                amap, score = graph.maps, graph.scores
            else:
                dev_in.record_stream(slot.stream)  # allocated on the copy stream, used on this one
                amap, score = self._forward(dev_in)
            slot.host_maps[:padded].copy_(amap, non_blocking=True)
            slot.host_scores[:padded].copy_(score, non_blocking=True)
            done = torch.cuda.Event()
            done.record(slot.stream)
        slot.keep = [dev_in, amap, score]  # device tensors live until their copies finished
        ticket = Ticket(size=size, slot=index, done=done)
        self._inflight.append(ticket)
        return ticket

    def _finish_cuda(self, ticket: Ticket) -> None:
        slot = self._slots[ticket.slot]
        ticket.done.synchronize()
        ticket.maps = slot.host_maps[: ticket.size].numpy().copy()
        ticket.scores = slot.host_scores[: ticket.size].numpy().copy()
        slot.keep = []
        slot.busy = False
