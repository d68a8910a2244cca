"""Reading recordings back: lazy opening, one state with plain dims, flat stimulus x neuroid export."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .errors import InputError

def open_recording(path: str | Path) -> xr.Dataset:
    """Open a recording lazily (dask arrays): nothing is loaded until it is used."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"recording {str(path)!r} does not exist")
    if path.suffix == ".zarr" or path.is_dir():
        return xr.open_zarr(path)
    return xr.open_dataset(path, engine="h5netcdf", chunks={})


def recorded_states(ds: xr.Dataset) -> list[str]:
    """The recorded states, in the model's order."""
    return ds.attrs.get("states", "").split()


def state_array(ds: xr.Dataset, state: str) -> xr.DataArray:
    """One state's activity with the plain dims (stimulus, time, channel, y, x) / (.., feature)."""
    da = ds[state]
    return da.rename({d: d[len(state) + 1:] for d in da.dims if d.startswith(f"{state}_")})


def summary(path: Path, ds: xr.Dataset) -> str:
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    lines = [f"recorded {ds.attrs['model']} on {ds.sizes['stimulus']} stimuli ({ds.attrs['stimulus_set']}), "
             f"steps {int(ds.time.min())}..{int(ds.time.max())} "
             f"({float(ds.latency_min_ms.max()):.0f}-{float(ds.latency_max_ms.max()):.0f} ms at the last step)",
             f"  -> {path}  ({size / 1e6:.1f} MB)"]
    for name in recorded_states(ds):
        lines.append(f"  {name:>6}: {dict(ds[name].sizes)}  arrives at t={ds[name].attrs['arrival_time']}")
    readouts = ds["readout_time"].values
    lines.append(f"  logits, probabilities: readout times {readouts.min()}..{readouts.max()} "
                 f"({ds.readout_latency_min_ms.values.min():.0f}-{ds.readout_latency_max_ms.values.max():.0f} ms), "
                 f"{ds.sizes['class']} classes")
    lines.append(f"  model: {ds.attrs['model']}, "
                 + (f"checkpoint sha256 {ds.attrs['checkpoint_sha256'][:12]}..." if ds.attrs.get("checkpoint")
                    else "untrained"))
    if ds.attrs.get("warning"):
        lines.append(f"  WARNING: {ds.attrs['warning']}")
    return "\n".join(lines)



def to_neuroids(ds: xr.Dataset, states: Sequence[str] | None = None, times: Sequence[int] | None = None
                ) -> xr.DataArray:
    """Flatten chosen states and steps into ``stimulus x neuroid (x time)`` for scoring.

    Neuroid coords: ``neuroid_id`` ("V1.c3.y5.x7" style), ``state``, ``channel``, ``y``, ``x`` (-1 where a
    reduction removed the spatial or channel axes) and ``feature`` (-1 unless srp/pca). With one time
    step the time dim is dropped.
    """
    states = list(states or recorded_states(ds))
    if not states:
        raise InputError("no states to export; give states=[...]")
    parts = []
    for state in states:
        if state not in ds:
            raise InputError(f"state {state!r} is not in this recording; it has {recorded_states(ds)}")
        da = state_array(ds, state)
        if times is not None:
            da = da.sel(time=list(times))
        feature_dims = [d for d in da.dims if d not in ("stimulus", "time")]
        stacked = da.stack(neuroid=feature_dims).transpose("stimulus", "neuroid", "time")
        n = stacked.sizes["neuroid"]

        def level(name):
            return stacked["neuroid"][name].values.astype(np.int64) if name in feature_dims else np.full(n, -1)

        channel, y, x, feature = level("channel"), level("y"), level("x"), level("feature")
        ids = [f"{state}.c{c}.y{yy}.x{xx}" if f < 0 else f"{state}.f{f}" for c, yy, xx, f in zip(channel, y, x, feature)]
        stacked = stacked.drop_vars(["neuroid"] + feature_dims, errors="ignore")
        parts.append(stacked.assign_coords(neuroid_id=("neuroid", ids), state=("neuroid", [state] * n),
                                           channel=("neuroid", channel), y=("neuroid", y), x=("neuroid", x),
                                           feature=("neuroid", feature)))
    out = xr.concat(parts, dim="neuroid")
    if out.sizes["time"] == 1:
        out = out.isel(time=0)
    out.name = "activity"
    out.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}
    return out
