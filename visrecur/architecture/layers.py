"""The kinds of layer a transition block is made of, as a registry: ``LAYER_KINDS``. A kind says how its
layer changes the map's size, what it costs (parameters, multiply-accumulates) and, on first use of torch,
which module computes it. The paper's kinds are here: ``conv`` (BN-ReLU-Conv, BRC: same size or
downsampling), ``deconv`` (BN-ReLU-Deconv, BRD: upsampling) and ``projection`` (a ResNet stage's 1x1
shortcut).

A new transition kind is one class, registered with ``@register_layer_kind``, and chosen per transition
with ``Transition(..., layer="NAME")``; counts, summaries, the torch modules, training and recording then
take it as they take the built-in ones.
"""
from __future__ import annotations

import math

from visrecur.errors import SpecError

LAYER_KINDS: dict[str, "LayerKind"] = {}


def register_layer_kind(cls):
    """Register a ``LayerKind`` subclass under its ``name`` (a class decorator)."""
    if not cls.name:
        raise SpecError(f"layer kind {cls.__name__} needs a name")
    LAYER_KINDS[cls.name] = cls()
    return cls


def layer_kind(name: str) -> "LayerKind":
    if name not in LAYER_KINDS:
        raise SpecError(f"layer kind {name!r} is not registered; known kinds: {', '.join(LAYER_KINDS)} (register "
                        "a new one with visrecur.architecture.layers.register_layer_kind)")
    return LAYER_KINDS[name]


class LayerKind:
    """One kind of layer of a transition block; ``layer`` arguments are ``ConvLayer`` (channels, kernel,
    stride). ``upsamples``: its stride enlarges the map (a transition into a larger state is made of such
    layers). ``letter``: how block names show it (BR<letter>, e.g. BRC)."""

    name = ""
    upsamples = False
    letter = ""

    def parameters(self, layer) -> int:
        return layer.in_channels * layer.out_channels * layer.kernel * layer.kernel

    def output_size(self, layer, size: tuple[int, int]) -> tuple[int, int]:
        if self.upsamples:
            return (size[0] * layer.stride, size[1] * layer.stride)
        return (math.ceil(size[0] / layer.stride), math.ceil(size[1] / layer.stride))

    def macs(self, layer, size: tuple[int, int]) -> int:
        """Multiply-accumulates for an input of spatial ``size``: every output position of a convolution,
        every input position of a transposed one."""
        positions = size if self.upsamples else self.output_size(layer, size)
        return positions[0] * positions[1] * self.parameters(layer)

    def module(self, layer):
        """The torch module computing ``layer`` (no bias: batch norm follows)."""
        raise NotImplementedError


@register_layer_kind
class Conv(LayerKind):
    name, letter = "conv", "C"

    def module(self, layer):
        from torch import nn

        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, stride=layer.stride,
                         padding=layer.kernel // 2, bias=False)


@register_layer_kind
class Deconv(LayerKind):
    name, letter, upsamples = "deconv", "D", True

    def module(self, layer):
        from torch import nn

        # kernel 3, padding 1, output_padding s-1: output = input * s exactly
        return nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel, stride=layer.stride,
                                  padding=layer.kernel // 2, output_padding=layer.stride - 1, bias=False)


@register_layer_kind
class Projection(Conv):
    """A 1x1 convolution of the pre-activated block input, added to the block's output."""

    name = "projection"
