"""FRNN: a multi-state (fully) recurrent network built from a ModelSpec and unrolled in time."""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from typing import Callable, Sequence

import torch
from torch import nn

from visrecur.nn.blocks import PostNet, PreNet, TransitionBlock, he_init
from visrecur.nn.statistics import TimeSpecificStatistics
from visrecur.nn.tsbn import TimeSpecificBatchNorm
from visrecur.errors import InputError, TimeStepError
from visrecur.architecture.modelspec import ModelSpec

Observer = Callable[[str, int, torch.Tensor], None]


class FRNN(TimeSpecificStatistics, nn.Module):
    """A model of the paper's family: pre-net -> recurrent graph unrolled in time -> post-net.

    ``model(images)`` returns the logits at the spec's readout time; ``readout_time=T`` at ``T``;
    a list of readout times returns ``{T: logits}`` from a single pass.

    ``images`` is a batch ``(B, C, H, W)`` shown at t = 0 only (the homogeneous system), or a sequence
    ``(B, S, C, H, W)`` / list of ``(B, C, H, W)`` tensors or ``None``: frame ``t`` enters the first
    state at step ``t`` (the inhomogeneous system of Section 2.2, e.g. a stimulus then a mask). Frame 0
    is h(0); frame t >= 1 is added to the first state's update at step t, so it is Eq. 2's x_{t-1}
    (docs/conventions.md).

    Every state tensor at every step can be seen, without editing the model, by an observer
    ``fn(state_name, t, tensor)`` passed as ``observer=`` or installed with ``model.observe(fn)``.

    Which time-specific batch-norm statistics serve which step is the model's to say
    (``TimeSpecificStatistics``: ``borrowed_statistics``, ``recalibrate``, ``extend_time``, ...).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        graph = spec.graph
        self.prenet = PreNet(spec)
        self.blocks = nn.ModuleDict()
        for key, tr in graph.weight_groups(spec.weight_steps).items():
            self.blocks[key] = TransitionBlock(graph.layers(tr), spec.bn_affine, graph.resample_rest(tr))
        self.norms = nn.ModuleDict()
        ever_run = {tr.key for tr, _ in graph.uses(spec.weight_steps)}
        for tr in graph.transitions:
            if tr.key in ever_run:
                # transitions run at steps 1..time_steps-1: a readout at T reads the last state at T - 1
                convs = graph.convolutions(tr)
                self.norms[tr.key] = nn.ModuleList(
                    TimeSpecificBatchNorm(layer.in_channels, spec.time_steps - 1, position=k,
                                          time_specific=spec.time_specific_bn, beyond=spec.beyond_trained)
                    for k, layer in enumerate(convs))
        self.postnet = PostNet(spec)
        he_init(self)
        self._observers: list[Observer] = []
        self._state_names = [s.name for s in graph.states]
        self._identity = [s.identity for s in graph.states]
        self._mean = graph.aggregation == "mean"
        self._divisor = self._input_divisor()
        self._schedules: dict[int, list] = {}
        # what a checkpoint says of the weights (visrecur.load sets them): how images become input, and the
        # TimeMapping the model states for itself (None: none)
        self.preprocess = None
        self.time_mapping = None

    # --- public API ---------------------------------------------------------------------------
    def allow_steps(self, max_steps: int) -> None:
        """Raise this model's maximum number of steps (``ModelSpec.max_steps``, checked before any work)."""
        if max_steps > self.spec.max_steps:
            self.spec = dataclasses.replace(self.spec, max_steps=max_steps)

    @property
    def state_names(self) -> list[str]:
        return list(self._state_names)

    def summary(self, readout_times: Sequence[int] | None = None) -> str:
        return self.spec.summary(readout_times)

    @contextmanager
    def observe(self, fn: Observer):
        """Call ``fn(state_name, t, tensor)`` for every populated state at every step while inside."""
        self._observers.append(fn)
        try:
            yield self
        finally:
            self._observers.remove(fn)

    def forward(self, images, readout_time: int | Sequence[int] | None = None, *,
                observer: Observer | None = None, until: int | None = None):
        """Logits at ``readout_time`` (an int) or ``{T: logits}`` (a list). ``until``: also run the
        states through this step (for observers), even past the last readout time."""
        single = readout_time is None or not isinstance(readout_time, (list, tuple, range))
        times = [self.spec.readout_time if readout_time is None else readout_time] if single \
            else sorted(set(readout_time))
        if not times:
            raise TimeStepError("readout_time is an empty list; give at least one readout time")
        for t in times:
            self.spec.check_readout_time(t)
        steps = max(max(times), (until or 0) + 1)
        self.spec.check_steps(steps, f"running until step {steps - 1}")
        frames = self._frames(images)
        observers = self._observers + ([observer] if observer is not None else [])
        wanted, last = set(times), len(self._state_names) - 1
        states: list[torch.Tensor | None] = [None] * len(self._state_names)
        logits = {}
        for t in range(steps):
            if t == 0:
                states[0] = self.prenet(frames[0])
            else:
                states = self._step(states, t, frames[t] if t < len(frames) else None)
            for observe in observers:
                for name, value in zip(self._state_names, states):
                    if value is not None:
                        observe(name, t, value)
            if t + 1 in wanted:
                logits[t + 1] = self.postnet(states[last], t + 1)
        return logits[times[0]] if single else logits

    # --- internals ----------------------------------------------------------------------------
    def _step(self, states, t, frame):
        new = list(states)
        for target, incoming in self._schedule(t):
            total = None
            for key, norms_key, source in incoming:
                out = self.blocks[key](states[source], self.norms[norms_key], t)
                total = out if total is None else total + out
            if self._mean and len(incoming) > 1:
                total = total * (1.0 / len(incoming))
            if states[target] is not None and self._identity[target]:
                total = total + states[target]
            new[target] = total
        if frame is not None:
            new[0] = new[0] + self.prenet(frame)
        return new

    def _schedule(self, t: int):
        if t not in self._schedules:
            self._schedules[t] = _schedule(self.spec.graph, t, set(self.blocks.keys()))
        return self._schedules[t]

    def _frames(self, images) -> list:
        if isinstance(images, (list, tuple)):
            frames = list(images)
            if not frames or frames[0] is None:
                raise InputError("an input sequence must start with a frame at t = 0 (not None)")
        elif isinstance(images, torch.Tensor) and images.dim() == 5:
            frames = list(images.unbind(1))
        else:
            frames = [images]
        for k, frame in enumerate(frames):
            if frame is not None:
                self._check_frame(frame, k)
        return frames

    def _check_frame(self, frame, k):
        spec = self.spec
        expected = f"(batch, {spec.in_channels}, height, width)"
        if not isinstance(frame, torch.Tensor):
            raise InputError(f"input frame {k} is a {type(frame).__name__}; pass a torch.Tensor {expected}")
        if frame.dim() != 4 or frame.shape[1] != spec.in_channels:
            raise InputError(f"input frame {k} has shape {tuple(frame.shape)}; the model expects {expected}"
                             f" or a sequence (batch, steps, {spec.in_channels}, height, width)")
        if not frame.is_floating_point():
            raise InputError(f"input frame {k} has dtype {frame.dtype}; convert images to float and "
                             "normalise them as in training (visrecur.Preprocess)")
        dtype = next(self.prenet.parameters()).dtype
        if frame.dtype != dtype and not torch.is_autocast_enabled(frame.device.type):
            raise InputError(f"input frame {k} has dtype {frame.dtype} but the model's weights are "
                             f"{dtype}; convert with images.to({dtype}) or the model with model.to({frame.dtype})")
        h, w = frame.shape[-2:]
        if h % self._divisor or w % self._divisor:
            raise InputError(f"input size {h}x{w} cannot be resampled exactly to every state "
                             f"(sizes must be multiples of {self._divisor}); resize or crop the images, "
                             f"e.g. to {self._divisor * math.ceil(h / self._divisor)}x"
                             f"{self._divisor * math.ceil(w / self._divisor)}")

    def _input_divisor(self) -> int:
        first = self.spec.graph.first.size[0]
        factors = [self.spec.prenet_factor * max(1, first // s.size[0]) for s in self.spec.graph.states]
        return math.lcm(*factors)


def _schedule(graph, t, block_keys):
    """Per step: [(target index, [(weight key, norms key, source index), ...])]; depends on the graph only."""
    by_target: dict[int, list] = {}
    for tr in graph.running(t):
        key = graph.weight_key(tr, t)
        if key not in block_keys:
            raise TimeStepError(f"transition {tr.key} has no weights for step t={t}: this time-variant "
                                "model was built for fewer steps; rebuild it with a larger time_steps")
        by_target.setdefault(graph.state_index(tr.target), []).append(
            (key, tr.key, graph.state_index(tr.source)))
    return [(target, tuple(incoming)) for target, incoming in sorted(by_target.items())]
