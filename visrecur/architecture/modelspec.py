"""ModelSpec: everything needed to build a model: the graph, pre-net, post-net, TSBN and readout time."""
from __future__ import annotations

import contextvars
import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from visrecur.errors import SpecError
from visrecur.architecture.graph import BEYOND_TRAINED, PRENETS, ConvLayer, Graph, _choice, _pair, _scale_factor

# The most model steps a model is built, run or recorded for unless raised (``max_steps=``, ``--max-steps``).
# 1000 steps are 20-50 s of viewing at the 20-50 ms a step is taken to last: 20 times the longest trial of
# the neural data visrecur compares with (about 1 s) and 75 times the longest readout time a shipped model
# was trained for (13). Past it a typo (--times 100000) is likelier than an experiment, and the cost grows
# with every step: statistics (and time-variant weights) per step, and a recording's activity per step.
MAX_STEPS = 1000
FLOAT_BYTES = 4
_ALLOWED_STEPS: contextvars.ContextVar[int] = contextvars.ContextVar("max_steps", default=MAX_STEPS)


@contextmanager
def allowing_steps(max_steps: int | None):
    """Specs made inside (e.g. by a zoo builder) take ``max_steps`` as their maximum unless they give one."""
    if max_steps is None:
        yield
        return
    token = _ALLOWED_STEPS.set(max_steps)
    try:
        yield
    finally:
        _ALLOWED_STEPS.reset(token)


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build a model: graph, pre-net, post-net, TSBN and readout time.

    ``time_steps`` is the largest readout time the model is built for: transitions run (and keep TSBN
    statistics and, unshared, weights) for steps up to time_steps - 1, the post-net reads out up to
    time_steps. ``beyond_trained`` says what TSBN does in evaluation at a step without trained
    statistics: "last" uses the last trained step's, "error" refuses (``FRNN.recalibrate``
    estimates them; docs/conventions.md).
    """

    graph: Graph
    readout_time: int
    time_steps: int | None = None
    name: str = "custom"
    num_classes: int = 10
    in_channels: int = 3
    input_size: tuple[int, int] = (32, 32)
    prenet: str = "conv"
    bn_affine: bool = False
    time_specific_bn: bool = True
    beyond_trained: str = "last"
    max_steps: int | None = None  # None: MAX_STEPS, or what ``allowing_steps`` allows

    def __post_init__(self):
        # frozen: a spec is shared by the models built from it; change one with dataclasses.replace
        object.__setattr__(self, "input_size", _pair(self.input_size, "input_size"))
        _choice(self.prenet, PRENETS, "prenet")
        _choice(self.beyond_trained, BEYOND_TRAINED, "beyond_trained")
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SpecError(f"{name}={value!r} must be a whole number of at least 1")
        if self.time_steps is None:
            object.__setattr__(self, "time_steps", self.readout_time)
        if self.max_steps is None:
            object.__setattr__(self, "max_steps", _ALLOWED_STEPS.get())
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1:
            raise SpecError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        self.check_readout_time(self.readout_time)
        if isinstance(self.time_steps, (int, np.integer)) and not isinstance(self.time_steps, bool):
            self.check_steps(self.time_steps, f"time_steps={self.time_steps}")
        if self.time_steps < self.readout_time:
            raise SpecError(f"time_steps={self.time_steps} is smaller than readout_time="
                            f"{self.readout_time}; set time_steps >= readout_time")
        factor = _scale_factor(self.input_size, self.graph.first.size,
                               f"pre-net (input {self.input_size} -> state {self.graph.first.name!r})")
        allowed = (4,) if self.prenet == "stem" else (1, 2)
        if factor not in allowed:
            raise SpecError(f"pre-net {self.prenet!r} maps the input {self.input_size} to "
                            f"{self.graph.first.size} (factor {factor}); it supports factors {allowed}: "
                            "change input_size or the first state's size")

    def check_readout_time(self, readout_time: int) -> None:
        if isinstance(readout_time, bool) or not isinstance(readout_time, (int, np.integer)):
            raise SpecError(f"readout_time must be an integer step, got {readout_time!r}")
        self.check_steps(readout_time, f"readout_time={readout_time}")
        earliest = self.graph.earliest_readout
        if readout_time < earliest:
            last = self.graph.last.name
            raise SpecError(f"readout_time={readout_time} is too early: state {last!r} first holds data "
                            f"at t={earliest - 1}, so the post-net can read it out at t >= {earliest}; "
                            f"use readout_time >= {earliest}")

    def check_steps(self, steps: int, what: str) -> None:
        """Refuse, before any work, ``what`` that needs more than ``max_steps`` model steps, with what it
        would cost (``memory_bytes``, ``activity_bytes``)."""
        if steps <= self.max_steps:
            return
        raise SpecError(f"{what} needs {steps} model steps, more than the maximum of {self.max_steps} (MAX_STEPS, "
                        f"docs/data_integrity.md): the model's weights and statistics for them would take about "
                        f"{format_bytes(self.memory_bytes(steps))}, and each image's states "
                        f"{format_bytes(self.activity_bytes())} per recorded step; if it is meant, raise the "
                        f"maximum (max_steps={steps}, --max-steps {steps})")

    def memory_bytes(self, time_steps: int | None = None) -> int:
        """About how much memory the built model's weights and time-specific statistics take for
        ``time_steps`` (default: its own), from the graph alone (float32; two statistics per channel and
        step for every batch norm; time-variant weights once per step)."""
        steps = self.time_steps if time_steps is None else time_steps
        # counted exactly up to a step past every transition's first run, then step by step alike
        known = min(steps, self.graph._horizon() + 2)
        if steps <= known:
            return self._memory_counted(steps)
        return self._memory_counted(known) + (steps - known) * (self._memory_counted(known + 1)
                                                                - self._memory_counted(known))

    def _memory_counted(self, steps: int) -> int:
        graph = self.graph
        until = max(steps - 1, graph._horizon()) if graph.weight_sharing == "shared" else steps - 1
        weights = sum(graph.block_parameters(tr, self.bn_affine) for tr in graph.weight_groups(until).values())
        ever_run = {tr.key for tr, _ in graph.uses(until)}
        channels = sum(layer.in_channels for tr in graph.transitions if tr.key in ever_run
                       for layer in graph.convolutions(tr))
        return FLOAT_BYTES * (self.prenet_parameters() + self.postnet_parameters() + weights
                              + 2 * channels * max(steps - 1, 0))

    def activity_bytes(self, states: Sequence[str] | None = None) -> int:
        """One image's activity at one step (float32) in ``states`` (default: every state), at the
        reference input size."""
        names = set(states) if states is not None else None
        return FLOAT_BYTES * sum(s.channels * s.size[0] * s.size[1] for s in self.graph.states
                                 if names is None or s.name in names)

    @property
    def prenet_factor(self) -> int:
        return self.input_size[0] // self.graph.first.size[0]

    def prenet_layers(self) -> list[ConvLayer]:
        c, first = self.graph.first.channels, self.in_channels
        if self.prenet == "conv":
            return [ConvLayer("conv", first, c, 3, self.prenet_factor)]
        if self.prenet == "conv3":
            return [ConvLayer("conv", first, c, 3, self.prenet_factor),
                    ConvLayer("conv", c, c, 3, 1), ConvLayer("conv", c, c, 3, 1)]
        return [ConvLayer("conv", first, c, 7, 2)]  # stem; its max-pool halves once more

    def prenet_parameters(self) -> int:
        c = self.graph.first.channels
        bn = {"conv": 0, "conv3": 2 * 2 * c, "stem": 2 * c}[self.prenet]
        return sum(layer.parameters for layer in self.prenet_layers()) + bn

    def postnet_parameters(self) -> int:
        c = self.graph.last.channels
        return 2 * c + c * self.num_classes + self.num_classes

    @property
    def weight_steps(self) -> int:
        """Transitions that run at steps 1..weight_steps get weights when the model is built: up to
        time_steps - 1 for time-variant weights; for shared weights also every transition that first
        runs later, so that a time-invariant model can be read out at any time."""
        if self.graph.weight_sharing == "shared":
            return max(self.time_steps - 1, self.graph._horizon())
        return self.time_steps - 1

    def total_parameters(self) -> int:
        """Every parameter the built model holds (all weight copies, see ``weight_steps``)."""
        groups = self.graph.weight_groups(self.weight_steps)
        recurrent = sum(self.graph.block_parameters(tr, self.bn_affine) for tr in groups.values())
        return self.prenet_parameters() + recurrent + self.postnet_parameters()

    def effective_parameters(self, readout_time: int | None = None) -> int:
        readout_time = self.readout_time if readout_time is None else readout_time
        self.check_readout_time(readout_time)
        return (self.prenet_parameters() + self.postnet_parameters()
                + self.graph.effective_parameters(readout_time, self.bn_affine))

    def depth(self, readout_time: int | None = None) -> int:
        """Weighted layers and pooling layers on the longest path (the paper's Table 1 'Depth'):
        pre-net convolutions + transition convolutions + global pooling + linear."""
        readout_time = self.readout_time if readout_time is None else readout_time
        self.check_readout_time(readout_time)
        prenet = len(self.prenet_layers()) + (1 if self.prenet == "stem" else 0)
        return prenet + self.graph.effective_depth(readout_time) + 2

    def macs(self, readout_time: int | None = None, input_size: tuple[int, int] | None = None) -> int:
        """Multiply-accumulates of one forward pass up to ``readout_time`` (convolutions and linear)."""
        readout_time = self.readout_time if readout_time is None else readout_time
        size = _pair(self.input_size if input_size is None else input_size, "input_size")
        scale = size[0] / self.input_size[0]
        total, current = 0, size
        for layer in self.prenet_layers():
            total += layer.macs(current)
            current = layer.output_size(current)
        return total + self.graph.macs(readout_time, scale) + self.graph.last.channels * self.num_classes

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if data["max_steps"] == MAX_STEPS:  # specs written before the maximum existed stay as they were
            del data["max_steps"]
        data["graph"] = self.graph.to_dict()
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        data = dict(data)
        data.pop("extra", None)  # an unused field of visrecur 0.1's specs
        data["graph"] = Graph.from_dict(data["graph"])
        data["input_size"] = tuple(data["input_size"])
        return cls(**data)

    def summary(self, readout_times: Sequence[int] | None = None) -> str:
        """A readable description: states, transitions, the transition matrix and counts per readout time."""
        from visrecur.architecture.summary import format_summary

        return format_summary(self, readout_times)
