"""Small data sets with planted structure, in exactly the layouts of the real ones: recordings (as
``visrecur.recording.recorder`` writes them), subject RDMs, and RDM stacks made from planted patterns. Used by the
tests, the benchmark and the figure test; nothing here is a measurement."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from visrecur.timing import TimeMapping
from .rdm import as_rdm


def recording(n_stimuli: int = 12, states: Sequence[tuple[str, int, int]] = (("V1", 4, 4), ("V2", 6, 2)),
              times: Sequence[int] = (0, 1, 2, 3), arrival: Sequence[int] | None = None, seed: int = 0,
              ids: Sequence[str] | None = None, mapping: TimeMapping | None = None) -> xr.Dataset:
    """A recording laid out by the recording schema (``visrecur.artifacts.recordings.assemble``): one
    variable per state with dims ``stimulus, time, <state>_channel, <state>_y, <state>_x``, NaN before the
    state's arrival (state k arrives at step k unless ``arrival`` says otherwise)."""
    from visrecur.artifacts.recordings import assemble

    rng = np.random.default_rng(seed)
    ids = list(ids or [f"92img_{k + 1:02d}" for k in range(n_stimuli)])
    arrival = list(arrival if arrival is not None else range(len(states)))
    activity = {}
    for (name, channels, size), first in zip(states, arrival):
        values = rng.standard_normal((len(ids), len(times), channels, size, size)).astype(np.float32)
        values[:, np.asarray(times) < first] = np.nan
        activity[name] = values
    return assemble(activity, ids, times, arrival=dict(zip([s[0] for s in states], arrival)), mapping=mapping)


def subject_rdms(base: np.ndarray, n_subjects: int, noise: float, seed: int, ids: Sequence[str],
                 name: str = "target") -> xr.DataArray:
    """``n_subjects`` noisy copies of the RDM ``base`` (symmetric noise on the dissimilarities)."""
    rng = np.random.default_rng(seed)
    n = base.shape[-1]
    noisy = base + noise * rng.standard_normal((n_subjects, n, n))
    noisy = (noisy + noisy.transpose(0, 2, 1)) / 2
    noisy[:, np.arange(n), np.arange(n)] = 0
    return as_rdm(noisy, ids, {"subject": [f"S{k + 1:02d}" for k in range(n_subjects)]}, name)


def planted_meg(step_rdms: np.ndarray, times_ms: np.ndarray, onset_ms: float, ms_per_step: float,
                width_ms: float = 12.0, noise: float = 0.3, n_subjects: int = 3, n_sessions: int = 2,
                seed: int = 0) -> np.ndarray:
    """MEG-like RDMs (subject, session, time, N, N; NaN diagonal) in which model step t's RDM is expressed
    around ``onset_ms + ms_per_step * t``: at each time a Gaussian-weighted mix of the steps' RDMs plus
    noise."""
    rng = np.random.default_rng(seed)
    n = step_rdms.shape[-1]
    i, j = np.triu_indices(n, 1)
    vectors = step_rdms[:, i, j]
    vectors = (vectors - vectors.mean(1, keepdims=True)) / vectors.std(1, keepdims=True)
    vectors = np.nan_to_num(vectors)  # steps the state has not reached contribute nothing
    centres = onset_ms + ms_per_step * np.arange(len(step_rdms))
    weights = np.exp(-0.5 * ((times_ms[:, None] - centres[None]) / width_ms) ** 2)  # time x step
    signal = weights @ vectors
    out = np.full((n_subjects, n_sessions, len(times_ms), n, n), np.nan)
    for s in range(n_subjects):
        for k in range(n_sessions):
            v = 50 + 5 * (signal + noise * rng.standard_normal(signal.shape))  # "decoding accuracy" around 50%
            out[s, k][:, i, j] = out[s, k][:, j, i] = v
    return out


def write_cichy2014_meg(path, values: np.ndarray, key: str = "MEG_decoding_RDMs") -> None:
    """Write (subject, session, time, N, N) values as the released file is laid out: MATLAB v7.3 (HDF5,
    512-byte MATLAB header), which h5py reads as N x N x time x session x subject."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(key, data=values.transpose(3, 4, 2, 1, 0))
    _matlab73_header(path)


def _matlab73_header(path) -> None:
    """MATLAB's 128-byte v7.3 header in the HDF5 user block: text, subsystem offset, version 0x0200, "IM"."""
    text = b"MATLAB 7.3 MAT-file, written by visrecur.neural.synthetic, HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(text.ljust(116, b" ") + bytes(8) + b"\x00\x02IM")


def write_matlab73(path, arrays: dict) -> None:
    """Arrays as MATLAB v7.3 stores them (axes reversed, as h5py then reads them)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=np.asarray(values).T)
    _matlab73_header(path)


def write_algonauts2019_meg(path, early: np.ndarray, late: np.ndarray) -> None:
    """Write subjects (x sessions) x N x N arrays as the Algonauts 2019 MEG file (.mat or .npz)."""
    from pathlib import Path

    if Path(path).suffix == ".npz":
        np.savez(path, MEG_RDMs_early=early, MEG_RDMs_late=late)
    else:
        from scipy.io import savemat
        savemat(path, {"MEG_RDMs_early": early, "MEG_RDMs_late": late})


def planted_assembly(recording_ds: xr.Dataset, state: str, steps_for_bins: Sequence[int], n_neuroids: int = 8,
                     repetitions: int = 4, noise: float = 1.0, seed: int = 0) -> tuple[xr.DataArray, float]:
    """A Brain-Score-style assembly (presentation x neuroid x time_bin) whose time bin k is a fixed linear
    map of ``state``'s activity at step ``steps_for_bins[k]`` (unit signal variance per neuroid) plus
    repetition noise. Returns it with the expected reliability of the stimulus means,
    1 / (1 + noise**2 / repetitions)."""
    from visrecur.artifacts.recordings import state_array

    rng = np.random.default_rng(seed)
    da = state_array(recording_ds, state)
    ids = [str(s) for s in recording_ds["stimulus"].values]
    bins = []
    for step in steps_for_bins:
        x = np.asarray(da.sel(time=step).values, dtype=np.float64).reshape(len(ids), -1)
        signal = x @ rng.standard_normal((x.shape[1], n_neuroids))
        bins.append((signal - signal.mean(0)) / signal.std(0))
    signal = np.stack(bins, -1)  # stimulus, neuroid, time_bin
    values = np.concatenate([signal + noise * rng.standard_normal(signal.shape) for _ in range(repetitions)])
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", ids * repetitions),
        "repetition": ("presentation", np.repeat(np.arange(repetitions), len(ids))),
        "neuroid_id": ("neuroid", [f"n{k}" for k in range(n_neuroids)]),
        "time_bin_start": ("time_bin", 70.0 + 20 * np.arange(len(steps_for_bins))),
        "time_bin_end": ("time_bin", 90.0 + 20 * np.arange(len(steps_for_bins)))})
    return assembly, 1 / (1 + noise ** 2 / repetitions)


def correlated_recording(n_stimuli: int = 92, channels: int = 64, size: int = 4, n_steps: int = 6,
                         step_correlation: float = 0.8, seed: int = 0, ids: Sequence[str] | None = None,
                         name: str = "IT") -> xr.Dataset:
    """One state whose activity drifts over steps (x_t = r x_{t-1} + sqrt(1 - r^2) noise), so neighbouring
    steps' RDMs are alike, as in a recurrent model."""
    from visrecur.artifacts.recordings import assemble

    rng = np.random.default_rng(seed)
    ids = list(ids or [f"92img_{k + 1:02d}" for k in range(n_stimuli)])
    shape = (len(ids), channels, size, size)
    steps = [rng.standard_normal(shape)]
    for _ in range(n_steps - 1):
        steps.append(step_correlation * steps[-1] + np.sqrt(1 - step_correlation ** 2) * rng.standard_normal(shape))
    return assemble({name: np.stack(steps, 1).astype(np.float32)}, ids, list(range(n_steps)), arrival={name: 0})


def planted_meg_vectors(step_rdms: np.ndarray, times_ms: np.ndarray, onset_ms: float, ms_per_step: float,
                        width_ms: float = 12.0, noise: float = 0.3, n_subjects: int = 16, n_sessions: int = 2,
                        seed: int = 0, block: int = 32, steps: Sequence[float] | None = None):
    """The planted MEG of ``planted_meg`` as condensed vectors, a block of times at a time: yields
    subject x session x time x pairs (squareform order). Step ``steps[k]`` (default k) of ``step_rdms[k]`` is
    expressed around ``onset_ms + ms_per_step * steps[k]``."""
    rng = np.random.default_rng(seed)
    n = step_rdms.shape[-1]
    i, j = np.triu_indices(n, 1)
    vectors = step_rdms[:, i, j]
    vectors = np.nan_to_num((vectors - vectors.mean(1, keepdims=True)) / vectors.std(1, keepdims=True))
    steps = np.arange(len(step_rdms)) if steps is None else np.asarray(steps, float)
    centres = onset_ms + ms_per_step * steps
    for start in range(0, len(times_ms), block):
        t = np.asarray(times_ms[start:start + block], float)
        signal = np.exp(-0.5 * ((t[:, None] - centres[None]) / width_ms) ** 2) @ vectors  # time x pairs
        yield 50 + 5 * (signal + noise * rng.standard_normal((n_subjects, n_sessions) + signal.shape))


def write_planted_cichy2014_meg(path, step_rdms: np.ndarray, times_ms: np.ndarray, onset_ms: float,
                                ms_per_step: float, key: str = "MEG_decoding_RDMs", dtype=np.float64,
                                **planted) -> None:
    """``planted_meg_vectors`` written block by block in the released file's layout (MATLAB v7.3, N x N x
    time x session x subject as h5py reads it), so that a file of the real size never sits in memory."""
    import h5py

    n = step_rdms.shape[-1]
    i, j = np.triu_indices(n, 1)
    done = 0
    with h5py.File(path, "w", userblock_size=512) as f:
        data = None
        for values in planted_meg_vectors(step_rdms, times_ms, onset_ms, ms_per_step, **planted):
            s, k, t, _ = values.shape
            if data is None:
                data = f.create_dataset(key, shape=(n, n, len(times_ms), k, s), dtype=dtype,
                                        chunks=(n, n, min(8, len(times_ms)), k, s))
            square = np.full((n, n, t, k, s), np.nan, dtype=dtype)
            upper = values.transpose(3, 2, 1, 0)  # pairs, time, session, subject
            square[i, j] = square[j, i] = upper
            data[:, :, done:done + t] = square
            done += t
    _matlab73_header(path)


def write_planted_things(recording_path, meg_path, n_images: int, n_sensors: int = 272,
                         times_ms: np.ndarray | None = None, state: str = "IT", steps: Sequence[int] = (0, 1, 2),
                         latencies_ms: Sequence[float] = (100.0, 150.0, 200.0), width_ms: float = 25.0,
                         channels: int = 32, size: int = 4, rank: int = 20, signal: float = 0.4, seed: int = 0,
                         chunk: int = 256) -> dict:
    """A THINGS-MEG-shaped planted pair, written chunk by chunk (never whole in memory): a zarr recording
    of one state whose step ``steps[k]`` has low-rank features (``rank`` latent factors per image and step,
    mixed into channels x size x size units), and a zarr store ``meg`` (image x sensor x time, float32;
    THINGS-MEG: 272 sensors, 281 times from -100 to 1300 ms) in which step k's latent factors drive the
    sensors through a fixed random map, with a Gaussian time course peaking at ``latencies_ms[k]``, plus
    unit noise. Returns the planted latencies by step."""
    import zarr

    from visrecur.artifacts.recordings import assemble

    times_ms = np.linspace(-100.0, 1300.0, 281) if times_ms is None else np.asarray(times_ms, float)
    rng = np.random.default_rng(seed)
    ids = [f"things_{k:05d}" for k in range(n_images)]
    latent = rng.standard_normal((len(steps), n_images, rank)).astype(np.float32)
    units = channels * size * size
    mixing = rng.standard_normal((len(steps), rank, units)).astype(np.float32) / np.sqrt(rank)
    activity = np.empty((n_images, len(steps), units), np.float32)
    for k in range(len(steps)):
        activity[:, k] = latent[k] @ mixing[k] + 0.1 * rng.standard_normal((n_images, units), dtype=np.float32)
    ds = assemble({state: activity.reshape(n_images, len(steps), channels, size, size)}, ids, list(steps),
                  arrival={state: int(steps[0])})
    ds.to_zarr(recording_path, mode="w")
    maps = rng.standard_normal((len(steps), rank, n_sensors)).astype(np.float32) * signal / np.sqrt(rank)
    courses = np.exp(-0.5 * ((times_ms[None] - np.asarray(latencies_ms, float)[:, None]) / width_ms) ** 2)
    group = zarr.open_group(str(meg_path), mode="w")
    shape = (n_images, n_sensors, len(times_ms))
    if hasattr(group, "create_array"):  # zarr 3
        meg = group.create_array("meg", shape=shape, chunks=(chunk,) + shape[1:], dtype="float32", compressors=None,
                                 fill_value=np.nan)
        group.create_array("time_ms", data=times_ms)
        group.create_array("stimulus", data=np.array(ids))
    else:  # zarr 2 (the Brain-Score pins)
        meg = group.create_dataset("meg", shape=shape, chunks=(chunk,) + shape[1:], dtype="float32",
                                   compressor=None, fill_value=np.nan)
        group.create_dataset("time_ms", data=times_ms)
        group.create_dataset("stimulus", data=np.array(ids))
    for start in range(0, n_images, chunk):
        rows = slice(start, min(start + chunk, n_images))
        y = rng.standard_normal((rows.stop - start, n_sensors, len(times_ms)), dtype=np.float32)
        for k in range(len(steps)):
            y += (latent[k, rows] @ maps[k])[:, :, None] * courses[k].astype(np.float32)[None, None]
        meg[rows] = y
    return dict(zip((int(s) for s in steps), latencies_ms))
