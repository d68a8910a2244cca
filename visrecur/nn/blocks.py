"""Torch building blocks: transition blocks (with their regional compilation), the pre-net and the post-net.
Each block's batch norms are time-specific (``visrecur.nn.tsbn``); which statistics serve which step is
decided by the model (``visrecur.nn.statistics``)."""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from visrecur.architecture.graph import ConvLayer
from visrecur.architecture.layers import layer_kind
from visrecur.architecture.modelspec import ModelSpec
from visrecur.nn.tsbn import MOMENTUM, TimeSpecificBatchNorm


class TransitionBlock(nn.Module):
    """Weights of one transition (or one tie group): BN-ReLU-Conv x n (BRC) or BN-ReLU-Deconv x n (BRD),
    plus an optional 1x1 projection of the pre-activated input (a ResNet stage's first block).
    ``rest`` > 1: the resampling left over by the convolutions' strides (``Graph.resample_rest``), as
    average pooling of the input (BRC) or nearest-neighbour upsampling of the output (BRD).

    Batch-norm statistics are not held here: they belong to each use (transition, step) and are passed
    in as a list of TSBN modules, one per convolution, so tied weights still normalise per step.
    """

    def __init__(self, layers: tuple[ConvLayer, ...], affine: bool, rest: int = 1):
        super().__init__()
        convs = [layer for layer in layers if layer.kind != "projection"]
        self.rest, self.upsampling = rest, layer_kind(convs[0].kind).upsamples
        self.convs = nn.ModuleList(layer.module() for layer in convs)  # each kind builds its own
        projection = [layer for layer in layers if layer.kind == "projection"]
        self.projection = projection[0].module() if projection else None
        if affine:
            self.bn_weight = nn.ParameterList(nn.Parameter(torch.ones(c.in_channels)) for c in convs)
            self.bn_bias = nn.ParameterList(nn.Parameter(torch.zeros(c.in_channels)) for c in convs)
        else:
            self.bn_weight = self.bn_bias = None
        self.compiled = None  # compile_region() sets it

    def forward(self, x: torch.Tensor, norms: nn.ModuleList, t: int) -> torch.Tensor:
        # which statistics step t uses (and their counters) is decided here, in Python; the tensor work
        # below depends on t only through those tensors, so one compiled region serves every step
        selected = [norm.select(t) for norm in norms]
        means, variances = [m for m, _, _, _ in selected], [v for _, v, _, _ in selected]
        modes = tuple((batch_stats, momentum) for _, _, batch_stats, momentum in selected)
        affine = (list(self.bn_weight), list(self.bn_bias)) if self.bn_weight is not None else \
            ([norm.weight for norm in norms], [norm.bias for norm in norms])
        tensor_work = self.compiled if self.compiled is not None and _compiled_modes(modes) else _block_work
        return tensor_work(self, x, means, variances, *affine, modes, norms[0].eps)

    def compile_region(self, **options) -> None:
        """``torch.compile`` this block's tensor work (batch norms, ReLUs, convolutions), reused at every
        time step: one graph per mode (training, evaluation), batch size and autocast dtype, 8 at most per
        block (torch's cache), after which the block runs eagerly, with the same results. Steps that
        recalibrate statistics (a changing momentum) run eagerly."""
        # torch.compile keeps its cache (8 entries) per code object: each block compiles its own copy
        # of _block_work, so that 16 transitions x (training, evaluation) never fall back to eager
        code = _block_work.__code__.replace(co_name=f"_block_work_{id(self):x}")
        own = types.FunctionType(code, _block_work.__globals__, code.co_name)
        self.compiled = torch.compile(own, dynamic=False, **options)  # a graph per batch size (8 at most, then eager)


def compile_regions(model: nn.Module, **options) -> int:
    """Regional compilation: ``compile_region`` every transition block of ``model`` (the pre- and
    post-net run once per pass and stay eager); returns how many blocks. The weights, statistics and
    outputs are the model's own: only the tensor work of each block is compiled."""
    found = [m for m in model.modules() if isinstance(m, TransitionBlock)]
    for block in found:
        block.compile_region(**options)
    return len(found)


def _compiled_modes(modes, momentum: float = MOMENTUM) -> bool:
    """Whether every (batch statistics?, momentum) of a block runs compiled: training with
    TimeSpecificBatchNorm's default momentum, or evaluation; a recalibration's cumulative momenta would
    compile anew at every batch, so they run eagerly."""
    return all((batch_stats and m == momentum) or (not batch_stats and m == 0.0) for batch_stats, m in modes)


def _block_work(block: TransitionBlock, x, means, variances, weights, biases, modes, eps: float):
    """A transition block's tensor work given each convolution's selected statistics: (BN-ReLU-Conv) x n
    with the projection and the leftover resampling; no Python state is read or changed."""
    if block.rest > 1 and not block.upsampling:
        x = F.avg_pool2d(x, block.rest)
    out, shortcut = x, None
    for k, conv in enumerate(block.convs):
        batch_stats, momentum = modes[k]
        out = F.relu(F.batch_norm(out, means[k], variances[k], weights[k], biases[k], batch_stats, momentum, eps))
        if k == 0 and block.projection is not None:
            shortcut = block.projection(out)
        out = conv(out)
    if block.rest > 1 and block.upsampling:
        out = F.interpolate(out, scale_factor=block.rest, mode="nearest")
    return out if shortcut is None else out + shortcut


class PreNet(nn.Module):
    """The pre-net: one 3x3 conv ("conv"), Conv-BN-ReLU-Conv-BN-ReLU-Conv ("conv3"), or the ImageNet
    ResNet stem ("stem": 7x7/2 conv, BN, ReLU, 3x3/2 max-pool)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        layers = spec.prenet_layers()
        c = spec.graph.first.channels
        if spec.prenet == "conv":
            self.net = layers[0].module()
        elif spec.prenet == "conv3":
            self.net = nn.Sequential(layers[0].module(), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     layers[1].module(), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                     layers[2].module())
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
