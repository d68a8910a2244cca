"""Torch building blocks: time-specific batch norm, transition blocks, pre-net and post-net."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import TimeStepError
from .graph import ConvLayer, ModelSpec


class TimeSpecificBatchNorm(nn.Module):
    """Batch normalisation with running statistics kept separately for every time step (TSBN).

    ``stats[t]`` holds the running mean and variance of step ``t`` (t = 0..num_steps). With
    ``time_specific=False`` one set of statistics serves every step (the paper's ablation, which it
    reports hurts). The learnable affine, when ``affine=True``, is shared across time; a caller that
    owns per-group affine parameters (tied transition weights) passes them to ``forward`` instead.

    Steps past ``num_steps``: ``beyond="last"`` normalises with the last step's statistics (and
    refuses to update them in training); ``beyond="error"`` raises. ``extend`` adds steps.
    """

    def __init__(self, num_features: int, num_steps: int, *, affine: bool = False,
                 time_specific: bool = True, beyond: str = "last", momentum: float | None = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        self.num_features, self.time_specific, self.beyond = num_features, time_specific, beyond
        self.momentum, self.eps = momentum, eps
        slots = num_steps + 1 if time_specific else 1
        self.stats = nn.ModuleList(nn.BatchNorm2d(num_features, affine=False) for _ in range(slots))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    @property
    def num_steps(self) -> int:
        return len(self.stats) - 1

    def slot(self, t: int) -> int:
        if not self.time_specific:
            return 0
        if t <= self.num_steps:
            return t
        if self.beyond == "error" or self.training:
            raise TimeStepError(
                f"step t={t} is past the {self.num_steps} steps this model's time-specific batch norm "
                "was built for; evaluate with beyond_trained='last' to reuse the last step's statistics, "
                "or call visrecur.blocks.extend_time(model, steps) and recalibrate_batchnorm(...)")
        return self.num_steps

    def forward(self, x: torch.Tensor, t: int, weight=None, bias=None) -> torch.Tensor:
        stats = self.stats[self.slot(t)]
        if weight is None:
            weight, bias = self.weight, self.bias
        momentum = self.momentum
        if self.training:
            stats.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative average, for recalibration
                momentum = 1.0 / float(stats.num_batches_tracked)
        return F.batch_norm(x, stats.running_mean, stats.running_var, weight, bias,
                            self.training, momentum or 0.0, self.eps)

    def extend(self, num_steps: int, init: str = "last") -> None:
        """Keep statistics for steps up to ``num_steps``; new steps start as copies of the last step
        (``init="last"``) or as fresh statistics (``init="fresh"``) to be recalibrated from data."""
        while self.time_specific and self.num_steps < num_steps:
            new = nn.BatchNorm2d(self.num_features, affine=False).to(self.stats[-1].running_mean.device)
            if init == "last":
                new.load_state_dict(self.stats[-1].state_dict())
            self.stats.append(new)


def _conv(layer: ConvLayer) -> nn.Module:
    if layer.kind == "deconv":
        # kernel 3, padding 1, output_padding s-1: output = input * s exactly
        return nn.ConvTranspose2d(layer.in_channels, layer.out_channels, 3, stride=layer.stride,
                                  padding=1, output_padding=layer.stride - 1, bias=False)
    padding = layer.kernel // 2
    return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, stride=layer.stride,
                     padding=padding, bias=False)


class TransitionBlock(nn.Module):
    """Weights of one transition (or one tie group): BN-ReLU-Conv x n (BRC) or BN-ReLU-Deconv x n (BRD),
    plus an optional 1x1 projection of the pre-activated input (a ResNet stage's first block).

    Batch-norm statistics are not held here: they belong to each use (transition, step) and are passed
    in as a list of TSBN modules, one per convolution, so tied weights still normalise per step.
    """

    def __init__(self, layers: tuple[ConvLayer, ...], affine: bool):
        super().__init__()
        convs = [layer for layer in layers if layer.kind != "projection"]
        self.convs = nn.ModuleList(_conv(layer) for layer in convs)
        projection = [layer for layer in layers if layer.kind == "projection"]
        self.projection = _conv(projection[0]) if projection else None
        if affine:
            self.bn_weight = nn.ParameterList(nn.Parameter(torch.ones(c.in_channels)) for c in convs)
            self.bn_bias = nn.ParameterList(nn.Parameter(torch.zeros(c.in_channels)) for c in convs)
        else:
            self.bn_weight = self.bn_bias = None

    def forward(self, x: torch.Tensor, norms: nn.ModuleList, t: int) -> torch.Tensor:
        out, shortcut = x, None
        for k, conv in enumerate(self.convs):
            if self.bn_weight is not None:
                out = norms[k](out, t, self.bn_weight[k], self.bn_bias[k])
            else:
                out = norms[k](out, t)
            out = F.relu(out)
            if k == 0 and self.projection is not None:
                shortcut = self.projection(out)
            out = conv(out)
        return out if shortcut is None else out + shortcut


class PreNet(nn.Module):
    """The pre-net: one 3x3 conv ("conv"), Conv-BN-ReLU-Conv-BN-ReLU-Conv ("conv3"), or the ImageNet
    ResNet stem ("stem": 7x7/2 conv, BN, ReLU, 3x3/2 max-pool)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        layers = spec.prenet_layers()
        c = spec.graph.first.channels
        if spec.prenet == "conv":
            self.net = _conv(layers[0])
        elif spec.prenet == "conv3":
            self.net = nn.Sequential(_conv(layers[0]), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     _conv(layers[1]), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     _conv(layers[2]))
        else:
            self.net = nn.Sequential(nn.Conv2d(spec.in_channels, c, 7, stride=2, padding=3, bias=False),
                                     nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(3, stride=2, padding=1))

    def forward(self, x):
        return self.net(x)


class PostNet(nn.Module):
    """BN-ReLU-global average pool-linear on the last state; its BN is time-specific, indexed by the
    readout time, so one model can be read out at several times."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        c = spec.graph.last.channels
        self.norm = TimeSpecificBatchNorm(c, spec.time_steps, affine=True,
                                          time_specific=spec.time_specific_bn, beyond=spec.beyond_trained)
        self.fc = nn.Linear(c, spec.num_classes)

    def forward(self, state: torch.Tensor, readout_time: int) -> torch.Tensor:
        out = F.relu(self.norm(state, readout_time))
        return self.fc(out.mean(dim=(2, 3)))


def he_init(module: nn.Module) -> None:
    """He et al. (2015) initialisation for every convolution; BN scale 1, shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def tsbn_modules(model: nn.Module) -> list[TimeSpecificBatchNorm]:
    return [m for m in model.modules() if isinstance(m, TimeSpecificBatchNorm)]


def extend_time(model: nn.Module, time_steps: int, init: str = "last") -> None:
    """Let a time-invariant model run and read out up to ``time_steps``: extend every TSBN.
    Follow with ``recalibrate_batchnorm`` to estimate the new steps' statistics from data."""
    spec = getattr(model, "spec", None)
    if spec is not None and spec.graph.weight_sharing == "unshared":
        raise TimeStepError("a time-variant (unshared) model has no weights for new steps; extend_time "
                            "works on models with weight_sharing='shared'")
    for m in tsbn_modules(model):
        m.extend(time_steps, init)
    if spec is not None:
        spec.time_steps = max(spec.time_steps, time_steps)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, readout_time: int, steps: range | None = None) -> None:
    """Re-estimate TSBN statistics from data (cumulative average over ``batches`` of images).

    Only the statistics of ``steps`` (default: every step) are reset and re-estimated; the rest and
    every weight stay as they are.
    """
    modules = tsbn_modules(model)
    steps = set(range(readout_time + 1) if steps is None else steps)
    saved = {}
    for m in modules:
        saved[m] = m.momentum
        m.momentum = None
        for t, stats in enumerate(m.stats):
            if t in steps:
                stats.reset_running_stats()
    was_training = model.training
    kept = {}
    model.eval()  # pre-net BN and dropout stay fixed; only the TSBN statistics learn
    for m in modules:
        m.train()
    try:
        for m in modules:  # statistics of steps outside `steps` must not move
            for t, stats in enumerate(m.stats):
                if t not in steps:
                    kept[(id(m), t)] = {k: v.clone() for k, v in stats.state_dict().items()}
        # read out at every recalibrated step too, so the post-net's statistics for those steps are estimated
        earliest = model.spec.graph.earliest_readout if hasattr(model, "spec") else readout_time
        readouts = sorted({t for t in steps if earliest <= t <= readout_time} | {readout_time})
        for images in batches:
            if isinstance(images, (tuple, list)):
                images = images[0]
            model(images, readout_time=readouts)
        for m in modules:
            for t, stats in enumerate(m.stats):
                if (id(m), t) in kept:
                    stats.load_state_dict(kept[(id(m), t)])
    finally:
        for m in modules:
            m.momentum = saved[m]
        model.train(was_training)
