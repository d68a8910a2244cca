"""Model steps onto MEG time from the whole time course: onset and ms per step fitted jointly.

``subject_scores`` scores every (state, step) against every subject's MEG RDM at every neural time,
streaming the MEG file a block of time points at a time (memory: one block of all subjects, not the file).
``fit_time_warp`` fits the linear warp ``t_ms = onset_ms + ms_per_step * step`` to the subject-mean
score matrix (step x neural time) and bootstraps subjects for intervals.

Why not each step's peak time: when the MEG signal is weak, a step's score at time t is close to a
covariance, sum_k C[step, k] g_k(t), where C is the correlation between the model's step RDMs and g_k
the time course of step k's pattern in the MEG. Neighbouring steps share most of their RDM, so their
scores peak together, between their true times. The fit here is the maximum-likelihood one for that
model (score matrix = a C G + noise whose covariance over steps is C): for every candidate warp and
pattern width, with G the Gaussian bumps on the warp path, it maximises

    <G, M> / sqrt(<G, C G>)

(M the subject-mean score matrix): the path sum of M smoothed by the bump, divided by how much the
path's bumps are expected to agree on their own through C. With C = identity it is the plain path sum.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from visrecur.timing import DEFAULT_MS_PER_STEP
from .errors import NeuralDataError, ScoringError
from .rdm import align, upper_triangle
from .rsa import compare, single_threaded_blas

WIDTHS_MS = (5.0, 7.0, 10.0, 14.0, 20.0, 28.0, 40.0)  # sqrt(2) apart


def _condensed_blocks(values: np.ndarray) -> np.ndarray:
    """(subject, session, time, N, N) -> subject x time x pairs, sessions averaged; a release filling only
    the lower triangle is read from there."""
    upper = upper_triangle(values.mean(1))
    if np.isnan(upper).all():
        upper = upper_triangle(np.swapaxes(values, -1, -2).mean(1))
    return upper


def subject_scores(model_rdm: xr.DataArray, meg, method: str = "spearman", *, stimuli: Sequence[str] | None = None,
                   time_window_ms: Sequence[float] | None = None, first_ms: float = -100.0, step_ms: float = 1.0,
                   last_ms: float | None = 1200.0, key: str | None = None, block: int = 32) -> xr.DataArray:
    """Every (state, step) against every subject's (session-mean) MEG RDM at every neural time: dims
    ``subject, state, time, time_ms``. ``meg`` is the Cichy 2014 file (streamed; its time axis must be
    ``first_ms..last_ms`` in ``step_ms`` steps, the released -100..1200 ms by default) or a loaded MEG
    DataArray (subject, session, time_ms, stimulus, stimulus_b)."""
    from .meg import cichy2014_blocks, stimulus_ids

    ids = [str(i) for i in model_rdm["stimulus"].values]
    if isinstance(meg, xr.DataArray):
        meg = align(meg, ids, str(meg.name)).transpose("subject", "session", "time_ms", "stimulus", "stimulus_b")
        times = meg["time_ms"].values
        subjects = [str(s) for s in meg["subject"].values]
        blocks = ((times[k:k + block], meg.values[:, :, k:k + block]) for k in range(0, len(times), block))
        order = None
    else:
        path = Path(meg)
        n_file, _, n_subjects, times, blocks = cichy2014_blocks(path, key, time_window_ms, first_ms, step_ms,
                                                                last_ms, average_sessions=True, block=block)
        file_ids = stimulus_ids(n_file, stimuli, path.name)
        missing = [i for i in ids if i not in set(file_ids)]
        if missing:
            raise NeuralDataError(f"{path.name}: recording stimulus {missing[0]!r} is not among the file's images; "
                                  "record the same stimulus set or give stimuli= in the file's matrix order")
        order = np.array([file_ids.index(i) for i in ids])
        subjects = [f"S{k + 1:02d}" for k in range(n_subjects)]
    def condensed():
        for block_times, values in blocks:
            if order is not None:
                values = values[..., order[:, None], order[None, :]]
            yield _condensed_blocks(values)

    return scores_from_blocks(model_rdm, times, subjects, condensed(), method)


def scores_from_blocks(model_rdm: xr.DataArray, times: Sequence[float], subjects: Sequence[str], blocks,
                       method: str = "spearman") -> xr.DataArray:
    """``subject_scores`` from blocks of condensed MEG RDMs (subject x time x pairs, in the model's stimulus
    order and squareform's pair order) that together cover ``times`` in order."""
    ids = [str(i) for i in model_rdm["stimulus"].values]
    n = len(ids)
    m = upper_triangle(model_rdm.transpose("state", "time", "stimulus", "stimulus_b").values)
    m = m.reshape(-1, n * (n - 1) // 2)
    out = np.full((len(subjects), len(m), len(times)), np.nan)
    done = 0
    with single_threaded_blas():
        for vectors in blocks:
            s, t = vectors.shape[:2]
            r = compare(m, vectors.reshape(s * t, -1), method)
            out[:, :, done:done + t] = r.reshape(len(m), s, t).transpose(1, 0, 2)
            done += t
    if done != len(times):
        raise NeuralDataError(f"the MEG blocks held {done} time points, not the {len(times)} stated")
    sizes = (model_rdm.sizes["state"], model_rdm.sizes["time"])
    scores = xr.DataArray(out.reshape(len(subjects), *sizes, len(times)), dims=("subject", "state", "time", "time_ms"),
                          coords={"subject": list(subjects), "state": model_rdm["state"].values,
                                  "time": model_rdm["time"].values, "time_ms": np.asarray(times, float)},
                          name="meg_subject_score",
                          attrs={"units": f"{method} correlation between RDMs", "method": method})
    # how alike the model's steps are (same comparison): the fit's C, as JSON so the scores save to netCDF
    scores.attrs["step_similarity"] = json.dumps(np.round(compare(m, m, method), 12).reshape(*sizes, *sizes).tolist())
    return scores


def _objective(mean: np.ndarray, c: np.ndarray, steps: np.ndarray, ms: np.ndarray, onsets: np.ndarray,
               slopes: np.ndarray, widths: Sequence[float]) -> np.ndarray:
    """<G, M> / sqrt(<G, C G>) for every width x slope x onset (NaN where the path leaves the data)."""
    from scipy.ndimage import gaussian_filter1d

    dt = float(ms[1] - ms[0])
    out = np.full((len(widths), len(slopes), len(onsets)), np.nan)
    path = onsets[None, :, None] + slopes[:, None, None] * steps[None, None, :]  # slope, onset, step
    inside = ((path >= ms[0]) & (path <= ms[-1])).all(-1)
    position = (path - ms[0]) / dt
    lo = np.clip(np.floor(position).astype(int), 0, len(ms) - 2)
    frac = position - lo
    gaps = (steps[:, None] - steps[None, :]) ** 2
    for a, width in enumerate(widths):
        smooth = gaussian_filter1d(mean, width / dt, axis=-1, mode="constant")  # <g_k, M_k> at every centre
        k = np.arange(len(steps))
        numerator = ((1 - frac) * smooth[k, lo] + frac * smooth[k, lo + 1]).sum(-1)
        # <g_k, g_l> of unit-height Gaussians = sqrt(pi) w exp(-(slope (step_k - step_l))^2 / (4 w^2)) (in samples)
        overlap = np.exp(-(slopes[:, None, None] ** 2) * gaps[None] / (4 * width ** 2))
        energy = np.sqrt(np.pi) * (width / dt) * (c[None] * overlap).sum((1, 2))
        # <g_k, M_k> = sqrt(2 pi) w * (M_k smoothed by the normalised kernel)
        out[a] = np.where(inside, numerator * np.sqrt(2 * np.pi) * (width / dt) / np.sqrt(energy)[:, None], np.nan)
    return out


def _best(mean, c, steps, ms, onsets, slopes, widths, coarse: int = 8) -> tuple[float, float, float, float]:
    """The best (slope, onset, width, objective): on a grid ``coarse`` times sparser first, then at full
    resolution around the coarse optimum (the objective is smooth on the scale of the narrowest width)."""
    j = _objective(mean, c, steps, ms, onsets[::coarse], slopes[::coarse], widths)
    if np.isnan(j).all():
        return np.nan, np.nan, np.nan, np.nan
    a, b, o = np.unravel_index(np.nanargmax(j), j.shape)
    b, o = b * coarse, o * coarse
    near_s = slopes[max(b - coarse, 0):b + coarse + 1]
    near_o = onsets[max(o - coarse, 0):o + coarse + 1]
    near_w = np.geomspace(widths[a] / np.sqrt(2), widths[a] * np.sqrt(2), 9)  # the width as finely as the warp
    j = _objective(mean, c, steps, ms, near_o, near_s, near_w)
    a, b, o = np.unravel_index(np.nanargmax(j), j.shape)
    return float(near_s[b]), float(near_o[o]), float(near_w[a]), float(j[a, b, o])


def fit_time_warp(scores: xr.DataArray, state: str, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                  ms_per_step_range: Sequence[float] = (2.0, 100.0), ms_per_step_resolution: float = 0.25,
                  onset_resolution_ms: float | None = None, widths_ms: Sequence[float] = WIDTHS_MS,
                  paper_ms_per_step=DEFAULT_MS_PER_STEP) -> dict:
    """Fit ``t_ms = onset_ms + ms_per_step * step`` for ``state`` from ``subject_scores`` output, using every
    reached step's whole time course, with percentile intervals from ``n_boot`` resamples of subjects.
    Returns a flat dict with a sentence."""
    if state not in scores["state"].values:
        raise ScoringError(f"state {state!r} is not in the scores; they have {list(scores['state'].values)}")
    one = scores.sel(state=state).transpose("subject", "time", "time_ms")
    values = one.values
    reached = ~np.isnan(values).all((0, 2))
    if reached.sum() < 2:
        raise ScoringError(f"state {state!r} is reached at fewer than 2 recorded steps; record more steps")
    n_subjects = values.shape[0]
    if n_subjects < 2 and n_boot:
        raise ScoringError("bootstrapping subjects needs at least 2 subjects; give n_boot=0 for a point estimate")
    values = values[:, reached]
    steps = one["time"].values[reached].astype(float)
    ms = one["time_ms"].values.astype(float)
    if len(ms) < 3 or not np.allclose(np.diff(ms), ms[1] - ms[0]):
        raise ScoringError("the warp fit needs MEG times on an even grid of at least 3 points (e.g. the Cichy 2014 "
                           "file's 1 ms steps); Algonauts-style windows are too few")
    state_index = list(scores["state"].values).index(state)
    k = np.flatnonzero(reached)
    c = np.asarray(json.loads(scores.attrs["step_similarity"]), dtype=float)[state_index, :, state_index, :]
    c = c[np.ix_(k, k)]
    dt = float(ms[1] - ms[0])
    slopes = np.arange(ms_per_step_range[0], ms_per_step_range[1] + 1e-9, ms_per_step_resolution)
    onset_step = onset_resolution_ms or dt / 2
    onsets = np.arange(ms[0] - slopes.max() * steps.max(), ms[-1] + 1e-9, onset_step)
    values = np.nan_to_num(values)  # a constant RDM's NaN scores carry nothing
    slope, onset, width, objective = _best(values.mean(0), c, steps, ms, onsets, slopes, widths_ms)
    rng = np.random.default_rng(seed)
    boot = np.full((n_boot, 2), np.nan)
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n_subjects, n_subjects), minlength=n_subjects)
        boot[b] = _best(np.tensordot(counts / n_subjects, values, 1), c, steps, ms, onsets, slopes, widths_ms)[:2]
    tail = (1 - level) / 2 * 100
    if n_boot:
        (slope_low, onset_low), (slope_high, onset_high) = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
        # every estimate is a grid point: the interval reaches half a grid step further on each side
        slope_low, slope_high = slope_low - ms_per_step_resolution / 2, slope_high + ms_per_step_resolution / 2
        onset_low, onset_high = onset_low - onset_step / 2, onset_high + onset_step / 2
    else:
        slope_low = slope_high = onset_low = onset_high = np.nan
    low, high = paper_ms_per_step
    relation = ("inside" if low <= slope_low and slope_high <= high else
                "overlapping" if slope_low <= high and slope_high >= low else "outside")
    at_edge = slope in (slopes[0], slopes[-1])
    sentence = (f"{state}: neural time = {onset:.0f} ms + {slope:.1f} ms x step, fitted on whole time courses "
                f"({100 * level:.0f}% CI over {n_boot} subject resamples: {slope_low:.1f} to {slope_high:.1f} ms per "
                f"step, onset {onset_low:.0f} to {onset_high:.0f} ms; pattern width {width:.1f} ms); the interval lies "
                f"{relation} the paper's {low:g}-{high:g} ms per step"
                + ("; the best slope is at the edge of the searched range, widen ms_per_step_range" if at_edge else ""))
    return {"state": state, "ms_per_step": slope, "ms_per_step_ci_low": float(slope_low),
            "ms_per_step_ci_high": float(slope_high), "onset_ms": onset, "onset_ms_ci_low": float(onset_low),
            "onset_ms_ci_high": float(onset_high), "width_ms": width, "objective": objective,
            "n_subjects": n_subjects, "n_boot": n_boot, "level": level, "paper_relation": relation,
            "steps": " ".join(str(int(s)) for s in steps), "fit": "joint warp over whole time courses",
            "sentence": sentence}
