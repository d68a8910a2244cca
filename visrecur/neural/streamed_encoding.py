"""Time-resolved encoding at THINGS scale (tens of thousands of images x sensors x time points), streamed.

For every (state, step): ridge regression from the state's features, reduced by a PCA fitted on the
training folds only, to every sensor and time point, K-fold cross-validated; the score of a cell is the
Pearson r over all images between its held-out predictions and the data (as ``cross_val_predict`` and
then r). Neither the recording nor the MEG array is ever loaded whole: everything is built from sums
over chunks of images, in three passes:

1. features: per fold, count, sum and X'X  ->  each fold's training mean and PCA (top components of the
   training covariance);
2. features and MEG: per training set, Z'Z, Z'Y, sums and Y'Y of the PCA scores Z  ->  ridge weights,
   the penalty chosen per fold and cell by generalised cross-validation (GCV) on the training set;
3. features and MEG: held-out predictions  ->  per cell, the five sums a Pearson r needs.

Memory is a chunk of images plus the sums (folds x components x cells per (state, step)), whatever the
number of images; work is linear in images and in cells. Each pass maps over groups of image chunks and
adds the groups' sums, with dask: the threads of this process by default, or a ``dask.distributed``
Client's workers (processes or machines; each opens the zarr stores itself, so no data travels).

MEG input: a zarr store with a variable ``meg`` of dims (stimulus, sensor, time_ms) (stimulus ids and
ms as coordinates), images in the recording's order. Recording: a visrecur zarr (or netCDF) recording.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import NeuralDataError, ScoringError

ALPHAS = tuple(np.logspace(-1, 6, 15))


# --- inputs --------------------------------------------------------------------------------------------
def open_meg(path: str | Path, variable: str = "meg"):
    """The MEG zarr array (lazy) and its coordinates; refuse a store with a chunk never written (zarr would
    read it as fill values, silently)."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise NeuralDataError(f"MEG store {str(path)!r} does not exist; give a zarr store with a {variable!r} "
                              "array (stimulus x sensor x time_ms)")
    try:
        group = zarr.open_group(str(path), mode="r")
        array = group[variable]
    except (KeyError, FileNotFoundError, ValueError, TypeError) as err:
        raise NeuralDataError(f"{path.name}: no zarr array {variable!r} ({type(err).__name__}); write the MEG as a "
                              f"zarr store with a {variable!r} array of dims stimulus x sensor x time_ms") from None
    if array.ndim != 3:
        raise NeuralDataError(f"{path.name}:{variable} has shape {array.shape}; expected stimulus x sensor x time_ms")
    written, total = array.nchunks_initialized, array.nchunks
    if written < total:
        raise NeuralDataError(f"{path.name}:{variable}: {total - written} of its {total} chunks are missing (never "
                              "written, or deleted); zarr would read them as fill values; write the array again")
    ids = _strings(group["stimulus"][:]) if "stimulus" in group else None
    times = np.asarray(group["time_ms"][:], float) if "time_ms" in group else np.arange(array.shape[2], dtype=float)
    return array, ids, times


def _strings(values) -> np.ndarray:
    return np.array([str(v) for v in np.asarray(values).ravel()])


def _features(recording: xr.Dataset, state: str, step: int, rows: slice) -> np.ndarray:
    x = np.asarray(recording[state].sel(time=step).isel(stimulus=rows).values, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def _folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """Fold of every image: a seeded permutation, dealt round-robin (so every chunk holds every fold)."""
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return fold


# --- the three passes, each a sum over image chunks -------------------------------------------------------
class _Job:
    """What every task needs, small and picklable: paths, names, the folds and the fitted pieces so far."""

    def __init__(self, recording_path, meg_path, cells, pairs, fold, n_folds, chunk):
        self.recording_path, self.meg_path = str(recording_path), str(meg_path)
        self.cells, self.pairs, self.fold, self.n_folds, self.chunk = cells, pairs, fold, n_folds, chunk

    def recording(self):
        from visrecur.artifacts.recordings import open_recording

        return open_recording(self.recording_path)

    def meg(self, rows: slice) -> np.ndarray:
        import zarr

        y = zarr.open_group(self.meg_path, mode="r")["meg"][rows]
        return np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)


def _sum(parts):
    total = parts[0]
    for part in parts[1:]:
        total = {k: total[k] + part[k] for k in total}
    return total


def _pass_features(job: _Job, start: int, stop: int) -> dict:
    rec = job.recording()
    out = {}
    for c in range(start, stop, job.chunk):
        rows = slice(c, min(c + job.chunk, stop))
        fold = job.fold[rows]
        for p, (state, step) in enumerate(job.pairs):
            x = _features(rec, state, step, rows)
            for f in range(job.n_folds):
                xf = x[fold == f]
                for name, value in ((f"n{p}_{f}", float(len(xf))), (f"s{p}_{f}", xf.sum(0)), (f"xx{p}_{f}", xf.T @ xf)):
                    out[name] = out.get(name, 0) + value
    return out


def _scores(x, pca):
    mean, components = pca
    return (x - mean) @ components


def _chunks(job: _Job, start: int, stop: int):
    """(recording, rows, their folds, their MEG) for each chunk of images in start..stop: one chunk in memory."""
    rec = job.recording()
    for c in range(start, stop, job.chunk):
        rows = slice(c, min(c + job.chunk, stop))
        yield rec, rows, job.fold[rows], job.meg(rows)


def _pass_train(job: _Job, pcas, start: int, stop: int) -> dict:
    out = {}
    for rec, rows, fold, y in _chunks(job, start, stop):
        for f in range(job.n_folds):  # the MEG sums of each fold's images; a training set's are the others'
            yf = y[fold == f]
            out[f"y_{f}"] = out.get(f"y_{f}", 0) + yf.sum(0)
            out[f"yy_{f}"] = out.get(f"yy_{f}", 0) + np.einsum("ij,ij->j", yf, yf)
        for p, (state, step) in enumerate(job.pairs):
            x = _features(rec, state, step, rows)
            for k in range(job.n_folds):  # PCA k's scores of the images outside fold k (its training set)
                z = _scores(x, pcas[p][k])
                z[fold == k] = 0  # fold k's own images count nothing (cheaper than copying the others' MEG)
                for name, value in ((f"zz{p}_{k}", z.T @ z), (f"zy{p}_{k}", z.T @ y), (f"z{p}_{k}", z.sum(0))):
                    out[name] = out.get(name, 0) + value
    return out


def _pass_test(job: _Job, pcas, weights, start: int, stop: int) -> dict:
    out = {}
    for rec, rows, fold, y in _chunks(job, start, stop):
        for p, (state, step) in enumerate(job.pairs):
            x = _features(rec, state, step, rows)
            predicted = np.empty_like(y)
            for k in range(job.n_folds):
                test = fold == k
                w, b = weights[p][k]
                predicted[test] = _scores(x[test], pcas[p][k]) @ w + b
            for name, value in ((f"p{p}", predicted.sum(0)), (f"pp{p}", np.einsum("ij,ij->j", predicted, predicted)),
                                (f"py{p}", np.einsum("ij,ij->j", predicted, y))):
                out[name] = out.get(name, 0) + value
        out["y"], out["yy"] = out.get("y", 0) + y.sum(0), out.get("yy", 0) + np.einsum("ij,ij->j", y, y)
    return out


def _task(fn, *args):
    """One task, BLAS on one thread: tasks run side by side already (threads or workers), and threaded
    BLAS on a busy machine was 40x slower on these matrices."""
    from .rsa import single_threaded_blas

    with single_threaded_blas():
        return fn(*args)


def _map_sum(fn, job: _Job, args: tuple, n: int, client, n_tasks: int) -> dict:
    """``fn(job, *args, start, stop)`` over ``n_tasks`` contiguous groups of images, summed."""
    import dask

    bounds = np.linspace(0, n, n_tasks + 1).round().astype(int)
    bounds = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if client is not None:
        futures = [client.submit(_task, fn, job, *args, a, b, pure=False) for a, b in bounds]
        return _sum(client.gather(futures))
    parts = dask.compute(*[dask.delayed(_task)(fn, job, *args, a, b) for a, b in bounds], scheduler="threads")
    return _sum(list(parts))


# --- fitting from the sums -------------------------------------------------------------------------------
def _pca(stats: dict, p: int, k: int, n_folds: int, n_components: int):
    """Training mean and top principal axes of the images outside fold k, from the per-fold sums."""
    train = [f for f in range(n_folds) if f != k]
    n = sum(float(stats[f"n{p}_{f}"]) for f in train)
    s = sum(stats[f"s{p}_{f}"] for f in train)
    xx = sum(stats[f"xx{p}_{f}"] for f in train)
    mean = s / n
    cov = (xx - n * np.outer(mean, mean)) / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:n_components]
    return mean, vectors[:, top]


def _ridge(stats: dict, p: int, k: int, n_folds: int, alphas: Sequence[float]):
    """Ridge weights (components x cells) and intercepts for fold k's training set, the penalty chosen per
    cell by generalised cross-validation, GCV(a) = (RSS(a) / n) / (1 - df(a) / n)^2, all from the sums
    (a penalty for all cells would be set by the many cells that carry no signal)."""
    train = [f for f in range(n_folds) if f != k]
    n = sum(float(stats[f"n0_{f}"]) for f in train)
    zbar = stats[f"z{p}_{k}"] / n
    ybar = sum(stats[f"y_{f}"] for f in train) / n
    g = stats[f"zz{p}_{k}"] - n * np.outer(zbar, zbar)  # centred Z'Z
    b = stats[f"zy{p}_{k}"] - n * np.outer(zbar, ybar)  # centred Z'Y
    yy = sum(stats[f"yy_{f}"] for f in train) - n * ybar ** 2  # centred Y'Y per cell
    lam, u = np.linalg.eigh(g)
    lam = np.clip(lam, 0, None)
    bt2 = (u.T @ b) ** 2
    best = np.zeros(b.shape[1], dtype=int)
    best_gcv = np.full(b.shape[1], np.inf)
    for i, a in enumerate(alphas):
        rss = yy - ((2 / (lam + a) - lam / (lam + a) ** 2)[:, None] * bt2).sum(0)
        gcv = rss / n / (1 - (lam / (lam + a)).sum() / n) ** 2
        better = gcv < best_gcv
        best[better], best_gcv[better] = i, gcv[better]
    chosen = np.asarray(alphas, float)[best]
    w = u @ ((u.T @ b) / (lam[:, None] + chosen[None, :]))
    return w, ybar - zbar @ w, chosen


def streamed_encoding(recording_path: str | Path, meg_path: str | Path, states: Sequence[str] | None = None,
                      times: Sequence[int] | None = None, n_components: int = 50, n_folds: int = 5,
                      alphas: Sequence[float] = ALPHAS, chunk: int = 256, seed: int = 0, client=None,
                      n_tasks: int | None = None) -> xr.Dataset:
    """Cross-validated encoding of every MEG sensor and time point from every (state, step), streamed.

    Returns ``r`` (state, time, sensor, time_ms): Pearson r of the held-out predictions;
    ``score`` (state, time, time_ms): its median over sensors; ``peak_ms`` (state, time): the neural time
    of each step's highest score; ``alpha`` (state, time, fold, sensor, time_ms): the ridge penalty chosen."""
    from visrecur.artifacts.recordings import open_recording, recorded_states

    recording = open_recording(recording_path)
    array, ids, times_ms = open_meg(meg_path)
    n, n_sensors, n_times = array.shape
    rec_ids = _strings(recording["stimulus"].values)
    if n != len(rec_ids) or (ids is not None and not np.array_equal(ids, rec_ids)):
        first = next((k for k in range(min(n, len(rec_ids))) if ids is not None and ids[k] != rec_ids[k]), None)
        where = f"; image {first} is {ids[first]!r} there, {rec_ids[first]!r} here" if first is not None else ""
        raise NeuralDataError(f"the MEG has {n} images and the recording {len(rec_ids)}{where}; record the MEG's "
                              "images in its order")
    states = list(states) if states else recorded_states(recording)
    all_times = [int(t) for t in recording["time"].values]
    times = all_times if times is None else [int(t) for t in times]
    for state in states:
        if state not in recording.data_vars:
            raise ScoringError(f"state {state!r} is not in this recording; it has {recorded_states(recording)}")
    if any(t not in all_times for t in times):
        raise ScoringError(f"time step {[t for t in times if t not in all_times][0]} is not in the recording "
                           f"(it has steps {all_times})")
    if n < 2 * n_folds:
        raise ScoringError(f"{n} images are too few for {n_folds}-fold cross-validation")
    # (state, step) pairs the state has reached (a NaN first image means not reached)
    pairs = [(s, t) for s in states for t in times
             if np.isfinite(np.asarray(recording[s].sel(time=t).isel(stimulus=0).values)).all()]
    n_features = {p: int(np.prod(recording[s].sel(time=t).isel(stimulus=0).shape)) for p, (s, t) in enumerate(pairs)}
    d = min(n_components, min(n_features.values()), n - n // n_folds - 1)
    job = _Job(recording_path, meg_path, n_sensors * n_times, pairs, _folds(n, n_folds, seed), n_folds, chunk)
    if n_tasks is None:
        n_tasks = len(client.scheduler_info()["workers"]) if client is not None else 2
    stats = _map_sum(_pass_features, job, (), n, client, n_tasks)
    from .rsa import single_threaded_blas

    with single_threaded_blas():
        pcas = [[_pca(stats, p, k, n_folds, d) for k in range(n_folds)] for p in range(len(pairs))]
    stats.update(_map_sum(_pass_train, job, (pcas,), n, client, n_tasks))
    with single_threaded_blas():
        fitted = [[_ridge(stats, p, k, n_folds, alphas) for k in range(n_folds)] for p in range(len(pairs))]
    weights = [[(w, b) for w, b, _ in per] for per in fitted]
    sums = _map_sum(_pass_test, job, (pcas, weights), n, client, n_tasks)
    r = np.full((len(states), len(times), n_sensors, n_times), np.nan)
    alpha = np.full((len(states), len(times), n_folds, n_sensors, n_times), np.nan)
    for p, (state, step) in enumerate(pairs):
        cov = n * sums[f"py{p}"] - sums[f"p{p}"] * sums["y"]
        var = (n * sums[f"pp{p}"] - sums[f"p{p}"] ** 2) * (n * sums["yy"] - sums["y"] ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            r[states.index(state), times.index(step)] = (cov / np.sqrt(var)).reshape(n_sensors, n_times)
        alpha[states.index(state), times.index(step)] = [a.reshape(n_sensors, n_times) for _, _, a in fitted[p]]
    score = np.median(r, 2)
    reached = ~np.isnan(score).all(-1)
    peak = np.full(reached.shape, np.nan)
    peak[reached] = times_ms[np.nanargmax(np.where(np.isnan(score[reached]), -np.inf, score[reached]), -1)]
    return xr.Dataset({"r": (("state", "time", "sensor", "time_ms"), r),
                       "score": (("state", "time", "time_ms"), score),
                       "peak_ms": (("state", "time"), peak),
                       "alpha": (("state", "time", "fold", "sensor", "time_ms"), alpha)},
                      coords={"state": states, "time": times, "time_ms": times_ms},
                      attrs={"model": "ridge on PCA scores (PCA and penalty fitted on training folds only)",
                             "n_components": d, "cv_folds": n_folds, "seed": seed, "n_images": n,
                             "score": "median over sensors of the Pearson r of cross-validated predictions"})
