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
from .rsa import _check_method, _standardise, compare, noise_ceiling, single_threaded_blas


def resampled_pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(drawn stimulus indices, condensed indices of the kept pairs) of one resample of n stimuli."""
    drawn = rng.integers(0, n, n)
    a, b = np.triu_indices(n, 1)
    i, j = drawn[a], drawn[b]
    keep = i != j
    lo, hi = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    return drawn, n * lo - lo * (lo + 1) // 2 + hi - lo - 1  # squareform's index of pair (lo, hi)


class WeightedRanks:
    """Average ranks of every row of ``x`` (R x P), within a resample given as a count per entry.

    Rows are sorted once; a resample then needs only O(R x P) sums: an entry in a tie group drawn W
    times in all, after C draws of smaller values, has rank C + (W + 1) / 2, as
    ``scipy.stats.rankdata`` ranks the resampled vector. Means of subjects commute with resampling, so
    every vector a resample needs (model rows, subjects, their mean, leave-one-out means) is such a row.
    """

    def __init__(self, x: np.ndarray):
        self.shape = x.shape
        rows, n = x.shape
        order = np.argsort(x, axis=1, kind="stable")
        ordered = np.take_along_axis(x, order, 1)
        starts = np.ones(x.shape, dtype=bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        group = np.cumsum(starts, 1) - 1  # tie group of each sorted entry
        offset = np.arange(rows)[:, None] * n
        self.sorted_group = (group + offset).ravel()
        self.order = order
        original = np.empty_like(group)
        np.put_along_axis(original, order, group, 1)
        self.original_group = original + offset  # flat tie group of each entry in its original place

    def __call__(self, counts: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Ranks of the resampled vectors ``row[pairs]``, where ``counts`` = bincount(pairs)."""
        rows, n = self.shape
        drawn = np.bincount(self.sorted_group, counts[self.order].ravel(), rows * n).reshape(rows, n)
        rank = np.cumsum(drawn, 1)
        drawn *= 0.5
        rank -= drawn
        rank += 0.5  # = draws before the group + (W + 1) / 2
        return rank.ravel()[self.original_group[:, pairs]]


def bootstrap_scores(model_rdm: xr.DataArray, targets: Sequence[xr.DataArray], method: str = "spearman",
                     n_boot: int = 1000, seed: int = 0, ceilings: bool = True) -> xr.Dataset:
    """Scores of every (state, time) against every target in ``n_boot`` stimulus resamples (the same
    resamples for all targets, so differences between targets are paired). Noise ceilings are
    recomputed in each resample for targets with at least 3 subjects. Spearman and Pearson take a few
    milliseconds a resample; Kendall's tau-a is quadratic in the number of pairs and far slower."""
    _check_method(method)
    ids = [str(i) for i in model_rdm["stimulus"].values]
    n = len(ids)
    n_pairs = n * (n - 1) // 2
    m = upper_triangle(model_rdm.values).reshape(-1, n_pairs)
    reached = np.isfinite(m).all(1)
    # every vector a resample needs, stacked: reached model rows, then per target its subjects, their
    # mean and (for a ceiling) each subject's leave-one-out mean
    blocks, parts = [m[reached]], []
    for t in targets:
        subj = upper_triangle(align(t, ids, t.name or "target").values)
        s = len(subj)
        with_ceiling = ceilings and s >= 3
        vectors = [subj, subj.mean(0, keepdims=True)] + ([(subj.sum(0) - subj) / (s - 1)] if with_ceiling else [])
        start = sum(len(b) for b in blocks)
        parts.append((s, start, with_ceiling))
        blocks.extend(vectors)
    rows = np.concatenate(blocks)
    ranker = WeightedRanks(rows) if method == "spearman" else None
    n_model = int(reached.sum())
    shape = (model_rdm.sizes["state"], model_rdm.sizes["time"])
    score = np.full((n_boot, len(targets), len(m)), np.nan)
    subject_mean = np.full_like(score, np.nan)
    ceiling = np.full((n_boot, len(targets), 2), np.nan)
    rng = np.random.default_rng(seed)
    with single_threaded_blas():
        for k in range(n_boot):
            _, pairs = resampled_pairs(n, rng)
            if method == "spearman":
                values = ranker(np.bincount(pairs, minlength=n_pairs).astype(float), pairs)
            else:
                values = rows[:, pairs]
            score[k], subject_mean[k], ceiling[k] = _resample_scores(values, method, n_model, parts, reached)
    coords = {"bootstrap": np.arange(n_boot), "target": [str(t.name) for t in targets],
              "state": model_rdm["state"].values, "time": model_rdm["time"].values}
    dims = ("bootstrap", "target", "state", "time")
    return xr.Dataset({"score": (dims, score.reshape((n_boot, len(targets)) + shape)),
                       "subject_mean": (dims, subject_mean.reshape((n_boot, len(targets)) + shape)),
                       "noise_ceiling_lower": (("bootstrap", "target"), ceiling[..., 0]),
                       "noise_ceiling_upper": (("bootstrap", "target"), ceiling[..., 1])},
                      coords=coords, attrs={"method": method, "n_boot": n_boot, "seed": seed,
                                            "resampled": "stimuli, with replacement; self-pairs dropped"})


def _resample_scores(values, method, n_model, parts, reached):
    """(score, subject mean, ceiling) of every target in one resample; ``values`` are the stacked rows."""
    score = np.full((len(parts), len(reached)), np.nan)
    subject_mean = np.full_like(score, np.nan)
    ceiling = np.full((len(parts), 2), np.nan)
    z = _standardise(values) if method != "kendall_tau_a" else values
    model = z[:n_model]
    products = model @ z[n_model:].T if method != "kendall_tau_a" else None  # every model-target r at once
    for j, (s, start, with_ceiling) in enumerate(parts):
        subj, mean = z[start:start + s], z[start + s:start + s + 1]
        if method == "kendall_tau_a":
            score[j, reached] = compare(model, mean, method)[:, 0]
            subject_mean[j, reached] = compare(model, subj, method).mean(1)
            if with_ceiling:
                ceiling[j] = noise_ceiling(subj, method)
            continue
        product = products[:, start - n_model:start - n_model + s + 1]
        score[j, reached] = product[:, s]
        subject_mean[j, reached] = product[:, :s].mean(1)
        if with_ceiling:
            loo = z[start + s + 1:start + 2 * s + 1]
            ceiling[j] = np.einsum("ij,ij->", subj, loo) / s, (subj @ mean[0]).mean()
    return score, subject_mean, ceiling


def percentile_ci(samples: xr.DataArray, level: float = 0.95, dim: str = "bootstrap") -> tuple[xr.DataArray, xr.DataArray]:
    """Percentile interval of bootstrap samples (NaN resamples ignored)."""
    import warnings

    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # unreached (state, time) pairs are NaN in every resample: NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        low = samples.reduce(np.nanpercentile, dim=dim, q=tail)
        high = samples.reduce(np.nanpercentile, dim=dim, q=100 - tail)
    return low, high
