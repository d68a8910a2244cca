"""Model time steps <-> milliseconds after stimulus onset: the one place the paper's 20-50 ms lives.

The paper estimates that readout time ``t`` corresponds to about ``20 t`` to ``50 t`` ms (the latency of
one layer of biological neurons, 20-50 ms). Milliseconds are derived, never the primary axis: a
``TimeMapping`` is an explicit parameter wherever they appear.

Two readings of a step are used:

* its *latency*, a point in time known only as a range: step ``t`` happens ``onset + t * low`` to
  ``onset + t * high`` ms after stimulus onset (``latency``);
* its *bin*, for aligning with neural data binned in time: with one duration ``w`` per step, step ``t``
  covers ``[onset + t * w, onset + (t + 1) * w)`` ms (``bins``); a neural time bin takes the steps it
  overlaps, weighted by the overlap (``overlap_weights``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from visrecur.errors import VisrecurError

DEFAULT_MS_PER_STEP = (20.0, 50.0)


class TimeMappingError(VisrecurError):
    """A time mapping or a time bin that cannot be used."""


def _ms_range(ms_per_step) -> tuple[float, float]:
    try:
        values = [float(v) for v in np.atleast_1d(ms_per_step)]
    except (TypeError, ValueError):
        values = []
    if len(values) not in (1, 2):
        raise TimeMappingError(f"ms_per_step={ms_per_step!r} must be one duration or (low, high), e.g. (20, 50)")
    low, high = (values[0], values[0]) if len(values) == 1 else values
    if not (np.isfinite(low) and np.isfinite(high)) or not 0 < low <= high:
        raise TimeMappingError(f"ms_per_step={ms_per_step!r} must be (low, high) with 0 < low <= high, "
                               "e.g. (20, 50); give the smaller duration first")
    return float(low), float(high)


@dataclass(frozen=True)
class TimeMapping:
    """Steps <-> ms. ``ms_per_step``: one duration or a (low, high) range (default the paper's 20-50);
    ``onset_ms``: when step 0 happens; ``state_onset_ms``: extra delay per state name (e.g. to model
    a transmission delay before a state), added to that state's latencies and bins."""

    ms_per_step: tuple[float, float] = DEFAULT_MS_PER_STEP
    onset_ms: float = 0.0
    state_onset_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ms_per_step", _ms_range(self.ms_per_step))
        if not np.isfinite(self.onset_ms):
            raise TimeMappingError(f"onset_ms={self.onset_ms!r} must be a finite number of milliseconds")
        object.__setattr__(self, "onset_ms", float(self.onset_ms))
        object.__setattr__(self, "state_onset_ms", {str(k): float(v) for k, v in dict(self.state_onset_ms).items()})

    @property
    def step_ms(self) -> float:
        """One duration per step, for bins: the range's midpoint (35 ms for 20-50)."""
        return (self.ms_per_step[0] + self.ms_per_step[1]) / 2

    def _onset(self, state: str | None) -> float:
        return self.onset_ms + (self.state_onset_ms.get(state, 0.0) if state is not None else 0.0)

    def latency(self, t, state: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(earliest, latest) ms after stimulus onset at step(s) ``t``."""
        t = np.asarray(t, dtype=float)
        onset = self._onset(state)
        return onset + self.ms_per_step[0] * t, onset + self.ms_per_step[1] * t

    def bins(self, steps: Sequence[int], state: str | None = None,
             step_ms: float | None = None) -> np.ndarray:
        """(len(steps), 2) array of [start, end) ms: step t covers onset + t*w to onset + (t+1)*w,
        ``w = step_ms`` (default ``self.step_ms``)."""
        w = self.step_ms if step_ms is None else _ms_range(step_ms)[0]
        t = np.asarray(steps, dtype=float)
        start = self._onset(state) + t * w
        return np.stack([start, start + w], axis=-1)

    def steps_at(self, ms: float, state: str | None = None) -> range:
        """The steps whose latency range contains ``ms``."""
        low, high = self.ms_per_step
        ms = float(ms) - self._onset(state)
        return range(max(0, int(np.ceil(ms / high))), int(np.floor(ms / low)) + 1) if ms >= 0 else range(0)

    def overlap_weights(self, neural_bins, steps: Sequence[int], state: str | None = None,
                        step_ms: float | None = None) -> np.ndarray:
        """(n_bins, n_steps) weights: the fraction of each neural bin [start, end) that each step's bin
        covers, normalised to sum to 1 over steps for every bin the steps cover at all. A bin no step
        overlaps gets a row of zeros (check ``weights.sum(1) > 0``)."""
        neural = check_bins(neural_bins)
        model = self.bins(steps, state, step_ms)
        overlap = np.clip(np.minimum(neural[:, None, 1], model[None, :, 1])
                          - np.maximum(neural[:, None, 0], model[None, :, 0]), 0, None)
        totals = overlap.sum(axis=1, keepdims=True)
        return np.divide(overlap, totals, out=np.zeros_like(overlap), where=totals > 0)

    def describe(self) -> str:
        low, high = self.ms_per_step
        text = f"{low:g}" + ("" if low == high else f"-{high:g}") + " ms per step"
        if self.onset_ms:
            text += f", step 0 at {self.onset_ms:g} ms"
        if self.state_onset_ms:
            text += ", state delays " + ", ".join(f"{k} +{v:g} ms" for k, v in self.state_onset_ms.items())
        return text

    def to_attrs(self) -> dict:
        """Plain values for netCDF attrs / JSON."""
        return {"ms_per_step": list(self.ms_per_step), "onset_ms": self.onset_ms,
                "state_onset_ms": dict(self.state_onset_ms)}


def check_bins(bins) -> np.ndarray:
    """Validate neural time bins: (n, 2) [start, end) ms, start < end, sorted and not overlapping."""
    array = np.asarray(bins, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise TimeMappingError(f"time bins must be a list of (start_ms, end_ms) pairs, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array[:, 0] >= array[:, 1]):
        k = int(np.argmax(~np.isfinite(array).all(1) | (array[:, 0] >= array[:, 1])))
        raise TimeMappingError(f"time bin {k} {tuple(array[k])} must have start < end (ms)")
    if np.any(array[1:, 0] < array[:-1, 1]):
        k = int(np.argmax(array[1:, 0] < array[:-1, 1])) + 1
        raise TimeMappingError(f"time bins {k - 1} {tuple(array[k - 1])} and {k} {tuple(array[k])} overlap or "
                               "are out of order; give sorted, non-overlapping bins")
    return array


DEFAULT_MAPPING = TimeMapping()


def latency_ms(t, ms_per_step=DEFAULT_MS_PER_STEP):
    """(earliest, latest) milliseconds after onset for step(s) ``t`` (``TimeMapping(ms_per_step).latency``)."""
    return TimeMapping(ms_per_step).latency(t)
