"""Comparing RDMs: Spearman, Kendall's tau-a and Pearson between condensed RDM vectors, noise ceilings
(Nili et al. 2014), and the state x time score table of a model against one target.

Everything works on stacks of condensed vectors (rows) at once: one rank transform and one matrix
product compare every model (state, time) with every subject.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import rankdata

from .errors import ScoringError
from .rdm import align, check_content, upper_triangle

METHODS = ("spearman", "kendall_tau_a", "pearson")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ScoringError(f"unknown RDM comparison {method!r}; use one of {', '.join(METHODS)}")


def _check_rdm_array(value, what: str, dims: tuple) -> None:
    """One line when ``value`` is not a DataArray with these dims (``rdm.model_rdms``, ``targets.load_target``)."""
    if not isinstance(value, xr.DataArray) or set(value.dims) != set(dims):
        got = f"dims {value.dims}" if isinstance(value, xr.DataArray) else type(value).__name__
        raise ScoringError(f"{what} must be an xarray.DataArray with dims {', '.join(dims)} (from "
                           f"visrecur.neural.model_rdms / load_target), not {got}")


def _standardise(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, so that a dot product is a Pearson r."""
    x = x - x.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x /= np.sqrt(np.einsum("ij,ij->i", x.reshape(-1, x.shape[-1]), x.reshape(-1, x.shape[-1]))).reshape(
            x.shape[:-1] + (1,))
    return x


def single_threaded_blas():
    """BLAS limited to one thread: these matrices are small, and on a busy machine threaded BLAS spent
    ten times longer waiting for threads than multiplying (benchmarks/bench_rsa.py)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _tau_a_numerator(a: np.ndarray, b: np.ndarray, paired: bool, block: int = 64) -> np.ndarray:
    """sum over ordered pairs (i, j) of sign(a_i - a_j) sign(b_i - b_j), in blocks of i so that memory
    stays at rows x block x n."""
    n = a.shape[-1]
    total = np.zeros(len(a) if paired else (len(a), len(b)))
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        sa = np.sign(a[:, rows, None] - a[:, None, :]).astype(np.float32).reshape(len(a), -1)
        sb = np.sign(b[:, rows, None] - b[:, None, :]).astype(np.float32).reshape(len(b), -1)
        total += np.einsum("ik,ik->i", sa, sb, dtype=np.float64) if paired else (sa @ sb.T).astype(np.float64)
    return total


def compare(a: np.ndarray, b: np.ndarray, method: str = "spearman", paired: bool = False) -> np.ndarray:
    """Correlation of every row of ``a`` (A x P) with every row of ``b`` (B x P): an A x B matrix; with
    ``paired``, row k of ``a`` with row k of ``b`` only (length A). Rows holding NaN give NaN.

    Kendall's tau-a = (concordant - discordant pairs) / (n (n - 1) / 2): ties count in the denominator,
    unlike scipy's tau-b, so a model predicting ties is not rewarded (Nili et al. 2014)."""
    _check_method(method)
    try:
        a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    except (TypeError, ValueError):
        raise ScoringError("compare takes numeric arrays of condensed RDM vectors (rows)") from None
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or (paired and len(a) != len(b)):
        raise ScoringError(f"compare needs rows of one length (condensed RDMs of the same stimuli); got shapes "
                           f"{a.shape} and {b.shape}" + (" (paired: the same number of rows)" if paired else ""))
    out = np.full(len(a) if paired else (len(a), len(b)), np.nan)
    ok_a, ok_b = np.isfinite(a).all(1), np.isfinite(b).all(1)
    if paired:
        ok_a = ok_b = ok_a & ok_b
    if not ok_a.any() or not ok_b.any():
        return out
    a, b = a[ok_a], b[ok_b]
    if method == "kendall_tau_a":
        n = a.shape[1]
        values = _tau_a_numerator(a, b, paired) / (n * (n - 1))  # ordered pairs count each pair twice
    else:
        if method == "spearman":
            a, b = rankdata(a, axis=-1), rankdata(b, axis=-1)
        za, zb = _standardise(a), _standardise(b)
        values = (za * zb).sum(-1) if paired else za @ zb.T
    if paired:
        out[ok_a] = values
    else:
        out[np.ix_(ok_a, ok_b)] = values
    return out


def noise_ceiling(subject_vectors: np.ndarray, method: str = "spearman", name: str = "target") -> tuple[float, float]:
    """(lower, upper) bound of the best possible mean subject score (Nili et al. 2014): upper = mean
    correlation of each subject with the mean of all subjects (this includes the subject itself, so it
    overestimates), lower = with the mean of the other subjects."""
    v = np.asarray(subject_vectors, float)
    if len(v) < 3:
        raise ScoringError(f"{name} has {len(v)} subject(s); a noise ceiling needs at least 3 (use a target "
                           "with per-subject RDMs, or ask for no ceiling)")
    total = v.sum(0)
    upper = compare(v, np.broadcast_to(total / len(v), v.shape), method, paired=True).mean()
    lower = compare(v, (total - v) / (len(v) - 1), method, paired=True).mean()
    return float(lower), float(upper)


def rsa_scores(model_rdm: xr.DataArray, target: xr.DataArray, method: str = "spearman",
               ceiling: bool | None = None) -> xr.Dataset:
    """Every (state, time) of ``model_rdm`` (dims state, time, stimulus, stimulus_b) against ``target``
    (subject, stimulus, stimulus_b), joined by stimulus id.

    ``score``: against the subject-mean RDM; ``subject_mean``/``subject_sem``: the mean and standard error
    over subjects of the per-subject scores (``subject_score``); the noise ceiling bounds
    ``subject_mean``. ``ceiling=None`` computes it where there are at least 3 subjects."""
    _check_method(method)
    _check_rdm_array(model_rdm, "model_rdm", ("state", "time", "stimulus", "stimulus_b"))
    _check_rdm_array(target, "target", ("subject", "stimulus", "stimulus_b"))
    ids = [str(i) for i in model_rdm["stimulus"].values]
    target = align(target, ids, target.name or "target")
    check_content(target.values, ids, str(target.name or "target"))
    m = upper_triangle(model_rdm.values).reshape(-1, len(ids) * (len(ids) - 1) // 2)
    subjects = upper_triangle(target.values)
    group = subjects.mean(0, keepdims=True)
    with single_threaded_blas():
        by_subject = compare(m, subjects, method)
        by_group = compare(m, group, method)[:, 0]
    shape = (model_rdm.sizes["state"], model_rdm.sizes["time"])
    st = {"state": model_rdm["state"].values, "time": model_rdm["time"].values}
    n = len(subjects)
    ds = xr.Dataset({
        "score": (("state", "time"), by_group.reshape(shape)),
        "subject_score": (("state", "time", "subject"), by_subject.reshape(shape + (n,))),
        "subject_mean": (("state", "time"), by_subject.mean(1).reshape(shape)),
        "subject_sem": (("state", "time"), (by_subject.std(1, ddof=1) / np.sqrt(n) if n > 1
                                            else np.full(len(m), np.nan)).reshape(shape)),
    }, coords={**st, "subject": target["subject"].values})
    for name in ("latency_min_ms", "latency_max_ms"):
        if name in model_rdm.coords:
            ds = ds.assign_coords({name: (model_rdm[name].dims, model_rdm[name].values)})
    lower = upper = np.nan
    if ceiling or (ceiling is None and n >= 3):
        with single_threaded_blas():
            lower, upper = noise_ceiling(subjects, method, target.name or "target")
    ds["noise_ceiling_lower"], ds["noise_ceiling_upper"] = lower, upper
    skipped = model_rdm.attrs.get("skipped", "")
    ds.attrs = {"method": method, "target": str(target.name), "n_subjects": n,
                "skipped": skipped or "none",
                "skipped_note": "(state, time) pairs the state had not reached (NaN in the recording); "
                                "their scores are NaN",
                **{f"model_rdm_{k}": v for k, v in model_rdm.attrs.items() if k != "skipped"},
                **{f"target_{k}": v for k, v in target.attrs.items()}}
    for var in ("score", "subject_mean", "subject_score"):
        ds[var].attrs = {"units": f"{method} correlation between RDMs"}
    return ds


def peak(score: xr.DataArray) -> tuple[str, int]:
    """The (state, time) with the highest score (NaN pairs ignored)."""
    _check_rdm_array(score, "score", ("state", "time"))
    values = score.transpose("state", "time").values
    if np.isnan(values).all():
        raise ScoringError("no (state, time) has a score: every state was unreached or constant")
    s, t = np.unravel_index(np.nanargmax(values), values.shape)
    return str(score["state"].values[s]), int(score["time"].values[t])
