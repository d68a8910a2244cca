"""The hierarchy contrast: does target A's best-matching (state, time) come earlier, and in an earlier
state, than target B's? Peaks are taken in each bootstrap resample, so the interval of the difference
carries the uncertainty of both peaks (paired: both targets see the same resampled stimuli)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from visrecur.timing import TimeMapping
from .bootstrap import percentile_ci
from .errors import ScoringError
from .rsa import peak


def _peak_indices(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample (first axis), the state and time index of the highest score in state x time."""
    flat = score.reshape(len(score), -1)
    ok = ~np.isnan(flat).all(1)
    best = np.full(len(flat), -1)
    best[ok] = np.nanargmax(flat[ok], 1)
    s, t = np.divmod(best, score.shape[2])
    return np.where(ok, s, -1), np.where(ok, t, -1)


def peak_contrast(scores: xr.Dataset, boot: xr.Dataset, a: str, b: str, level: float = 0.95,
                  mapping: TimeMapping | None = None) -> dict:
    """Peak (state, time) of targets ``a`` and ``b`` in ``scores["score"]`` (dims target, state, time),
    and the bootstrap interval of the differences a - b in peak time (steps) and peak state (position
    in the model's state order). Returns a flat dict with a plain-words ``verdict`` (its ms from
    ``mapping``, the recording's time mapping)."""
    from visrecur.checks import dataset_arg

    dataset_arg(scores, "scores", ScoringError)
    dataset_arg(boot, "boot", ScoringError)
    for name in (a, b):
        if name not in scores["target"].values:
            raise ScoringError(f"target {name!r} was not scored; scored: {list(scores['target'].values)}")
    states = [str(s) for s in scores["state"].values]
    times = np.asarray(scores["time"].values)
    out = {"target_a": a, "target_b": b, "level": level}
    for key, name in (("a", a), ("b", b)):
        state, time = peak(scores["score"].sel(target=name))
        out[f"peak_state_{key}"], out[f"peak_time_{key}"] = state, time
    diffs = {}
    sa, ta = _peak_indices(boot["score"].sel(target=a).values)
    sb, tb = _peak_indices(boot["score"].sel(target=b).values)
    ok = (sa >= 0) & (sb >= 0)
    diffs["time"] = (times[ta[ok]] - times[tb[ok]]).astype(float)
    diffs["state"] = (sa[ok] - sb[ok]).astype(float)
    for what in ("time", "state"):
        d = xr.DataArray(diffs[what], dims="bootstrap")
        low, high = percentile_ci(d, level)
        point = (out[f"peak_{what}_a"] - out[f"peak_{what}_b"]) if what == "time" else \
            states.index(out["peak_state_a"]) - states.index(out["peak_state_b"])
        out[f"{what}_difference"] = float(point)
        out[f"{what}_difference_ci_low"], out[f"{what}_difference_ci_high"] = float(low), float(high)
        out[f"{what}_a_earlier_fraction"] = float((diffs[what] < 0).mean())
    out["n_boot"] = int(ok.sum())
    out["verdict"] = verdict(out, mapping or TimeMapping())
    return out


def verdict(c: dict, mapping: TimeMapping) -> str:
    """The contrast in plain words."""
    pct = f"{100 * c['level']:.0f}%"

    def where(key):
        low, high = mapping.latency(c[f"peak_time_{key}"], c[f"peak_state_{key}"])
        return f"{c[f'peak_state_{key}']} at t={c[f'peak_time_{key}']} ({low:.0f}-{high:.0f} ms)"

    def sentence(what, unit):
        low, high = c[f"{what}_difference_ci_low"], c[f"{what}_difference_ci_high"]
        side = "before" if high < 0 else "after" if low > 0 else "same"
        words = {("time", "before"): "comes earlier than", ("time", "after"): "comes later than",
                 ("time", "same"): "is not distinguishable in time from",
                 ("state", "before"): "lies in an earlier state than", ("state", "after"): "lies in a later state than",
                 ("state", "same"): "is not distinguishable in state from"}[(what, side)]
        return (f"{c['target_a']}'s peak {words} {c['target_b']}'s (difference {c[f'{what}_difference']:+.0f} "
                f"{unit}, {pct} CI {low:+.0f} to {high:+.0f})")

    return (f"Best match of {c['target_a']}: {where('a')}; of {c['target_b']}: {where('b')}. "
            f"{sentence('time', 'steps')}; {sentence('state', 'states')}.")
