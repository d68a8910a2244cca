"""Torch building blocks: time-specific batch norm, transition blocks, pre-net and post-net.

Over ~350 lines on purpose: TSBN's policy for steps without trained statistics, its extension and its
recalibration (the second half) read and change exactly the per-step slots defined here, and are tested
as one unit (tests/test_tsbn_steps.py).
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from visrecur.errors import TimeStepError
from visrecur.architecture.graph import ConvLayer
from visrecur.architecture.modelspec import ModelSpec


MOMENTUM = 0.1  # TSBN's running-statistics momentum (torch's BatchNorm default); compiled regions assume it


class TimeSpecificBatchNorm(nn.Module):
    """Batch normalisation with running statistics kept separately for every time step (TSBN).

    ``stats[t]`` holds the running mean and variance of step ``t`` (t = 0..num_steps). A step's
    statistics count as *trained* once they have been estimated from data (``num_batches_tracked > 0``:
    in training, or by ``recalibrate_batchnorm``). With ``time_specific=False`` one set of statistics
    serves every step (the paper's ablation, which it reports hurts). The learnable affine, when
    ``affine=True``, is shared across time; a caller that owns per-group affine parameters (tied
    transition weights) passes them to ``forward`` instead.

    In evaluation, a step without trained statistics (past the trained steps, or one the training
    never read out) follows ``beyond``: "last" normalises with the nearest trained step before it (the
    last trained step, past training; the first trained step if none is before it), "error" raises.
    A model none of whose steps is trained yet uses each built step as it is. ``extend`` adds steps.
    """

    def __init__(self, num_features: int, num_steps: int, *, affine: bool = False,
                 time_specific: bool = True, beyond: str = "last", momentum: float | None = MOMENTUM,
                 eps: float = 1e-5, position: int = 0):
        super().__init__()
        self.num_features, self.time_specific, self.beyond = num_features, time_specific, beyond
        self.momentum, self.eps = momentum, eps
        self.position = position  # index in its block: recalibration estimates one position per pass
        slots = num_steps + 1 if time_specific else 1
        self.stats = nn.ModuleList(nn.BatchNorm2d(num_features, affine=False) for _ in range(slots))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self._trained: list[int] | None = None  # cache of trained_steps(); None = read the buffers
        self.collecting: int | None = None  # the step recalibration is estimating, if any

    @property
    def num_steps(self) -> int:
        return len(self.stats) - 1

    def trained_steps(self) -> list[int]:
        """Steps whose running statistics were estimated from data, ascending."""
        if self._trained is None:  # one read of the buffers, cached: no device sync per forward
            self._trained = [t for t, s in enumerate(self.stats) if int(s.num_batches_tracked) > 0]
        return self._trained

    def slot(self, t: int) -> int:
        """The step whose statistics normalise step ``t``."""
        if not self.time_specific:
            return 0
        if self.training:
            if t > self.num_steps:
                raise TimeStepError(
                    f"step t={t} is past the {self.num_steps} steps this model's time-specific batch norm "
                    "was built for and cannot be trained there; call visrecur.nn.blocks.extend_time(model, "
                    "steps) first, or build the model with a larger time_steps")
            return t
        trained = self.trained_steps()
        what = "trained steps"
        if not trained:  # a model never trained: every built step as it is
            trained, what = list(range(self.num_steps + 1)), "never trained; built for steps"
        if t in trained:
            return t
        if self.beyond == "error":
            raise TimeStepError(
                f"step t={t} has no trained time-specific batch-norm statistics ({what} "
                f"{_ranges(trained)}); evaluate with beyond_trained='last' to reuse the nearest trained "
                "step's statistics, or call visrecur.nn.blocks.recalibrate_batchnorm(model, batches, "
                "readout_time) to estimate them")
        earlier = [s for s in trained if s < t]
        return earlier[-1] if earlier else trained[0]

    def forward(self, x: torch.Tensor, t: int, weight=None, bias=None) -> torch.Tensor:
        if weight is None:
            weight, bias = self.weight, self.bias
        mean, var, batch_stats, momentum = self.select(t)
        return F.batch_norm(x, mean, var, weight, bias, batch_stats, momentum, self.eps)

    def select(self, t: int) -> tuple[torch.Tensor, torch.Tensor, bool, float]:
        """Step ``t``'s use of the statistics, counted as ``forward`` counts it: (running mean, running
        variance, normalise with the batch's own statistics?, momentum of the running update). The
        tensor work is then ``F.batch_norm``: ``TransitionBlock`` calls it inside a compilable region."""
        if self.collecting is not None and self.collecting == t and self.time_specific:
            # recalibration: accumulate this step's statistics as a cumulative average
            stats = self.stats[t]
            stats.num_batches_tracked.add_(1)
            self._mark_trained(t)
            return stats.running_mean, stats.running_var, True, 1.0 / float(stats.num_batches_tracked)
        slot = self.slot(t)
        stats = self.stats[slot]
        momentum = self.momentum
        if self.training:
            stats.num_batches_tracked.add_(1)
            self._mark_trained(slot)
            if momentum is None:  # cumulative average
                momentum = 1.0 / float(stats.num_batches_tracked)
        # evaluation ignores the momentum: 0.0 there, so that one compiled region serves every evaluation
        return stats.running_mean, stats.running_var, self.training, (momentum or 0.0) if self.training else 0.0

    def _mark_trained(self, t: int) -> None:
        if self._trained is not None and t not in self._trained:
            self._trained = sorted(self._trained + [t])

    def forget(self, t: int) -> None:
        """Reset step ``t``'s statistics to untrained (mean 0, variance 1, no batches)."""
        self.stats[t].reset_running_stats()
        self._trained = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._trained = None  # the buffers are about to change
        super()._load_from_state_dict(*args, **kwargs)

    def extend(self, num_steps: int, init: str = "last") -> None:
        """Keep statistics for steps up to ``num_steps``. New steps start untrained, either as copies of
        the last trained step's statistics (``init="last"``, a starting point for training them) or
        fresh (``init="fresh"``); in evaluation they follow ``beyond`` until trained or recalibrated."""
        if init not in ("last", "fresh"):
            raise TimeStepError(f"init={init!r} is not 'last' or 'fresh'")
        source = self.stats[self.slot_for_copy()] if init == "last" else None
        while self.time_specific and self.num_steps < num_steps:
            new = nn.BatchNorm2d(self.num_features, affine=False).to(self.stats[-1].running_mean.device)
            if source is not None:
                new.running_mean.copy_(source.running_mean)
                new.running_var.copy_(source.running_var)
            self.stats.append(new)
        self._trained = None

    def slot_for_copy(self) -> int:
        trained = self.trained_steps()
        return trained[-1] if trained else self.num_steps


def _ranges(steps: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts, start = [], None
    for k, t in enumerate(steps):
        if start is None:
            start = t
        if k + 1 == len(steps) or steps[k + 1] != t + 1:
            parts.append(str(start) if start == t else f"{start}-{t}")
            start = None
    return ", ".join(parts) or "none"


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
    ``rest`` > 1: the resampling left over by the convolutions' strides (``Graph.resample_rest``), as
    average pooling of the input (BRC) or nearest-neighbour upsampling of the output (BRD).

    Batch-norm statistics are not held here: they belong to each use (transition, step) and are passed
    in as a list of TSBN modules, one per convolution, so tied weights still normalise per step.
    """

    def __init__(self, layers: tuple[ConvLayer, ...], affine: bool, rest: int = 1):
        super().__init__()
        convs = [layer for layer in layers if layer.kind != "projection"]
        self.rest, self.upsampling = rest, convs[0].kind == "deconv"
        self.convs = nn.ModuleList(_conv(layer) for layer in convs)
        projection = [layer for layer in layers if layer.kind == "projection"]
        self.projection = _conv(projection[0]) if projection else None
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
    """Let a time-invariant model run and read out up to ``time_steps``: transitions' TSBN get steps up
    to ``time_steps - 1`` (a readout at T reads the last state at T - 1), the post-net's up to
    ``time_steps``. New steps are untrained until trained or recalibrated (``recalibrate_batchnorm``)."""
    spec = getattr(model, "spec", None)
    if spec is not None and spec.graph.weight_sharing == "unshared":
        raise TimeStepError("a time-variant (unshared) model has no weights for new steps; extend_time "
                            "works on models with weight_sharing='shared'")
    postnet = getattr(getattr(model, "postnet", None), "norm", None)
    for m in tsbn_modules(model):
        m.extend(time_steps if m is postnet else time_steps - 1, init)
    if spec is not None:
        spec.time_steps = max(spec.time_steps, time_steps)


def _used_steps(model: nn.Module, readout_time: int,
                all_readouts: bool = True) -> dict[TimeSpecificBatchNorm, list[int]]:
    """Every TSBN of an FRNN -> the steps at which a readout up to ``readout_time`` (or, with
    ``all_readouts=False``, the one readout at ``readout_time``) normalises with it."""
    graph, used = model.spec.graph, {}
    for key, norms in model.norms.items():
        tr = next(tr for tr in graph.transitions if tr.key == key)
        for m in norms:
            used[m] = [t for t in range(1, readout_time) if graph.runs(tr, t)]
    used[model.postnet.norm] = list(range(graph.earliest_readout if all_readouts else readout_time,
                                          readout_time + 1))
    return used


def untrained_steps(model: nn.Module, readout_time: int) -> list[int]:
    """Steps up to ``readout_time`` at which a readout up to ``readout_time`` would normalise with
    statistics not estimated for that step: another step's, or the initial ones of a transition that
    never ran in training. Empty for a model never trained at all."""
    used = _used_steps(model, readout_time)
    if not any(m.trained_steps() for m in used):
        return []
    steps = set()
    for m, used_steps in used.items():
        if m.time_specific:
            steps |= {t for t in used_steps if t not in m.trained_steps()}
    return sorted(steps)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, readout_time: int, steps=None,
                          progress: bool = False) -> list[int]:
    """Estimate TSBN statistics from data, each from inputs computed exactly as in evaluation.

    By default every statistic a readout up to ``readout_time`` would otherwise borrow from another step
    (``untrained_steps``; all of them for a model never trained) is estimated; with ``steps``, the
    statistics of those steps are reset and re-estimated. It goes in time order, one (step, position in
    the block) per pass over ``batches`` (a re-iterable of image batches, or of (images, labels)): each
    pass runs the model in evaluation mode, so the inputs of step t come from earlier steps normalised
    with their running (trained or just recalibrated) statistics. Weights and all other statistics stay
    as they are. The model is extended to ``readout_time`` first if needed. Returns the steps estimated.
    """
    from tqdm.auto import tqdm

    if readout_time > model.spec.time_steps:
        extend_time(model, readout_time, init="fresh")
    targets = {}
    for m, used in _used_steps(model, readout_time).items():
        if not m.time_specific:
            continue
        trained = m.trained_steps()
        wanted = [t for t in used if t not in trained or not trained] if steps is None else \
            [t for t in used if t in set(steps)]
        if wanted:
            targets[m] = set(wanted)
    passes = sorted({(t, m.position) for m, wanted in targets.items() for t in wanted})
    if not passes:
        return []
    if iter(batches) is batches:  # a one-shot iterator: every pass needs the same batches
        batches = list(batches)
    earliest = model.spec.graph.earliest_readout
    saved_beyond = {m: m.beyond for m in tsbn_modules(model)}
    was_training = model.training
    model.eval()
    try:
        for m in saved_beyond:
            m.beyond = "last"  # a step not yet estimated may be read on the way: never refuse here
        for t, position in tqdm(passes, desc="recalibrating TSBN", disable=not progress, leave=False):
            collecting = [m for m, wanted in targets.items() if m.position == position and t in wanted]
            for m in collecting:
                m.forget(t)
                m.collecting = t
            for images in batches:
                if isinstance(images, (tuple, list)):
                    images = images[0]
                model(images, readout_time=[max(t, earliest)], until=t)
            for m in collecting:
                m.collecting = None
    finally:
        for m in saved_beyond:
            m.collecting = None
            m.beyond = saved_beyond[m]
        model.train(was_training)
    return sorted({t for t, _ in passes})


def borrowed_statistics(model: nn.Module, readout_time: int, all_readouts: bool = True) -> dict[int, set]:
    """Step t -> the steps whose statistics normalise it, for every step up to ``readout_time`` that a
    readout there would normalise (partly) with statistics not estimated for it (transition steps and
    post-net readouts together): another step's number, "initial" for a transition that never ran in
    training (mean 0, variance 1), or "refused" (beyond_trained="error"). Empty when none.
    ``all_readouts=False``: only what the one readout at ``readout_time`` uses (not earlier readouts)."""
    used = _used_steps(model, readout_time, all_readouts)
    model_trained = any(m.trained_steps() for m in used)
    borrowed: dict[int, set] = {}
    for m, steps in used.items():
        if not m.time_specific:
            continue
        for t in steps:
            if model_trained and not m.trained_steps():
                source = "initial"
            else:
                try:
                    source = m.slot(t)
                except TimeStepError:
                    source = "refused"
            if source != t:
                borrowed.setdefault(t, set()).add(source)
    return borrowed


def describe_statistics(model: nn.Module, readout_time: int) -> str:
    """One line on which TSBN statistics a run up to ``readout_time`` uses, e.g. for a recording's attrs."""
    borrowed = borrowed_statistics(model, readout_time)
    if not borrowed:
        return f"every step up to readout {readout_time} uses statistics estimated for it"
    parts = [f"t{t}: " + ", ".join(f"step {s}" if isinstance(s, int) else s
                                   for s in sorted(sources, key=str)) for t, sources in sorted(borrowed.items())]
    return ("statistics estimated for each step except (beyond_trained="
            f"{model.spec.beyond_trained!r}; step: statistics used instead) " + "; ".join(parts))


def last_trained_step(model: nn.Module) -> int | None:
    """The last step at which a transition's TSBN statistics were estimated from data (None: never)."""
    steps = [t for norms in getattr(model, "norms", {}).values() for m in norms for t in m.trained_steps()]
    return max(steps) if steps else None


def is_trained(model: nn.Module) -> bool:
    """Whether any TSBN statistics of ``model`` were estimated from data (training or recalibration)."""
    return any(m.trained_steps() for m in tsbn_modules(model))
