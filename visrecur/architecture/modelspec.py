"""ModelSpec: everything needed to build a model: the graph, pre-net, post-net, TSBN and readout time."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from visrecur.errors import SpecError
from visrecur.architecture.graph import BEYOND_TRAINED, PRENETS, ConvLayer, Graph, _choice, _pair, _scale_factor


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
        self.check_readout_time(self.readout_time)
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
        earliest = self.graph.earliest_readout
        if readout_time < earliest:
            last = self.graph.last.name
            raise SpecError(f"readout_time={readout_time} is too early: state {last!r} first holds data "
                            f"at t={earliest - 1}, so the post-net can read it out at t >= {earliest}; "
                            f"use readout_time >= {earliest}")

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
