"""Small data sets with planted structure, in exactly the layouts of the real ones: recordings (as
``visrecur.record`` writes them), subject RDMs, and RDM stacks made from planted patterns. Used by the
tests, the benchmark and the figure test; nothing here is a measurement."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from ..timing import DEFAULT_MS_PER_STEP, latency_ms
from .rdm import as_rdm


def recording(n_stimuli: int = 12, states: Sequence[tuple[str, int, int]] = (("V1", 4, 4), ("V2", 6, 2)),
              times: Sequence[int] = (0, 1, 2, 3), arrival: Sequence[int] | None = None, seed: int = 0,
              ids: Sequence[str] | None = None) -> xr.Dataset:
    """A recording laid out as ``visrecur.record`` lays it out: one variable per state with dims
    ``stimulus, time, <state>_channel, <state>_y, <state>_x``, NaN before the state's arrival (state k
    arrives at step k unless ``arrival`` says otherwise)."""
    rng = np.random.default_rng(seed)
    ids = list(ids or [f"92img_{k + 1:02d}" for k in range(n_stimuli)])
    arrival = list(arrival if arrival is not None else range(len(states)))
    low, high = latency_ms(list(times), DEFAULT_MS_PER_STEP)
    ds = xr.Dataset(coords={"stimulus": np.array(ids, dtype=object), "time": np.array(times),
                            "latency_min_ms": ("time", low), "latency_max_ms": ("time", high)})
    for (name, channels, size), first in zip(states, arrival):
        values = rng.standard_normal((len(ids), len(times), channels, size, size)).astype(np.float32)
        values[:, np.asarray(times) < first] = np.nan
        ds[name] = ((f"stimulus", "time", f"{name}_channel", f"{name}_y", f"{name}_x"), values,
                    {"arrival_time": first})
    ds.attrs["states"] = " ".join(s[0] for s in states)
    return ds


def subject_rdms(base: np.ndarray, n_subjects: int, noise: float, seed: int, ids: Sequence[str],
                 name: str = "target") -> xr.DataArray:
    """``n_subjects`` noisy copies of the RDM ``base`` (symmetric noise on the dissimilarities)."""
    rng = np.random.default_rng(seed)
    n = base.shape[-1]
    noisy = base + noise * rng.standard_normal((n_subjects, n, n))
    noisy = (noisy + noisy.transpose(0, 2, 1)) / 2
    noisy[:, np.arange(n), np.arange(n)] = 0
    return as_rdm(noisy, ids, {"subject": [f"S{k + 1:02d}" for k in range(n_subjects)]}, name)
