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

import dataclasses
import json
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
    ``onset_ms``: when step 0 happens; ``state_onset_ms``: a shift per state name (e.g. a
    transmission delay before a state; negative where a state first reached at a later step starts earlier
    than that step's base time), added to that state's latencies and bins;
    ``state_ms_per_step``: a state's own step duration (one or (low, high)), for models whose areas run
    at different rates (CORnet-S's V4 runs four times per pass, IT twice).

    Recordings and checkpoints store it whole (``to_dict``/``from_dict``); a command given
    ``--ms-per-step`` for a recording or model that states another mapping refuses (``resolve``)."""

    ms_per_step: tuple[float, float] = DEFAULT_MS_PER_STEP
    onset_ms: float = 0.0
    state_onset_ms: Mapping[str, float] = field(default_factory=dict)
    state_ms_per_step: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ms_per_step", _ms_range(self.ms_per_step))
        try:
            onset = float(self.onset_ms)
        except (TypeError, ValueError):
            onset = float("nan")
        if not np.isfinite(onset) or onset < 0:
            raise TimeMappingError(f"onset_ms={self.onset_ms!r} must be a finite number of milliseconds >= 0 "
                                   "(when step 0 happens after stimulus onset)")
        object.__setattr__(self, "onset_ms", onset)
        for name in ("state_onset_ms", "state_ms_per_step"):
            if not isinstance(getattr(self, name), Mapping):
                raise TimeMappingError(f"{name}={getattr(self, name)!r:.40} must be a mapping of state name to ms, "
                                       "e.g. {'V4': 20}")
        onsets = {}
        for state, value in dict(self.state_onset_ms).items():
            try:
                onsets[str(state)] = float(value)
            except (TypeError, ValueError):
                onsets[str(state)] = float("nan")
            # a shift may be negative: a state first reached at a later step whose first bin starts earlier
            # than that step's time from the base onset (the CORnet-S preset: start - arrival x duration)
            if not np.isfinite(onsets[str(state)]):
                raise TimeMappingError(f"the onset of state {state!r}, {value!r}, must be a finite number of ms "
                                       "(a shift of that state's times)")
        object.__setattr__(self, "state_onset_ms", onsets)
        object.__setattr__(self, "state_ms_per_step",
                           {str(k): _ms_range(v) for k, v in dict(self.state_ms_per_step).items()})

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def step_ms(self) -> float:
        """One duration per step, for bins: the range's midpoint (35 ms for 20-50)."""
        return self.state_step_ms(None)

    def state_step_ms(self, state: str | None) -> float:
        low, high = self._range(state)
        return (low + high) / 2

    def _range(self, state: str | None) -> tuple[float, float]:
        return self.state_ms_per_step.get(state, self.ms_per_step) if state is not None else self.ms_per_step

    def _onset(self, state: str | None) -> float:
        return self.onset_ms + (self.state_onset_ms.get(state, 0.0) if state is not None else 0.0)

    def latency(self, t, state: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(earliest, latest) ms after stimulus onset at step(s) ``t`` (of ``state``)."""
        t = _steps(t)
        onset, (low, high) = self._onset(state), self._range(state)
        return onset + low * t, onset + high * t

    def bins(self, steps: Sequence[int], state: str | None = None,
             step_ms: float | None = None) -> np.ndarray:
        """(len(steps), 2) array of [start, end) ms: step t covers onset + t*w to onset + (t+1)*w,
        ``w = step_ms`` (default the state's midpoint duration)."""
        w = self.state_step_ms(state) if step_ms is None else _ms_range(step_ms)[0]
        t = _steps(steps)
        start = self._onset(state) + t * w
        return np.stack([start, start + w], axis=-1)

    def steps_at(self, ms: float, state: str | None = None) -> range:
        """The steps whose latency range contains ``ms``."""
        low, high = self._range(state)
        if isinstance(ms, bool) or not isinstance(ms, (int, float, np.number)) or not np.isfinite(ms):
            raise TimeMappingError(f"ms={ms!r} must be a finite number of milliseconds after stimulus onset")
        ms = float(ms) - self._onset(state)
        return range(max(0, int(np.ceil(ms / high))), int(np.floor(ms / low)) + 1) if ms >= 0 else range(0)

    def overlap_weights(self, neural_bins, steps: Sequence[int], state: str | None = None,
                        step_ms: float | None = None) -> np.ndarray:
        """(n_bins, n_steps) weights: the fraction of each neural bin [start, end) that each step's bin
        covers, normalised to sum to 1 over steps for every bin the steps cover at all. A zero-length bin
        (start == end) is the instant ``start``: weight 1 on the step whose bin [start, end) holds it
        (the later one on a boundary), by the same mapping. A bin no step overlaps gets a row of zeros
        (check ``weights.sum(1) > 0``). Bins may overlap and come in any order: each row is its own."""
        neural = check_bins(neural_bins, instants=True, ordered=False)
        model = self.bins(steps, state, step_ms)
        overlap = np.clip(np.minimum(neural[:, None, 1], model[None, :, 1])
                          - np.maximum(neural[:, None, 0], model[None, :, 0]), 0, None)
        instant = neural[:, 0] == neural[:, 1]
        holds = (model[None, :, 0] <= neural[:, None, 0]) & (neural[:, None, 0] < model[None, :, 1])
        overlap[instant] = holds[instant].astype(float)
        totals = overlap.sum(axis=1, keepdims=True)
        return np.divide(overlap, totals, out=np.zeros_like(overlap), where=totals > 0)

    def check_states(self, names, what: str = "this model") -> None:
        """Refuse per-state onsets or step durations for states ``what`` does not have (one line)."""
        names = list(names)
        for option, table in (("state onset", self.state_onset_ms), ("state step duration", self.state_ms_per_step)):
            unknown = [k for k in table if k not in names]
            if unknown:
                raise TimeMappingError(f"the time mapping gives a {option} for state {unknown[0]!r}, which {what} "
                                       f"does not have (its states: {', '.join(names)}); name one of those")

    def describe(self) -> str:
        text = _describe_range(self.ms_per_step) + " ms per step"
        if self.onset_ms:
            text += f", step 0 at {self.onset_ms:g} ms"
        if self.state_onset_ms:
            text += ", state delays " + ", ".join(f"{k} {v:+g} ms" for k, v in self.state_onset_ms.items())
        if self.state_ms_per_step:
            text += ", state steps " + ", ".join(f"{k} {_describe_range(v)} ms"
                                                 for k, v in self.state_ms_per_step.items())
        return text

    def to_dict(self) -> dict:
        """Plain values for netCDF attrs and checkpoints; ``from_dict`` reads them back whole."""
        return {"ms_per_step": list(self.ms_per_step), "onset_ms": self.onset_ms,
                "state_onset_ms": dict(self.state_onset_ms),
                "state_ms_per_step": {k: list(v) for k, v in self.state_ms_per_step.items()}}

    to_attrs = to_dict

    @classmethod
    def from_dict(cls, values: Mapping) -> "TimeMapping":
        if not isinstance(values, Mapping):
            raise TimeMappingError(f"a time mapping must be a dict like TimeMapping().to_dict(), not "
                                   f"{type(values).__name__}")
        try:
            return cls(tuple(values["ms_per_step"]), values.get("onset_ms", 0.0),
                       dict(values.get("state_onset_ms", {})),
                       {k: tuple(v) for k, v in dict(values.get("state_ms_per_step", {})).items()})
        except (KeyError, TypeError) as err:
            raise TimeMappingError(f"time mapping {dict(values)!r} is incomplete ({err}); it needs ms_per_step") \
                from None

    def replace(self, **changes) -> "TimeMapping":
        """A copy with the given fields changed (None: unchanged)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TimeMappingError(f"a time mapping has no field {unknown[0]!r}; its fields: ms_per_step, onset_ms, "
                                   "state_onset_ms, state_ms_per_step")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @staticmethod
    def resolve(given: "TimeMapping | None", stated: "TimeMapping | None", what: str = "recording") -> "TimeMapping":
        """The mapping a command uses: the one ``what`` states (a recording always does; a checkpoint may),
        or else the one given (else the default). Given and stated but different: refused, since the ms
        of a recording or model are its own."""
        if given is None:
            return stated if stated is not None else DEFAULT_MAPPING
        if stated is None or stated == given:
            return given
        raise TimeMappingError(f"the time mapping given ({given.describe()}) conflicts with the {what}'s own "
                               f"({stated.describe()}): milliseconds come from the {what}; drop --ms-per-step "
                               f"(and --onset-ms, --state-onset, --state-ms-per-step), or make the {what} again "
                               "with them")


def _steps(t) -> np.ndarray:
    """Model steps as floats, or one error: numbers >= 0 (fractions allowed: a point between steps; NaN
    allowed: "no step", e.g. a trial that never reached its criterion, gives NaN ms)."""
    try:
        array = np.asarray(t, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or t is None or np.isinf(array).any():
        raise TimeMappingError(f"steps {t!r:.40} must be finite numbers >= 0 (model time steps)")
    if np.any(array < 0):
        raise TimeMappingError(f"step {array.min():g} is before step 0; steps are >= 0")
    return array


def _describe_range(values) -> str:
    low, high = values
    return f"{low:g}" + ("" if low == high else f"-{high:g}")


def check_bins(bins, instants: bool = False, ordered: bool = True) -> np.ndarray:
    """Validate neural time bins: (n, 2) [start, end) ms with start < end (``instants``: start <= end, a
    zero-length bin being an instant), and (``ordered``) sorted and not overlapping."""
    array = np.asarray(bins, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise TimeMappingError(f"time bins must be a list of (start_ms, end_ms) pairs, got shape {array.shape}")
    bad = ~np.isfinite(array).all(1) | ((array[:, 0] > array[:, 1]) if instants else (array[:, 0] >= array[:, 1]))
    if bad.any():
        k = int(np.argmax(bad))
        rule = "start <= end (start == end: the instant start)" if instants else "start < end"
        raise TimeMappingError(f"time bin {k} ({array[k, 0]:g}, {array[k, 1]:g}) must have {rule}, in ms; "
                               "give (start_ms, end_ms)")
    if ordered and np.any(array[1:, 0] < array[:-1, 1]):
        k = int(np.argmax(array[1:, 0] < array[:-1, 1])) + 1
        raise TimeMappingError(f"time bins {k - 1} {tuple(array[k - 1])} and {k} {tuple(array[k])} overlap or "
                               "are out of order; give sorted, non-overlapping bins")
    return array


DEFAULT_MAPPING = TimeMapping()


def latency_ms(t, ms_per_step=DEFAULT_MS_PER_STEP):
    """(earliest, latest) milliseconds after onset for step(s) ``t`` (``TimeMapping(ms_per_step).latency``)."""
    return TimeMapping(ms_per_step).latency(t)
