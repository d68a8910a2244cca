"""Replaying a training step as one CUDA graph: the host launches one graph per batch instead of the
hundreds of small kernels of a model unrolled over time steps, which at the paper's batch of 64 leave
the GPU waiting for the host (Table 1 3-state FRNN, t = 10, batch 64: 1,156 images/s eager against
2,233 with this graph on an H100, benchmarks/results/gpu_check_h100_2026-11-27.json; the issue reported
1,215 against 3,726 for a graph of its own on an H200).

``GraphedStep(step)`` wraps ``step(images, labels)``: forward, backward, optimiser step and sums kept on
the device, with no host reads. The first ``warmup`` calls run eagerly (cuDNN chooses its algorithms,
the optimiser makes its momentum buffers: a graph must not allocate them); the next captures the step
on copies of that batch and replays it; later batches of the same shape are copied into those copies
and replayed. A batch of another shape than the first (the smaller last one) runs eagerly. ``key`` names what the
capture bakes in besides the tensors (the learning rate): when it changes, the step is captured anew.

The capture and replay go through ``backend``; ``EagerBackend`` stands in for CUDA on a CPU (tests):
its "replay" runs the step's Python again on the same static tensors, so a step that read anything
but those tensors would differ from the eager run there as it would on a GPU.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch


class CudaBackend:
    def warm(self, fn) -> None:
        """Run ``fn`` eagerly on a side stream, as CUDA graph warm-up must be."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
        torch.cuda.current_stream().wait_stream(stream)

    def capture(self, fn):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph


class EagerBackend:
    """CPU stand-in: warm-up runs ``fn``; a "graph" replays by running ``fn`` again."""

    def warm(self, fn) -> None:
        fn()

    def capture(self, fn):
        return SimpleNamespace(replay=fn)


class GraphedStep:
    def __init__(self, step, warmup: int = 3, backend=None):
        self.step, self.warmup = step, warmup
        self.backend = backend or CudaBackend()
        self.graph, self.shape, self.key, self.static = None, None, None, None
        self.eager_runs, self.captures, self.replays = 0, 0, 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, key=None) -> None:
        shape = (tuple(images.shape), images.dtype, images.stride(), tuple(labels.shape), labels.dtype)
        if self.shape is None:
            self.shape = shape  # the first batch's shape is the one captured (an epoch's last may be smaller)
        if shape != self.shape:
            self.step(images, labels)
        elif self.graph is not None and key == self.key:
            self.static[0].copy_(images)
            self.static[1].copy_(labels)
            self.graph.replay()
            self.replays += 1
        elif self.eager_runs < self.warmup:
            self.backend.warm(lambda: self.step(images, labels))
            self.eager_runs += 1
        else:
            self.graph = None  # frees the previous capture's memory before the next is made
            self.static = (images.clone(), labels.clone())
            self.key = key
            self.graph = self.backend.capture(lambda: self.step(*self.static))
            self.captures += 1
            self.graph.replay()  # capturing records the step without running it: run it for this batch
            self.replays += 1
