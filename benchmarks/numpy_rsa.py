"""The honest baseline for RSA speed: the 92-image table written plainly with vectorised numpy/scipy, as a
user who knows numpy would write it (no visrecur). Also the second implementation the tests check
visrecur.neural against.

table(arrays, targets) -> {target: (score, subject_mean, ceiling_lower, ceiling_upper)} where ``arrays``
maps state -> (stimulus, time, ...) activity (NaN before the state arrives) and ``targets`` maps name ->
(subject, N, N) RDMs in the same stimulus order; scores are (state, time) arrays, Spearman throughout.
bootstrap(...) does n resamples of stimuli (drawn with replacement, pairs of a stimulus with itself
dropped) the same way, re-ranking every resampled vector.
"""
import numpy as np
from scipy.stats import rankdata


def read_arrays(path, states):
    """State activity from a recording file with h5py/netCDF through xarray, nothing else."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return {s: ds[s].values for s in states}


def condensed_rdms(arrays):
    """1 - Pearson r between stimuli's patterns of every state and step: (rows, pairs), rows in state-major
    order; unreached steps are NaN rows. One matrix product per step (a batched product over steps was
    twice as slow: it needs a transposed copy)."""
    rows = []
    for x in arrays.values():
        n, t = x.shape[:2]
        i, j = np.triu_indices(n, 1)
        x = x.reshape(n, t, -1)
        for k in range(t):
            y = x[:, k].astype(np.float64)
            y -= y.mean(1, keepdims=True)
            y /= np.linalg.norm(y, axis=1, keepdims=True)
            rows.append(1 - (y @ y.T)[i, j])
    return np.stack(rows)


def _z(ranked):
    ranked = ranked - ranked.mean(-1, keepdims=True)
    return ranked / np.linalg.norm(ranked, axis=-1, keepdims=True)


def _scores(model_z, subjects):
    """(score against the subject mean, mean of subject scores, ceiling lower, upper) for ranked model rows."""
    s = len(subjects)
    subj_z = _z(rankdata(subjects, axis=-1))
    mean_z = _z(rankdata(subjects.mean(0), axis=-1))
    score = model_z @ mean_z
    subject_mean = (model_z @ subj_z.T).mean(1)
    lower = upper = np.nan
    if s >= 3:
        loo_z = _z(rankdata((subjects.sum(0) - subjects) / (s - 1), axis=-1))
        lower = float(np.einsum("ij,ij->i", subj_z, loo_z).mean())
        upper = float((subj_z @ mean_z).mean())
    return score, subject_mean, lower, upper


def table(arrays, targets):
    m = condensed_rdms(arrays)
    n = next(iter(targets.values())).shape[-1]
    i, j = np.triu_indices(n, 1)
    ok = np.isfinite(m).all(1)
    model_z = np.full(m.shape, np.nan)
    model_z[ok] = _z(rankdata(m[ok], axis=-1))
    shape = (len(arrays), -1)
    out = {}
    for name, rdms in targets.items():
        score, subject_mean, lower, upper = _scores(model_z, rdms[:, i, j])
        out[name] = (score.reshape(shape), subject_mean.reshape(shape), lower, upper)
    return out


def bootstrap(m, targets, n_boot, seed=0):
    """(n_boot, target, row) scores against the subject mean and mean subject scores, and ceilings."""
    n = next(iter(targets.values())).shape[-1]
    i, j = np.triu_indices(n, 1)
    subjects = {name: rdms[:, i, j] for name, rdms in targets.items()}
    ok = np.isfinite(m).all(1)
    rng = np.random.default_rng(seed)
    score = np.full((n_boot, len(targets), len(m)), np.nan)
    subject_mean = np.full_like(score, np.nan)
    ceilings = np.full((n_boot, len(targets), 2), np.nan)
    a, b = np.triu_indices(n, 1)
    for k in range(n_boot):
        drawn = rng.integers(0, n, n)
        p, q = drawn[a], drawn[b]
        keep = p != q
        lo, hi = np.minimum(p, q)[keep], np.maximum(p, q)[keep]
        pairs = n * lo - lo * (lo + 1) // 2 + hi - lo - 1
        model_z = _z(rankdata(m[ok][:, pairs], axis=-1))
        for t, subj in enumerate(subjects.values()):
            s, sm, lower, upper = _scores(model_z, subj[:, pairs])
            score[k, t, ok], subject_mean[k, t, ok], ceilings[k, t] = s, sm, (lower, upper)
    return score, subject_mean, ceilings
