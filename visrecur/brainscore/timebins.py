"""Brain-Score's time bins -> model steps, through ``visrecur.timing.TimeMapping`` (the one place
milliseconds per step live): step t of a state covers [onset + t w, onset + (t + 1) w) ms, with the
state's own onset and step duration w; a bin takes the steps it overlaps, weighted by the overlap
(``TimeMapping.overlap_weights``).

Every bin Brain-Score can pass is answered, each by a stated rule:

* a zero-length bin ``(a, a)`` (LAION fMRI's ``(0, 0)``; Allen2022 and Hebart2023 fMRI assemblies) is
  the instant ``a``: the activity of the step whose bin holds ``a``, by the same mapping;
* time before a state responds: a bin wholly before the state's step 0 holds zeros; the part of a bin
  before step 0 is not counted (the bin is the overlap-weighted mean of the steps it overlaps); steps
  before the state is first reached (its arrival) count as zeros. Bins holding zeros are warned about;
* a bin that takes a step past the model's last trained step is answered and flagged
  (``past_trained`` per bin), or refused with ``past_trained="refuse"``;
* bins may overlap and come in any order (each is its own); a bin with start > end is refused, and so
  is one that needs a step the model cannot run (a time-variant model's last step, ``max_step``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visrecur.errors import TimeStepError
from visrecur.timing import TimeMapping, TimeMappingError, check_bins

PAST_TRAINED = ("answer", "refuse")


class PastTrainedError(TimeStepError):
    """Time bins past the last trained step, where the adapter was told to refuse them."""


@dataclass(frozen=True)
class BinPlan:
    """How one state's activity becomes the requested bins: ``weights`` (bins x steps, each row sums to
    1, or to 0 for a bin before the state's step 0) over ``steps`` 0..last; ``unreached``: the bins that
    hold zeros for some of their time (before step 0 or before the state's arrival); ``past_trained``:
    per bin, whether it takes a step after ``last_trained``."""

    bins: np.ndarray
    state: str
    arrival: int
    steps: tuple
    weights: np.ndarray
    unreached: tuple
    past_trained: np.ndarray
    last_trained: int | None

    def describe_unreached(self, mapping: TimeMapping) -> str:
        start = float(mapping.bins([self.arrival], self.state)[0, 0])
        zero = float(mapping.bins([0], self.state)[0, 0])
        listed = ", ".join(f"({a:g}, {b:g})" for a, b in self.unreached)
        return (f"state {self.state} is not reached before step {self.arrival} ({start:g} ms with "
                f"{mapping.state_step_ms(self.state):g} ms per step from {zero:g} ms): time bin(s) {listed} ms hold "
                "zeros for the time before it")

    def describe_past_trained(self, fix: str = "") -> str:
        listed = ", ".join(f"({a:g}, {b:g})" for (a, b), late in zip(self.bins, self.past_trained) if late)
        return (f"time bin(s) {listed} ms of state {self.state} take steps past the last trained step "
                f"{self.last_trained} (up to step {max(self.steps)}); " + (fix or
                "they are answered and flagged past_trained=True (past_trained='refuse' refuses them)"))

    def describe_steps(self) -> str:
        """Which steps each bin took, with which weight."""
        return "; ".join(f"({a:g}, {b:g}) ms <- " + (", ".join(f"step {t} x {w:.3g}" for t, w in zip(self.steps, row)
                                                              if w > 0) or "zeros (before step 0)")
                         for (a, b), row in zip(self.bins, self.weights))


def plan_bins(time_bins, mapping: TimeMapping, state: str, arrival: int, last_step: int | None = None,
              limit_reason: str = "", last_trained: int | None = None, past_trained: str = "answer") -> BinPlan:
    """The steps and weights for ``time_bins`` (pairs of ms): see the module docstring for the rules.
    ``last_step``: the last step the model can run (None: no limit); ``last_trained``: the model's last
    trained step (None: no trained step, nothing is flagged)."""
    if past_trained not in PAST_TRAINED:
        raise TimeMappingError(f"past_trained={past_trained!r} must be one of {', '.join(PAST_TRAINED)}")
    bins = check_bins(time_bins, instants=True, ordered=False)
    w = mapping.state_step_ms(state)
    onset = float(mapping.bins([0], state)[0, 0])
    instant = bins[:, 0] == bins[:, 1]
    # the last step each bin needs: the one holding an instant, else the last one starting before its end
    needed = np.where(instant, np.floor((bins[:, 1] - onset) / w), np.ceil((bins[:, 1] - onset) / w) - 1).astype(int)
    if last_step is not None and needed.max() > last_step:
        k = int(np.argmax(needed > last_step))
        a, b = bins[k]
        latest = onset + (last_step + 1) * w
        raise TimeMappingError(f"time bin ({a:g}, {b:g}) ms needs model step {needed[k]} ({w:g} ms per step from "
                               f"{onset:g} ms), but this model runs steps up to {last_step}"
                               f"{' (' + limit_reason + ')' if limit_reason else ''}; give bins ending by "
                               f"{latest:g} ms, or more ms per step in the time mapping")
    steps = tuple(range(max(int(needed.max()), 0) + 1))
    weights = mapping.overlap_weights(bins, steps, state)
    before = weights.sum(1) == 0  # wholly before step 0 (an instant before it, or a bin ending by it)
    unreached = tuple((float(a), float(b)) for (a, b), row, early in zip(bins, weights, before)
                      if early or row[:arrival].sum() > 0)
    late = np.zeros(len(bins), dtype=bool)
    if last_trained is not None and len(steps) > last_trained + 1:
        late = weights[:, last_trained + 1:].sum(1) > 0
    plan = BinPlan(bins, state, int(arrival), steps, weights, unreached, late, last_trained)
    if late.any() and past_trained == "refuse":
        raise PastTrainedError(plan.describe_past_trained(
            f"refused as asked (past_trained='refuse'); give bins ending by {onset + (last_trained + 1) * w:g} ms, "
            "or past_trained='answer' to have them answered and flagged"))
    return plan


def apply_weights(activity: np.ndarray, plan: BinPlan) -> np.ndarray:
    """(presentation, neuroid, step) activity -> (presentation, neuroid, bin). The steps before the state's
    arrival (NaN in a recording) count as zero, the stated value."""
    values = np.array(activity, dtype=np.float64)
    values[..., :plan.arrival] = 0.0
    return np.einsum("pns,bs->pnb", values, plan.weights).astype(np.float32)
