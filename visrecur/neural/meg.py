"""Time-resolved MEG RDMs and the mapping of model steps onto neural time.

Loaders give ``xarray.DataArray`` with dims ``subject, session, time_ms, stimulus, stimulus_b``:

* Cichy et al. 2014 decoding RDMs (``MEG_decoding_RDMs.mat``, MATLAB v7.3 = HDF5): as h5py reads it one
  array of shape (92, 92, 1301, 2, 16), image x image x time (-100..1200 ms, 1 ms) x session x subject,
  decoding accuracy (higher = more dissimilar), NaN diagonal.
* Algonauts 2019 MEG RDMs: ``MEG_RDMs_early`` (70-90 ms) and ``MEG_RDMs_late`` (140-160 ms), each
  15 subjects x 92 x 92, or 15 x 2 sessions x 92 x 92.

The analysis scores every (state, step) against the subject-mean RDM at every neural time, takes the
neural time at which each step's score peaks, and fits ``peak_ms = onset_ms + ms_per_step * step``
(bootstrap over stimuli for intervals), to set against the paper's 20-50 ms per step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr
from scipy.stats import linregress

from visrecur.timing import DEFAULT_MS_PER_STEP
from .bootstrap import resampled_pairs
from .errors import NeuralDataError, ScoringError
from .rdm import align, as_rdm, upper_triangle
from .rsa import compare, single_threaded_blas
from .targets import CICHY2014, IDS_92

CICHY_MEG_FILE = "MEG_decoding_RDMs.mat"
CICHY_MEG_SOURCE = ("the public data of Cichy, Pantazis & Oliva 2014 (the authors' MEG/fMRI 92-image data "
                    "release, about 2.8 GB)")
ALGONAUTS_SOURCE = "the Algonauts 2019 challenge training data (92-image set, algonauts.csail.mit.edu)"
ALGONAUTS_WINDOWS = {"MEG_RDMs_early": (70.0, 90.0), "MEG_RDMs_late": (140.0, 160.0)}


def _missing(path: Path, source: str) -> NeuralDataError:
    return NeuralDataError(f"{path.name} not found at {str(path)!r}; download it from {source} yourself "
                           "(it is not shipped or fetched by visrecur)")


def _mirror_half_filled(values: np.ndarray) -> np.ndarray:
    """Some releases fill one triangle only (NaN in the other): mirror it, so every RDM is symmetric."""
    n = values.shape[-1]
    lower = np.tril_indices(n, -1)
    upper_vals, lower_vals = np.swapaxes(values, -1, -2)[..., lower[0], lower[1]], values[..., lower[0], lower[1]]
    if np.isnan(lower_vals).all() and not np.isnan(upper_vals).all():
        values = values.copy()
        values[..., lower[0], lower[1]] = upper_vals
    elif np.isnan(upper_vals).all() and not np.isnan(lower_vals).all():
        values = values.copy()
        values[..., lower[1], lower[0]] = lower_vals
    return values


def _window_slice(times: np.ndarray, window: Sequence[float] | None, name: str) -> slice:
    if window is None:
        return slice(0, len(times))
    start, end = (float(v) for v in window)
    if start > end or start < times[0] or end > times[-1]:
        raise ScoringError(f"time window {start:g}..{end:g} ms lies outside {name}'s data "
                           f"({times[0]:g}..{times[-1]:g} ms); choose one inside it")
    inside = np.flatnonzero((times >= start) & (times <= end))
    return slice(int(inside[0]), int(inside[-1]) + 1)


def load_cichy2014_meg(path: str | Path, key: str | None = None, time_window_ms: Sequence[float] | None = None,
                       first_ms: float = -100.0, step_ms: float = 1.0, stimuli: Sequence[str] | None = None,
                       average_sessions: bool = True) -> xr.DataArray:
    """Cichy 2014 MEG decoding RDMs, reading only ``time_window_ms`` (inclusive) from disk. The time axis is
    ``first_ms + step_ms * k`` (-100..1200 ms in the released file). Sessions are averaged by default (one
    session dim of length 1 remains)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise _missing(path, CICHY_MEG_SOURCE)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise NeuralDataError(f"{path.name} is not a MATLAB v7.3 (HDF5) file; the Cichy 2014 MEG RDMs are "
                              "stored as one") from None
    with f:
        arrays = {k: v for k, v in f.items() if isinstance(v, h5py.Dataset) and v.ndim == 5}
        if key is None and len(arrays) != 1:
            raise NeuralDataError(f"{path.name}: expected one 5-D array (image x image x time x session x "
                                  f"subject), found {sorted(arrays) or 'none'}; give key=")
        data = arrays[key] if key else next(iter(arrays.values()))
        if data.ndim != 5 or data.shape[0] != data.shape[1]:
            raise NeuralDataError(f"{path.name}: shape {data.shape} is not image x image x time x session x "
                                  "subject (as h5py reads MATLAB's subject x session x time x image x image)")
        n, _, n_time, n_sessions, n_subjects = data.shape
        times = first_ms + step_ms * np.arange(n_time)
        window = _window_slice(times, time_window_ms, path.name)
        # read a block of time points at a time, so memory stays at one block of all subjects
        blocks = []
        for start in range(window.start, window.stop, 64):
            block = np.asarray(data[:, :, start:min(start + 64, window.stop)], dtype=np.float64)
            block = block.transpose(4, 3, 2, 0, 1)  # subject, session, time, image, image
            blocks.append(block.mean(1, keepdims=True) if average_sessions else block)
    values = _mirror_half_filled(np.concatenate(blocks, axis=2))
    ids = list(stimuli) if stimuli is not None else IDS_92 if n == 92 else None
    if ids is None:
        raise NeuralDataError(f"{path.name}: {n} images, not the 92-image set; give stimuli=[...] in matrix order")
    sessions = ["mean"] if average_sessions else [f"session{k + 1}" for k in range(n_sessions)]
    rdm = as_rdm(values, ids, {"subject": [f"S{k + 1:02d}" for k in range(n_subjects)], "session": sessions,
                               "time_ms": times[window]}, "cichy2014_meg",
                 {"paper": CICHY2014, "file": path.name, "source": CICHY_MEG_SOURCE, "modality": "MEG",
                  "dissimilarity": "pairwise decoding accuracy (%)", "species": "human",
                  "sessions": "averaged" if average_sessions else "separate"})
    rdm["time_ms"].attrs["units"] = "ms after stimulus onset"
    return rdm


def load_algonauts2019_meg(path: str | Path, stimuli: Sequence[str] | None = None) -> xr.DataArray:
    """Algonauts 2019 MEG RDMs (``MEG_RDMs_early`` and ``MEG_RDMs_late`` in one .mat or .npz) as two
    time points (80 and 150 ms, the windows' centres; the windows are in ``window_start_ms`` /
    ``window_end_ms``)."""
    from .targets import _loadmat

    path = Path(path)
    if not path.is_file():
        raise _missing(path, ALGONAUTS_SOURCE)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            entries = {k: z[k] for k in z.files}
    else:
        entries = _loadmat(path)
    missing = [k for k in ALGONAUTS_WINDOWS if k not in entries]
    if missing:
        raise NeuralDataError(f"{path.name} has no {missing[0]!r}; Algonauts 2019 MEG files hold "
                              f"{' and '.join(ALGONAUTS_WINDOWS)}")
    stacks = []
    for k in ALGONAUTS_WINDOWS:
        v = np.asarray(entries[k], dtype=np.float64)
        if v.ndim == 3:
            v = v[:, None]  # no sessions axis: one session
        if v.ndim != 4 or v.shape[-1] != v.shape[-2]:
            raise NeuralDataError(f"{path.name}:{k}: shape {v.shape} is not subjects (x sessions) x N x N")
        stacks.append(v)
    values = np.stack(stacks, axis=2)  # subject, session, time, image, image
    n = values.shape[-1]
    ids = list(stimuli) if stimuli is not None else IDS_92 if n == 92 else None
    if ids is None:
        raise NeuralDataError(f"{path.name}: {n} images, not the 92-image set; give stimuli=[...] in matrix order")
    centres = [(a + b) / 2 for a, b in ALGONAUTS_WINDOWS.values()]
    rdm = as_rdm(values, ids, {"subject": [f"S{k + 1:02d}" for k in range(values.shape[0])],
                               "session": [f"session{k + 1}" for k in range(values.shape[1])], "time_ms": centres},
                 "algonauts2019_meg", {"paper": CICHY2014 + " (Algonauts 2019 release)", "file": path.name,
                                       "source": ALGONAUTS_SOURCE, "modality": "MEG", "species": "human"})
    return rdm.assign_coords(window_start_ms=("time_ms", [w[0] for w in ALGONAUTS_WINDOWS.values()]),
                             window_end_ms=("time_ms", [w[1] for w in ALGONAUTS_WINDOWS.values()]))


def _condensed(model_rdm: xr.DataArray, meg: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    ids = [str(i) for i in model_rdm["stimulus"].values]
    meg = align(meg, ids, str(meg.name))
    n = len(ids)
    m = upper_triangle(model_rdm.transpose("state", "time", "stimulus", "stimulus_b").values).reshape(-1, n * (n - 1) // 2)
    group = upper_triangle(meg.mean([d for d in ("subject", "session") if d in meg.dims])
                           .transpose("time_ms", "stimulus", "stimulus_b").values)
    return m, group


def meg_scores(model_rdm: xr.DataArray, meg: xr.DataArray, method: str = "spearman") -> xr.DataArray:
    """Score of every (state, step) against the subject- and session-mean MEG RDM at every neural time:
    dims ``state, time, time_ms`` (NaN where the state has not arrived)."""
    from visrecur.checks import dataarray_arg

    dataarray_arg(model_rdm, "model_rdm", ScoringError)
    dataarray_arg(meg, "meg", ScoringError)
    m, group = _condensed(model_rdm, meg)
    values = compare(m, group, method).reshape(model_rdm.sizes["state"], model_rdm.sizes["time"], -1)
    return xr.DataArray(values, dims=("state", "time", "time_ms"),
                        coords={"state": model_rdm["state"].values, "time": model_rdm["time"].values,
                                "time_ms": meg["time_ms"].values}, name="meg_score",
                        attrs={"units": f"{method} correlation between RDMs", "method": method,
                               "target": str(meg.name)})


def peak_latencies(scores: xr.DataArray) -> xr.Dataset:
    """Per (state, step): the neural time of its highest score; per state: the neural time and step of
    its highest score over all its steps."""
    values = scores.transpose("state", "time", "time_ms").values
    ms = scores["time_ms"].values
    reached = ~np.isnan(values).all(-1)
    per_step = np.full(reached.shape, np.nan)
    per_step[reached] = ms[np.nanargmax(values[reached], -1)]
    state_ms, state_step = [], []
    for k in range(len(values)):
        if not reached[k].any():
            state_ms.append(np.nan)
            state_step.append(-1)
            continue
        t, tau = np.unravel_index(np.nanargmax(values[k]), values[k].shape)
        state_ms.append(ms[tau])
        state_step.append(int(scores["time"].values[t]))
    return xr.Dataset({"peak_ms": (("state", "time"), per_step),
                       "state_peak_ms": ("state", state_ms), "state_peak_step": ("state", state_step)},
                      coords={"state": scores["state"].values, "time": scores["time"].values})


def _fit(steps: np.ndarray, peak_ms: np.ndarray) -> tuple[float, float, float]:
    ok = ~np.isnan(peak_ms)
    if ok.sum() < 2:
        return np.nan, np.nan, np.nan
    fit = linregress(steps[ok], peak_ms[ok])
    return float(fit.slope), float(fit.intercept), float(fit.rvalue ** 2)


def fit_step_latency(model_rdm: xr.DataArray, meg: xr.DataArray, state: str, method: str = "spearman",
                     n_boot: int = 200, seed: int = 0, level: float = 0.95,
                     paper_ms_per_step=DEFAULT_MS_PER_STEP) -> dict:
    """Fit ``peak_ms(step) = onset_ms + ms_per_step * step`` over the steps ``state`` was reached at, with
    percentile intervals from ``n_boot`` stimulus resamples; returns a flat dict with a sentence."""
    from visrecur.checks import dataarray_arg, int_arg, seed_arg

    int_arg(n_boot, "n_boot (--meg-bootstrap)", 0, ScoringError)
    seed_arg(seed, "seed (--seed)", ScoringError)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ScoringError(f"level (--ci) {level!r} must lie between 0 and 1, e.g. 0.95")
    dataarray_arg(model_rdm, "model_rdm", ScoringError)
    if state not in model_rdm["state"].values:
        raise ScoringError(f"state {state!r} is not in the model RDMs; they have {list(model_rdm['state'].values)}")
    one = model_rdm.sel(state=[state])
    steps = one["time"].values.astype(float)
    scores = meg_scores(one, meg, method)
    peaks = peak_latencies(scores)["peak_ms"].sel(state=state).values
    if (~np.isnan(peaks)).sum() < 2:
        raise ScoringError(f"state {state!r} is reached at fewer than 2 recorded steps; record more steps")
    slope, onset, r2 = _fit(steps, peaks)
    m, group = _condensed(one, meg)
    n = one.sizes["stimulus"]
    ms = meg["time_ms"].values
    rng = np.random.default_rng(seed)
    boot = np.full((n_boot, 2), np.nan)
    with single_threaded_blas():
        for k in range(n_boot):
            _, pairs = resampled_pairs(n, rng)
            s = compare(m[:, pairs], group[:, pairs], method)
            ok = ~np.isnan(s).all(1)
            p = np.full(len(s), np.nan)
            p[ok] = ms[np.nanargmax(s[ok], 1)]
            boot[k] = _fit(steps, p)[:2]
    tail = (1 - level) / 2 * 100
    (slope_low, onset_low), (slope_high, onset_high) = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
    low, high = paper_ms_per_step
    relation = ("inside" if low <= slope_low and slope_high <= high else
                "overlapping" if slope_low <= high and slope_high >= low else "outside")
    sentence = (f"{state}: peak neural latency = {onset:.0f} ms + {slope:.1f} ms x step "
                f"({100 * level:.0f}% CI {slope_low:.1f} to {slope_high:.1f} ms per step, onset {onset_low:.0f} to "
                f"{onset_high:.0f} ms; R^2 {r2:.2f}); the interval lies {relation} the paper's {low:g}-{high:g} "
                "ms per step")
    return {"state": state, "ms_per_step": slope, "ms_per_step_ci_low": float(slope_low),
            "ms_per_step_ci_high": float(slope_high), "onset_ms": onset, "onset_ms_ci_low": float(onset_low),
            "onset_ms_ci_high": float(onset_high), "r_squared": r2, "n_boot": n_boot, "level": level,
            "paper_relation": relation, "peak_ms_per_step": " ".join(f"t{int(t)}:{p:g}" for t, p in zip(steps, peaks)),
            "sentence": sentence}
