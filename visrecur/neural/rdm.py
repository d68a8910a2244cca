"""Representational dissimilarity matrices: checks, condensed vectors, and model RDMs for every
recorded (state, time step).

An RDM is an ``xarray.DataArray`` whose last two dims are ``stimulus`` and ``stimulus_b`` (both carrying
the stimulus ids), so RDMs from different sources are joined by id, never by position.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import xarray as xr
from scipy.spatial.distance import pdist

from .errors import RDMError, ScoringError

METRICS = ("correlation", "euclidean", "cosine")


def check_square_symmetric(matrices: np.ndarray, name: str, atol: float = 1e-6) -> None:
    """Refuse anything that is not a stack of square, symmetric matrices (NaN diagonals are allowed)."""
    matrices = np.asarray(matrices)
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise RDMError(f"{name}: an RDM must be square (N x N), got shape {matrices.shape}")
    off = ~np.eye(matrices.shape[-1], dtype=bool)
    a, b = matrices[..., off], np.swapaxes(matrices, -1, -2)[..., off]
    bad = ~np.isclose(a, b, atol=atol, rtol=1e-5, equal_nan=True)
    if bad.any():
        k = int(np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(0))[0])
        i, j = np.argwhere(off)[k]
        raise RDMError(f"{name}: the RDM is not symmetric (entry [{i}, {j}] differs from [{j}, {i}]); "
                       "give a symmetric dissimilarity matrix")


def check_content(values: np.ndarray, ids: Sequence[str], name: str) -> None:
    """Refuse RDMs no comparison can use: fewer than 3 stimuli (one pair of dissimilarities has no
    ranks), repeated stimulus ids (joins by id would be ambiguous), a matrix whose dissimilarities are all
    equal (all zero, or constant: every rank correlation with it is undefined, NaN), or a diagonal that
    is not 0 (a stimulus is not dissimilar to itself: a diagonal of 1 is a similarity matrix)."""
    n = values.shape[-1]
    if n < 3:
        raise RDMError(f"{name}: {n} stimuli; an RDM needs at least 3 (3 dissimilarities) to be compared")
    seen = set()
    repeated = next((i for i in ids if i in seen or seen.add(i)), None)
    if repeated is not None:
        raise RDMError(f"{name}: stimulus id {repeated!r} appears more than once; every row needs its own id")
    vectors = upper_triangle(values).reshape(-1, n * (n - 1) // 2)
    flat = np.ptp(vectors, axis=1) == 0
    if flat.any():
        k = int(np.argmax(flat))
        where = f" (matrix {k} of {len(vectors)})" if len(vectors) > 1 else ""
        what = "all zero" if vectors[k, 0] == 0 else f"constant ({vectors[k, 0]:g})"
        raise RDMError(f"{name}: the RDM{where} is {what}: every dissimilarity is the same, so no correlation "
                       "with it is defined; check the file (the right variable? key=) or leave it out")
    diagonal = np.diagonal(values, axis1=-2, axis2=-1)
    bad = np.isfinite(diagonal) & (diagonal != 0)
    if bad.any():
        raise RDMError(f"{name}: the diagonal holds {diagonal[bad].flat[0]:g}, not 0; an RDM holds "
                       "dissimilarities (a stimulus vs itself: 0). Is it a similarity matrix? Give 1 - r")


def as_rdm(values: np.ndarray, ids: Sequence[str], lead: dict | None = None, name: str = "rdm",
           attrs: dict | None = None) -> xr.DataArray:
    """Label a stack of N x N matrices: ``lead`` maps the leading dims to their coordinate values."""
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise RDMError(f"{name}: an RDM must be numbers (N x N or a stack of them), not "
                       f"{type(values).__name__}") from None
    check_square_symmetric(values, name)
    n = values.shape[-1]
    off = ~np.eye(n, dtype=bool)
    if not np.isfinite(values[..., off]).all():
        raise RDMError(f"{name}: the RDM has NaN or infinite dissimilarities off the diagonal")
    if ids is None or isinstance(ids, str) or not hasattr(ids, "__len__"):
        raise RDMError(f"{name}: give the stimulus ids as a list, one per row, not {type(ids).__name__}")
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise RDMError(f"{name}: {n} x {n} RDM but {len(ids)} stimulus ids")
    check_content(values, ids, name)
    lead = lead or {}
    coords = {dim: list(v) for dim, v in lead.items()}
    coords.update(stimulus=ids, stimulus_b=ids)
    return xr.DataArray(values, dims=list(lead) + ["stimulus", "stimulus_b"], coords=coords, name=name,
                        attrs=attrs or {})


def upper_triangle(matrices: np.ndarray) -> np.ndarray:
    """Condensed vectors (i < j, the order of ``scipy.spatial.distance.squareform``) of stacked RDMs."""
    n = np.shape(matrices)[-1]
    i, j = np.triu_indices(n, 1)
    return np.asarray(matrices)[..., i, j]


def align(rdm: xr.DataArray, ids: Sequence[str], what: str = "target") -> xr.DataArray:
    """``rdm`` reordered to ``ids``; refuse (naming the first mismatch) when the stimuli differ."""
    ids = [str(i) for i in ids]
    have = [str(i) for i in rdm["stimulus"].values]
    missing = [i for i in ids if i not in set(have)]
    extra = [i for i in have if i not in set(ids)]
    if missing or extra or len(have) != len(ids):
        first = (f"recording stimulus {missing[0]!r} is not in {what}" if missing
                 else f"{what} stimulus {extra[0]!r} is not in the recording" if extra
                 else "repeated stimulus ids")
        raise RDMError(f"{what} ({rdm.name}) and the recording have different stimuli: {first}; "
                       "record the same stimulus set (e.g. --stimuli 92images) or give an RDM for these stimuli")
    return rdm.sel(stimulus=ids, stimulus_b=ids)


def _features(values: np.ndarray, zscore: bool) -> np.ndarray:
    x = values.reshape(values.shape[0], -1).astype(np.float64)
    if zscore:  # each unit across stimuli, so no unit dominates by its scale; constant units carry nothing
        sd = x.std(0)
        x = (x[:, sd > 0] - x[:, sd > 0].mean(0)) / sd[sd > 0]
    return x


def model_rdms(recording: xr.Dataset, states: Sequence[str] | None = None, times: Sequence[int] | None = None,
               metric: str = "correlation", zscore: bool = False) -> xr.DataArray:
    """RDMs of every recorded (state, time step): dims ``state, time, stimulus, stimulus_b``.

    A (state, step) the state has not reached (NaN in the recording) is all-NaN here and named in
    ``attrs["skipped"]``; a state whose units do not vary over stimuli (so the correlation distance is
    undefined) is NaN as well.
    """
    from visrecur.artifacts.recordings import LATENCY, recorded_states, state_array, time_mapping

    from visrecur.checks import dataset_arg, names_arg

    dataset_arg(recording, "a recording", ScoringError)
    if metric not in METRICS:
        raise ScoringError(f"unknown RDM metric {metric!r}; use one of {', '.join(METRICS)}")
    states = names_arg(states, "states", ScoringError)
    if times is not None and (isinstance(times, (str, int)) or not all(
            isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in times)):
        raise ScoringError(f"times must be a list of whole time steps, e.g. [0, 1, 2], not {times!r:.40}")
    states = list(states) if states else recorded_states(recording) or \
        [v for v in recording.data_vars if "time" in recording[v].dims and "stimulus" in recording[v].dims]
    for state in states:
        if state not in recording.data_vars:
            raise ScoringError(f"state {state!r} is not in this recording; it has {recorded_states(recording)}")
    all_times = [int(t) for t in recording["time"].values]
    times = all_times if times is None else [int(t) for t in times]
    outside = [t for t in times if t not in all_times]
    if outside:
        raise ScoringError(f"time step {outside[0]} is not in the recording (it has steps {all_times})")
    n = recording.sizes["stimulus"]
    out = np.full((len(states), len(times), n, n), np.nan)
    skipped = []
    for a, state in enumerate(states):
        da = state_array(recording, state).sel(time=times)
        for b, t in enumerate(times):
            x = _features(np.asarray(da.isel(time=b).values), zscore)
            if np.isnan(x).any():
                skipped.append(f"{state}@t={t}")
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                d = pdist(x, metric)
            out[a, b] = _square(d, n)
    rdm = xr.DataArray(out, dims=("state", "time", "stimulus", "stimulus_b"),
                       coords={"state": states, "time": times, "stimulus": recording["stimulus"].values.astype(str),
                               "stimulus_b": recording["stimulus"].values.astype(str)}, name="model_rdm")
    # every (state, step)'s milliseconds, from the recording's own time mapping
    mapping = time_mapping(recording)
    ms = [mapping.latency(times, state) for state in states]
    rdm = rdm.assign_coords({name: (("state", "time"), np.array([bounds[k] for bounds in ms]).reshape(len(states), -1))
                             for k, name in enumerate(LATENCY)})
    rdm.attrs = {"time_mapping": json.dumps(mapping.to_dict()),"metric": metric, "zscore_units": int(zscore), "skipped": " ".join(skipped),
                 "description": f"{metric} distance between stimuli's activity patterns"
                                + (" after z-scoring each unit across stimuli" if zscore else "")}
    return rdm


def _square(condensed: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n))
    i, j = np.triu_indices(n, 1)
    m[i, j] = m[j, i] = condensed
    return m
