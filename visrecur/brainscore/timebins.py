"""Brain-Score's time bins -> model steps, through ``visrecur.timing.TimeMapping`` (the one place
milliseconds per step live): step t covers [onset + t w, onset + (t + 1) w) ms, w = ``mapping.step_ms``;
a bin takes the steps it overlaps, weighted by the overlap (``TimeMapping.overlap_weights``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visrecur.timing import TimeMapping, TimeMappingError, check_bins


@dataclass(frozen=True)
class BinPlan:
    """How one state's activity becomes the requested bins: ``weights`` (bins x steps, rows sum to 1)
    over ``steps`` 0..last; ``unreached``: the bins that take steps before the state's arrival, which hold
    zeros there."""

    bins: np.ndarray
    state: str
    arrival: int
    steps: tuple
    weights: np.ndarray
    unreached: tuple

    def describe_unreached(self, mapping: TimeMapping) -> str:
        start = float(mapping.bins([self.arrival], self.state)[0, 0])
        listed = ", ".join(f"({a:g}, {b:g})" for a, b in self.unreached)
        return (f"state {self.state} is not reached before step {self.arrival} ({start:g} ms with "
                f"{mapping.step_ms:g} ms per step): time bin(s) {listed} ms hold zeros for the steps before it")


def plan_bins(time_bins, mapping: TimeMapping, state: str, arrival: int, last_step: int | None = None,
              limit_reason: str = "") -> BinPlan:
    """The steps and weights for ``time_bins`` (pairs of ms); refuses bins that are not [start, end)
    pairs in order without overlap, bins that end before step 0 starts, and bins that need a step past
    ``last_step`` (the last step the model can run; None: no limit)."""
    bins = check_bins(time_bins)
    w = mapping.step_ms
    onset = float(mapping.bins([0], state)[0, 0])
    early = bins[:, 1] <= onset
    if early.any():
        a, b = bins[np.argmax(early)]
        raise TimeMappingError(f"time bin ({a:g}, {b:g}) ms ends before the model's step 0 starts ({onset:g} ms "
                               f"after stimulus onset for state {state}): no model step covers it; give bins "
                               f"ending after {onset:g} ms, or a smaller onset_ms in the time mapping")
    # the last step whose bin starts before the end of each time bin
    needed = np.ceil((bins[:, 1] - onset) / w).astype(int) - 1
    if last_step is not None and needed.max() > last_step:
        k = int(np.argmax(needed > last_step))
        a, b = bins[k]
        latest = onset + (last_step + 1) * w
        raise TimeMappingError(f"time bin ({a:g}, {b:g}) ms needs model step {needed[k]} ({w:g} ms per step from "
                               f"{onset:g} ms), but this model runs steps up to {last_step}"
                               f"{' (' + limit_reason + ')' if limit_reason else ''}; give bins ending by "
                               f"{latest:g} ms, or more ms per step in the time mapping")
    steps = tuple(range(int(needed.max()) + 1))
    weights = mapping.overlap_weights(bins, steps, state)
    unreached = tuple((float(a), float(b)) for (a, b), row in zip(bins, weights) if row[:arrival].sum() > 0)
    return BinPlan(bins, state, int(arrival), steps, weights, unreached)


def apply_weights(activity: np.ndarray, plan: BinPlan) -> np.ndarray:
    """(presentation, neuroid, step) activity -> (presentation, neuroid, bin). The steps before the state's
    arrival (NaN in a recording) count as zero, the stated value."""
    values = np.array(activity, dtype=np.float64)
    values[..., :plan.arrival] = 0.0
    return np.einsum("pns,bs->pnb", values, plan.weights).astype(np.float32)
