"""Encoding models for neuroid-level data: cross-validated ridge (or PLS) regression from each recorded
(state, time step) to each neural time bin, scored by per-neuroid Pearson r, with split-half consistency
(Spearman-Brown corrected) as the ceiling.

Input format (as Brain-Score's ``NeuroidAssembly``): an ``xarray.DataArray`` with dims
``presentation, neuroid, time_bin``; a ``stimulus_id`` coordinate on ``presentation`` (one presentation
per repetition: a stimulus id appears once per repetition, and the ids match the recording's stimulus
ids); optionally ``neuroid_id`` on ``neuroid`` and ``time_bin_start`` / ``time_bin_end`` (ms) on
``time_bin``. A plain ``presentation x neuroid`` array is taken as one time bin.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .errors import NeuralDataError, RDMError, ScoringError


def check_assembly(assembly: xr.DataArray) -> xr.DataArray:
    """The assembly with dims (presentation, neuroid, time_bin), or one line saying what is missing."""
    if not isinstance(assembly, xr.DataArray):
        raise NeuralDataError(f"neural data must be an xarray.DataArray presentation x neuroid x time_bin "
                              f"(Brain-Score's layout), not {type(assembly).__name__}")
    if "time_bin" not in assembly.dims:
        assembly = assembly.expand_dims(time_bin=[0], axis=-1)
    if set(assembly.dims) != {"presentation", "neuroid", "time_bin"}:
        raise NeuralDataError(f"neural data must have dims presentation x neuroid x time_bin (Brain-Score's "
                              f"layout); got {assembly.dims}")
    if "stimulus_id" not in assembly.coords:
        raise NeuralDataError("neural data needs a 'stimulus_id' coordinate on 'presentation' to join with the "
                              "recording's stimulus ids")
    return assembly.transpose("presentation", "neuroid", "time_bin")


def stimulus_means(assembly: xr.DataArray) -> xr.DataArray:
    """Mean over repetitions: dims (stimulus, neuroid, time_bin), stimuli in order of first appearance."""
    assembly = check_assembly(assembly)
    ids = assembly["stimulus_id"].values.astype(str)
    order = [str(s) for s in dict.fromkeys(ids)]
    means = np.stack([assembly.values[ids == s].mean(0) for s in order])
    return xr.DataArray(means, dims=("stimulus", "neuroid", "time_bin"),
                        coords={"stimulus": order, **{k: v for k, v in assembly.coords.items()
                                                      if set(v.dims) <= {"neuroid", "time_bin"}}})


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def split_half_consistency(assembly: xr.DataArray, n_splits: int = 10, seed: int = 0) -> xr.DataArray:
    """Per neuroid and time bin: the Pearson r between the stimulus means of two random halves of each
    stimulus's repetitions, Spearman-Brown corrected to the full number of repetitions (2r / (1 + r)),
    averaged over ``n_splits`` random splits."""
    from visrecur.checks import int_arg

    int_arg(n_splits, "n_splits", 1, NeuralDataError)
    assembly = check_assembly(assembly)
    ids = assembly["stimulus_id"].values.astype(str)
    stimuli = list(dict.fromkeys(ids))
    rows = [np.flatnonzero(ids == s) for s in stimuli]
    fewest = min(len(r) for r in rows)
    if fewest < 2:
        raise ScoringError(f"split-half consistency needs at least 2 repetitions of every stimulus; "
                           f"{stimuli[[len(r) for r in rows].index(fewest)]!r} has {fewest}")
    rng = np.random.default_rng(seed)
    values = assembly.values
    total = np.zeros(values.shape[1:])
    for _ in range(n_splits):
        halves = [[], []]
        for r in rows:
            r = rng.permutation(r)
            halves[0].append(values[r[:len(r) // 2]].mean(0))
            halves[1].append(values[r[len(r) // 2:]].mean(0))
        a, b = np.stack(halves[0]), np.stack(halves[1])
        r = _columnwise_pearson(a.reshape(len(a), -1), b.reshape(len(b), -1)).reshape(values.shape[1:])
        total += 2 * r / (1 + r)
    return xr.DataArray(total / n_splits, dims=("neuroid", "time_bin"), name="split_half_consistency",
                        attrs={"description": "Spearman-Brown corrected split-half Pearson r over stimuli"})


def _regression(kind: str, alphas: Sequence[float], n_components: int, n_features: int):
    if kind == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=list(alphas)))
    if kind == "pls":
        return make_pipeline(StandardScaler(), PLSRegression(n_components=min(n_components, n_features), scale=False))
    raise ScoringError(f"unknown encoding model {kind!r}; use 'ridge' or 'pls'")


def encoding_scores(recording: xr.Dataset, assembly: xr.DataArray, states: Sequence[str] | None = None,
                    times: Sequence[int] | None = None, kind: str = "ridge", n_splits: int = 5,
                    alphas: Sequence[float] = tuple(np.logspace(-2, 5, 8)), n_components: int = 25,
                    seed: int = 0, ceiling_splits: int = 10) -> xr.Dataset:
    """Cross-validated encoding of every neural time bin from every (state, time step).

    ``neuroid_r``: Pearson r per neuroid between held-out predictions and the stimulus means;
    ``score``: its median over neuroids; ``ceiling``: the median split-half consistency (NaN with one
    repetition); ``normalised_score`` = score / ceiling. Unreached (state, step) pairs are NaN."""
    from visrecur.artifacts.recordings import recorded_states, state_array

    assembly = check_assembly(assembly)
    means = stimulus_means(assembly)
    ids = [str(s) for s in means["stimulus"].values]
    have = set(str(s) for s in recording["stimulus"].values)
    missing = [s for s in ids if s not in have]
    if missing:
        raise RDMError(f"neural stimulus {missing[0]!r} is not in the recording; record the same stimuli")
    states = list(states) if states else recorded_states(recording)
    for state in states:
        if state not in recording.data_vars:
            raise ScoringError(f"state {state!r} is not in this recording; it has {recorded_states(recording)}")
    all_times = [int(t) for t in recording["time"].values]
    times = all_times if times is None else [int(t) for t in times]
    if any(t not in all_times for t in times):
        raise ScoringError(f"time step {[t for t in times if t not in all_times][0]} is not in the recording "
                           f"(it has steps {all_times})")
    y = means.values  # stimulus, neuroid, time_bin
    n_bins, n_neuroids = y.shape[2], y.shape[1]
    folds = KFold(n_splits, shuffle=True, random_state=seed)
    r = np.full((len(states), len(times), n_bins, n_neuroids), np.nan)
    for a, state in enumerate(states):
        da = state_array(recording, state).sel(stimulus=ids)
        for b, t in enumerate(times):
            x = np.asarray(da.sel(time=t).values, dtype=np.float64).reshape(len(ids), -1)
            if np.isnan(x).any():
                continue  # not reached at this step
            x = x[:, x.std(0) > 0]
            for k in range(n_bins):
                predicted = cross_val_predict(_regression(kind, alphas, n_components, x.shape[1]), x, y[:, :, k],
                                              cv=folds)
                r[a, b, k] = _columnwise_pearson(predicted.reshape(len(ids), -1), y[:, :, k])
    time_bins = {k: ("time_bin", assembly[k].values) for k in ("time_bin_start", "time_bin_end")
                 if k in assembly.coords}
    ds = xr.Dataset({"neuroid_r": (("state", "time", "time_bin", "neuroid"), r),
                     "score": (("state", "time", "time_bin"), np.median(r, -1))},
                    coords={"state": states, "time": times, "time_bin": np.arange(n_bins), **time_bins})
    repeated = min(np.unique(assembly["stimulus_id"].values.astype(str), return_counts=True)[1]) >= 2
    if repeated:
        ceiling = split_half_consistency(assembly, ceiling_splits, seed)
        ds["ceiling"] = ("time_bin", np.median(ceiling.values, 0))
    else:
        ds["ceiling"] = ("time_bin", np.full(n_bins, np.nan))
    ds["normalised_score"] = ds["score"] / ds["ceiling"]
    ds.attrs = {"model": kind, "cv_folds": n_splits, "seed": seed,
                "score": "median over neuroids of the Pearson r of cross-validated predictions",
                "ceiling": "median over neuroids of Spearman-Brown corrected split-half consistency"}
    return ds


def peak_steps(scores: xr.Dataset, state: str) -> np.ndarray:
    """For each neural time bin, the model step of ``state`` that predicts it best."""
    s = scores["score"].sel(state=state)
    return s["time"].values[np.nanargmax(s.transpose("time_bin", "time").values, 1)]
