"""Paired comparison of two models' RDM scores against one target: the difference, its bootstrap interval
and a p-value, with the same resamples for both models (and a Benjamini-Hochberg correction when a
whole state x time table is tested).

A resample draws, as rsatoolbox's two-factor bootstrap does, the stimuli (rows and columns of every RDM:
``resampled_pairs``, self-pairs dropped) and/or the target's subjects (which subject RDMs are
averaged), both with replacement; both models are scored on exactly that resample, so what the two
scores share (the stimuli, the subjects) cancels in their difference. The draw order is fixed:
``rng = numpy.random.default_rng(seed)``, then per resample the N stimulus indices, then the S subject
indices.

p-value (two-sided, bootstrap proportion): with d_k the difference in resample k of n finite ones,
``p = min(1, 2 * min(#(d_k <= 0) + 1, #(d_k >= 0) + 1) / (n + 1))``: twice the smaller tail, counting
the observed difference as one more sample so that p is never 0 (its smallest value is 2 / (n + 1)).
Identical models give d_k = 0 in every resample, so p = 1.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .bootstrap import WeightedRanks, percentile_ci, resampled_pairs
from .errors import RDMError, ScoringError
from .rdm import align, model_rdms, upper_triangle
from .rsa import _check_method, average_ranks, compare, single_threaded_blas

RESAMPLE = ("auto", "stimuli", "subjects", "both")
MEASURES = ("score", "subject_mean")
AVERAGED_DIMS = ("seed",)  # a control drawn from several seeds is scored as the mean over its seeds


def _as_rdm(x, what: str) -> xr.DataArray:
    """A model RDM stack (dims ..., stimulus, stimulus_b), or a recording turned into one."""
    if isinstance(x, xr.Dataset):
        return model_rdms(x)
    if not isinstance(x, xr.DataArray) or x.dims[-2:] != ("stimulus", "stimulus_b"):
        raise RDMError(f"model {what} must be an RDM (dims ..., stimulus, stimulus_b; visrecur.neural.model_rdms) "
                       f"or a recording, not {type(x).__name__}")
    return x


def same_stimuli(a: xr.DataArray, b: xr.DataArray, names=("a", "b")) -> list[str]:
    """The stimulus ids both RDMs share, in a's order; refuse (naming the first id that differs) when the
    two were recorded on different stimuli."""
    ids_a, ids_b = ([str(i) for i in r["stimulus"].values] for r in (a, b))
    if sorted(ids_a) != sorted(ids_b):
        k = next((k for k, (i, j) in enumerate(zip(ids_a, ids_b)) if i != j), min(len(ids_a), len(ids_b)))
        first_a = ids_a[k] if k < len(ids_a) else "nothing (it has fewer stimuli)"
        first_b = ids_b[k] if k < len(ids_b) else "nothing (it has fewer stimuli)"
        raise RDMError(f"models {names[0]} and {names[1]} were recorded on different stimuli: stimulus {k + 1} is "
                       f"{first_a!r} in {names[0]} but {first_b!r} in {names[1]}; record both on the same "
                       "stimulus set")
    return ids_a


def _rows(rdm: xr.DataArray, ids: list[str]) -> tuple[np.ndarray, list[str], dict]:
    """Condensed vectors of every cell (leading dims flattened), the leading dims and their coords."""
    rdm = rdm.sel(stimulus=ids, stimulus_b=ids)
    lead = list(rdm.dims[:-2])
    n = len(ids)
    return (upper_triangle(rdm.values).reshape(-1, n * (n - 1) // 2), lead,
            {d: rdm[d].values for d in lead})


def _scores(rows: np.ndarray, subjects: np.ndarray, weights: np.ndarray, method: str, measure: str,
            ranked: bool = False) -> np.ndarray:
    """Score of every row against the target, its subjects weighted by how often they were drawn.
    ``ranked``: the model rows hold ranks already (Spearman = Pearson of ranks)."""
    if ranked:
        targets = (weights @ subjects)[None] / weights.sum() if measure == "score" else subjects
        r = compare(rows, average_ranks(targets), "pearson")
        return r[:, 0] if measure == "score" else r @ (weights / weights.sum())
    if measure == "score":
        group = (weights @ subjects) / weights.sum()
        return compare(rows, group[None], method)[:, 0]
    return compare(rows, subjects, method) @ (weights / weights.sum())


def _resampling(resample: str, n_subjects: int, target_name: str) -> tuple[bool, bool]:
    if resample not in RESAMPLE:
        raise ScoringError(f"unknown resampling {resample!r}; use one of {', '.join(RESAMPLE)}")
    if resample == "auto":
        resample = "both" if n_subjects >= 2 else "stimuli"
    if resample in ("subjects", "both") and n_subjects < 2:
        raise ScoringError(f"target {target_name} has {n_subjects} subject(s): subjects cannot be resampled; use "
                           "resample='stimuli' (or 'auto')")
    return resample in ("stimuli", "both"), resample in ("subjects", "both")


def compare_models(a, b, target: xr.DataArray, method: str = "spearman", resample: str = "auto",
                   n_boot: int = 1000, seed: int = 0, level: float = 0.95, measure: str = "score",
                   fdr: bool = True, samples: bool = False) -> xr.Dataset:
    """Is model ``a`` closer to ``target`` than model ``b``? Paired bootstrap of score(a) - score(b).

    ``a``, ``b``: model RDMs (``model_rdms``; any leading dims, e.g. state and time, or one cell
    ``rdm.sel(state=..., time=...)``), or recordings. Leading dims they share must have equal coordinates
    (a table against a table of the same states and times); others broadcast (a whole table against one
    control RDM). A ``seed`` dim is averaged: a control drawn from several seeds scores as their mean.
    ``target``: subject RDMs (``load_target``). ``resample``: ``stimuli``, ``subjects`` or ``both``;
    ``auto``: both where the target has >= 2 subjects, else stimuli. ``measure``: ``score`` (against
    the mean RDM of the drawn subjects) or ``subject_mean`` (mean of the drawn subjects' scores).

    Returns ``score_a``, ``score_b``, ``difference`` (a - b, unresampled), ``difference_ci_low/high``
    (percentile interval), ``p_value`` (module docstring) and, with ``fdr`` and more than one tested
    cell, ``p_fdr`` (Benjamini-Hochberg adjusted, over the cells with a p-value); ``samples`` also keeps
    the resampled differences (``difference_samples``). Cells a state has not reached are NaN and are
    not tested.
    """
    _check_method(method)
    if measure not in MEASURES:
        raise ScoringError(f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ScoringError(f"n_boot {n_boot!r} must be an integer of at least 1 (resamples)")
    if not 0 < level < 1:
        raise ScoringError(f"level {level} must lie between 0 and 1, e.g. 0.95")
    rdm_a, rdm_b = _as_rdm(a, "a"), _as_rdm(b, "b")
    ids = same_stimuli(rdm_a, rdm_b)
    name = str(target.name or "target")
    subjects = upper_triangle(align(target, ids, name).values)
    by_stimuli, by_subjects = _resampling(resample, len(subjects), name)
    rows_a, lead_a, coords_a = _rows(rdm_a, ids)
    rows_b, lead_b, coords_b = _rows(rdm_b, ids)
    for d in set(lead_a) & set(lead_b):
        if not np.array_equal(coords_a[d], coords_b[d]):
            raise ScoringError(f"models a and b both have dim {d!r} but with different values ({list(coords_a[d])} "
                               f"vs {list(coords_b[d])}); select the cells to compare, e.g. rdm.sel({d}=...)")
    rows = np.concatenate([rows_a, rows_b])
    n, s = len(ids), len(subjects)
    observed = _scores(rows, subjects, np.ones(s), method, measure)
    boot = np.full((n_boot, len(rows)), np.nan)
    rng = np.random.default_rng(seed)
    all_pairs = np.arange(rows.shape[1])
    # Spearman: the model rows are sorted once and ranked within each resample from its draw counts
    # (bootstrap.WeightedRanks), equal to ranking the resampled rows; rows holding NaN stay NaN
    fast = method == "spearman"
    finite = np.isfinite(rows).all(1)
    ranker = WeightedRanks(rows[finite]) if fast and by_stimuli and finite.any() else None
    fixed = average_ranks(rows[finite]) if fast and not by_stimuli else None
    ranked = np.full(rows.shape, np.nan)
    with single_threaded_blas():
        for k in range(n_boot):
            pairs = resampled_pairs(n, rng)[1] if by_stimuli else all_pairs
            weights = np.bincount(rng.integers(0, s, s), minlength=s).astype(float) if by_subjects else np.ones(s)
            if not fast:
                boot[k] = _scores(rows[:, pairs], subjects[:, pairs], weights, method, measure)
                continue
            values = ranked[:, :len(pairs)] if by_stimuli else ranked
            if finite.any():
                values[finite] = ranker(np.bincount(pairs, minlength=rows.shape[1]).astype(float), pairs) \
                    if by_stimuli else fixed
            boot[k] = _scores(values, subjects[:, pairs], weights, method, measure, ranked=True)

    def labelled(values, lead, coords, split):
        part = values[..., :len(rows_a)] if split == "a" else values[..., len(rows_a):]
        shape = values.shape[:-1] + tuple(len(coords[d]) for d in lead)
        da = xr.DataArray(part.reshape(shape), dims=(["bootstrap"] if values.ndim == 2 else []) + lead,
                          coords=coords)
        return da.mean([d for d in AVERAGED_DIMS if d in lead]) if any(d in lead for d in AVERAGED_DIMS) else da

    score_a, score_b = labelled(observed, lead_a, coords_a, "a"), labelled(observed, lead_b, coords_b, "b")
    boot_a, boot_b = labelled(boot, lead_a, coords_a, "a"), labelled(boot, lead_b, coords_b, "b")
    difference = score_a - score_b
    d = boot_a - boot_b
    low, high = percentile_ci(d, level)
    finite = d.notnull().sum("bootstrap")
    below, above = (d <= 0).sum("bootstrap"), (d >= 0).sum("bootstrap")
    p = np.minimum(1.0, 2 * np.minimum(below + 1, above + 1) / (finite + 1)).where(difference.notnull() & (finite > 0))
    out = xr.Dataset({"score_a": score_a, "score_b": score_b, "difference": difference,
                      "difference_ci_low": low, "difference_ci_high": high, "p_value": p,
                      "n_resamples": finite})
    tested = np.isfinite(p.values)
    if fdr and tested.sum() > 1:
        from scipy.stats import false_discovery_control

        adjusted = np.full(p.shape, np.nan)
        adjusted[tested] = false_discovery_control(p.values[tested], method="bh")
        out["p_fdr"] = (p.dims, adjusted)
    if samples:
        out["difference_samples"] = d
    units = f"{method} correlation between RDMs"
    for var in ("score_a", "score_b", "difference", "difference_ci_low", "difference_ci_high"):
        out[var].attrs["units"] = units
    out.attrs = {"method": method, "measure": measure, "target": name, "n_boot": n_boot, "seed": seed,
                 "ci_level": level, "n_subjects": s,
                 "resampled": " and ".join(w for w, on in (("stimuli", by_stimuli), ("subjects", by_subjects)) if on),
                 "paired": "both models scored on the same resamples",
                 "p_value": "two-sided: min(1, 2 min(#(d<=0)+1, #(d>=0)+1) / (n+1)) over n resampled differences d",
                 "p_fdr": "Benjamini-Hochberg (scipy.stats.false_discovery_control) over the tested cells"
                          if "p_fdr" in out else "not computed (one cell, or fdr=False)"}
    return out


def summarise(result: xr.Dataset, a: str = "a", b: str = "b") -> str:
    """One sentence on a one-cell comparison: which model is closer, by how much, and whether it holds."""
    if result["difference"].size != 1:
        raise ScoringError("summarise takes a one-cell comparison; select a cell first")
    diff, low, high, p = (float(result[v]) for v in ("difference", "difference_ci_low", "difference_ci_high",
                                                       "p_value"))
    level = round(result.attrs["ci_level"] * 100)
    held = "the difference holds" if low > 0 or high < 0 else "no difference is established"
    closer = a if diff > 0 else b
    return (f"{a} - {b} against {result.attrs['target']}: {diff:+.3f} ({level}% CI {low:+.3f} to {high:+.3f}, "
            f"p = {p:.3g}, paired bootstrap over {result.attrs['resampled']}); {closer} scores higher, {held}")
