"""BL-net (Spoerer, Kietzmann, Mehrer, Charest & Kriegeskorte 2020): seven convolutional layers with
bottom-up and lateral (same-layer, previous-step) connections, unrolled for 8 steps, a batch norm per
layer and step, and a readout (global average pool + linear, shared over time) at every step, whose
entropy gives reaction times.

Layer l at step t: ``h_l(t) = ReLU(BN_{l,t}(W_l * in_l(t) + L_l * h_l(t-1)))`` with ``in_1(t)`` the
image and ``in_l(t)`` the 2x2 max-pooled ``h_{l-1}(t)``; no lateral term at t = 0. Widths and kernel
sizes follow the paper's description (96 .. 2048 features; 128 px input); both are arguments.

``BLNet.step(images, state, t)`` is one step, the explicit step function of the protocol
(``visrecur.timed.StepModel``); ``forward`` loops over it, so hooks see the same calls.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (96, 128, 192, 256, 512, 1024, 2048)
KERNELS = (7, 7, 5, 5, 3, 3, 1)
STEPS = 8


class BLLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, steps: int):
        super().__init__()
        self.bottom_up = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.lateral = nn.Conv2d(out_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm2d(out_channels) for _ in range(steps))
        self.output = nn.Identity()

    def forward(self, inp, previous, t: int):
        drive = self.bottom_up(inp)
        if previous is not None:
            drive = drive + self.lateral(previous)
        return self.output(F.relu(self.norms[t](drive)))


class BLNet(nn.Module):
    def __init__(self, num_classes: int = 565, widths=WIDTHS, kernels=KERNELS, steps: int = STEPS):
        super().__init__()
        self.steps = steps
        channels = (3,) + tuple(widths)
        self.layers = nn.ModuleList(BLLayer(channels[k], channels[k + 1], kernels[k], steps)
                                    for k in range(len(widths)))
        self.readout = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes))

    def step(self, images: torch.Tensor, state: dict, t: int) -> dict:
        """Step ``t``: every layer's new output (``layer1`` .. ``layer7``) and the readout's logits;
        ``state`` holds each layer's output at ``t - 1`` (None at t = 0)."""
        out, below = {}, images
        for k, layer in enumerate(self.layers):
            name = f"layer{k + 1}"
            inp = below if k == 0 else F.max_pool2d(below, 2)
            below = out[name] = layer(inp, state.get(name), t)
        out["logits"] = self.readout(below)
        return out

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The logits at every step, in order."""
        state, logits = {}, []
        for t in range(self.steps):
            out = self.step(images, state, t)
            logits.append(out.pop("logits"))
            state.update(out)
        return logits


def area_names(n_layers: int = len(WIDTHS)) -> tuple[str, ...]:
    return tuple(f"layer{k + 1}" for k in range(n_layers))


def frame_model(adapted):
    """The reference ``blnet`` (``visrecur.timed.reference.build("blnet")``) as a ``StepModel`` over its
    own ``step``, which takes a frame per step (a stimulus, then a mask): the same weights and values."""
    from visrecur.timed.protocol import StepModel

    net = adapted.module
    return StepModel(net.step, areas=adapted.areas, steps=adapted.steps, readout_steps=adapted.readout_steps,
                     modules=net, frames=True, name=f"{adapted.name}_frames", preprocess=adapted.preprocess,
                     time_mapping=adapted.time_mapping, classes=adapted.classes, trained=adapted.trained,
                     description=adapted.description)
