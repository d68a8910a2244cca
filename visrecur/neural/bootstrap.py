"""Bootstrap over stimuli: confidence intervals of the whole (target, state, time) score table.

A resample draws N stimuli with replacement and keeps every pair (a, b), a < b, of the drawn list
whose two stimuli differ: a stimulus drawn twice would otherwise pair with itself, a diagonal entry
(dissimilarity 0) that no RDM contains; pairs of distinct stimuli drawn several times stay, as often
as they were drawn (as rsatoolbox's bootstrap does).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from .rdm import align, upper_triangle
from .rsa import _check_method, compare, noise_ceiling


def resampled_pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(drawn stimulus indices, condensed indices of the kept pairs) of one resample of n stimuli."""
    drawn = rng.integers(0, n, n)
    a, b = np.triu_indices(n, 1)
    i, j = drawn[a], drawn[b]
    keep = i != j
    lo, hi = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    return drawn, n * lo - lo * (lo + 1) // 2 + hi - lo - 1  # squareform's index of pair (lo, hi)


def bootstrap_scores(model_rdm: xr.DataArray, targets: Sequence[xr.DataArray], method: str = "spearman",
                     n_boot: int = 1000, seed: int = 0, ceilings: bool = True) -> xr.Dataset:
    """Scores of every (state, time) against every target in ``n_boot`` stimulus resamples (the same
    resamples for all targets, so differences between targets are paired). Noise ceilings are
    recomputed in each resample for targets with at least 3 subjects."""
    _check_method(method)
    ids = [str(i) for i in model_rdm["stimulus"].values]
    n = len(ids)
    m = upper_triangle(model_rdm.values).reshape(-1, n * (n - 1) // 2)
    subjects = [upper_triangle(align(t, ids, t.name or "target").values) for t in targets]
    shape = (model_rdm.sizes["state"], model_rdm.sizes["time"])
    score = np.full((n_boot, len(targets)) + shape, np.nan)
    subject_mean = np.full_like(score, np.nan)
    ceiling = np.full((n_boot, len(targets), 2), np.nan)
    rng = np.random.default_rng(seed)
    for k in range(n_boot):
        _, pairs = resampled_pairs(n, rng)
        mk = m[:, pairs]
        for j, subj in enumerate(subjects):
            sk = subj[:, pairs]
            score[k, j] = compare(mk, sk.mean(0, keepdims=True), method)[:, 0].reshape(shape)
            subject_mean[k, j] = compare(mk, sk, method).mean(1).reshape(shape)
            if ceilings and len(sk) >= 3:
                ceiling[k, j] = noise_ceiling(sk, method)
    coords = {"bootstrap": np.arange(n_boot), "target": [str(t.name) for t in targets],
              "state": model_rdm["state"].values, "time": model_rdm["time"].values}
    return xr.Dataset({"score": (("bootstrap", "target", "state", "time"), score),
                       "subject_mean": (("bootstrap", "target", "state", "time"), subject_mean),
                       "noise_ceiling_lower": (("bootstrap", "target"), ceiling[..., 0]),
                       "noise_ceiling_upper": (("bootstrap", "target"), ceiling[..., 1])},
                      coords=coords, attrs={"method": method, "n_boot": n_boot, "seed": seed,
                                            "resampled": "stimuli, with replacement; self-pairs dropped"})


def percentile_ci(samples: xr.DataArray, level: float = 0.95, dim: str = "bootstrap") -> tuple[xr.DataArray, xr.DataArray]:
    """Percentile interval of bootstrap samples (NaN resamples ignored)."""
    import warnings

    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # unreached (state, time) pairs are NaN in every resample: NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        low = samples.reduce(np.nanpercentile, dim=dim, q=tail)
        high = samples.reduce(np.nanpercentile, dim=dim, q=100 - tail)
    return low, high
