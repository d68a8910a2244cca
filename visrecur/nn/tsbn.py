"""Time-specific batch normalisation (TSBN): running statistics kept per time step, and what a step
without trained statistics uses in evaluation. Which statistics serve which (transition, step) of a whole
model is the model's to answer (``visrecur.nn.statistics``); here is one layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visrecur.errors import TimeStepError

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
                "step's statistics, or call model.recalibrate(batches, readout_time) to estimate them")
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
