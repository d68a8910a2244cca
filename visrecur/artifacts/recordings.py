"""The recording's layout (plan, coordinates, attrs, variables) and its readers: lazy opening, one state
with plain dims, flat stimulus x neuroid export."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from visrecur.errors import InputError, TimeStepError

UNTRAINED_WARNING = ("UNTRAINED: random weights, not a trained model; its activity says nothing about "
                     "vision. Train one with python -m visrecur.train or use a checkpoint.")


# --- the recording's layout: plan and template ----------------------------------------------------
def plan(model, states, times, readout_time):
    """(states, state time steps, readout times) of a recording, checked against the model."""
    spec = model.spec
    names = [s.name for s in spec.graph.states]
    states = list(states) if states else names
    for s in states:
        spec.graph.state_index(s, "--states")
    readout_time = spec.readout_time if readout_time is None else readout_time
    spec.check_readout_time(readout_time)
    # default: the steps a readout at T is computed from (0..T-1); logits at every readout time up to T
    times = sorted(set(times)) if times is not None else list(range(readout_time))
    if not times or min(times) < 0:
        raise TimeStepError(f"time steps {times} are not valid; give steps >= 0, e.g. --times 0 1 2 3")
    readouts = list(range(spec.graph.earliest_readout, readout_time + 1))
    if spec.graph.weight_sharing == "unshared" and max(max(times) + 1, readout_time) > spec.time_steps:
        raise TimeStepError(f"this time-variant model has weights for steps up to {spec.time_steps - 1} "
                            f"(readout up to {spec.time_steps}); asked for steps up to {max(times)} and readout "
                            f"time {readout_time}")
    return states, times, readouts


@dataclass
class Template:
    """Everything a recording holds except the activity: coordinates (name -> (dims, values, attrs)),
    dataset attrs, and the layout of the data variables (name -> (dims, shape, attrs)), which each writer
    lays out itself; the activity is never held whole in memory."""

    coords: dict
    attrs: dict
    layout: dict
    n: int

    def dataset(self) -> xr.Dataset:
        # written with the template (not laid out empty), so no reader depends on a fill value for it
        recorded = xr.Variable(("stimulus",), np.zeros(self.n, dtype=bool), RECORDED_ATTRS)
        return xr.Dataset({"recorded": recorded}, coords=self.coords, attrs=self.attrs)


RECORDED_ATTRS = {"description": "True once this stimulus has been recorded"}


def template(source, stimuli, states, times, readouts, reduction, mapping, extra_attrs: dict) -> Template:
    """The layout of a recording of ``stimuli`` through ``source`` (a ModelSource); ``mapping``, a
    ``TimeMapping``, gives the milliseconds."""
    import torch

    from visrecur import __version__
    
    from visrecur.recording.stimuli import describe_preprocessing

    spec = source.model.spec
    n, nt, nr = len(stimuli), len(times), len(readouts)
    layout = {}
    for name in states:
        state = spec.graph.state(name)
        dims = reduction.dims(name, state.channels, state.size[0], state.size[1])
        arrival = spec.graph.arrival_time(name)
        layout[name] = (("stimulus", "time") + tuple(d for d, _ in dims), (n, nt) + tuple(size for _, size in dims),
                        {"arrival_time": arrival, "channels": state.channels,
                         "height_at_reference_input": state.size[0], "width_at_reference_input": state.size[1],
                         "description": f"activity of state {name}; NaN at steps before its arrival (t < {arrival})"})
    n_classes = spec.num_classes
    for var in ("logits", "probabilities"):
        layout[var] = (("stimulus", "readout_time", "class"), (n, nr, n_classes),
                       {"description": f"post-net {var} at readout time T, computed from the last state at step T - 1"})
    low, high = mapping.latency(times)
    readout_low, readout_high = mapping.latency(readouts)
    ms_per_step = mapping.ms_per_step
    last_trained = source.model.last_trained_step()
    trained_readouts = source.model.trained_readouts()
    meta = stimuli.metadata
    # strings as objects: every backend stores them as variable-length strings
    coords = {"stimulus": ("stimulus", np.array(stimuli.ids, dtype=object)),
              "time": ("time", np.array(times, dtype=np.int64), {"units": "model step"}),
              "latency_min_ms": ("time", low, {"units": "ms", "description": f"{ms_per_step[0]} ms per step"}),
              "latency_max_ms": ("time", high, {"units": "ms", "description": f"{ms_per_step[1]} ms per step"}),
              "readout_time": ("readout_time", np.array(readouts, dtype=np.int64), {"units": "model step"}),
              "readout_latency_min_ms": ("readout_time", readout_low, {"units": "ms"}),
              "readout_latency_max_ms": ("readout_time", readout_high, {"units": "ms"}),
              "class": ("class", np.array(source.classes or [str(k) for k in range(n_classes)], dtype=object))}
    for column in meta.columns:
        if column == "stimulus_id":
            continue
        values = meta[column].to_numpy()
        coords[f"stimulus_{column}"] = ("stimulus", values.astype(str).astype(object)
                                        if values.dtype == object or values.dtype.kind == "U" else values)
    attrs = {
        "title": f"visrecur recording of {source.name} on {stimuli.name}",
        "model": source.name,
        "model_spec": json.dumps(spec.to_dict()),
        "trained": "yes" if source.trained else "NO",
        "warning": "" if source.trained else UNTRAINED_WARNING,
        "checkpoint": source.checkpoint,
        "checkpoint_sha256": source.checkpoint_sha256,
        "readout_time": int(max(readouts)),
        "model_time_steps": int(spec.time_steps),
        # which TSBN statistics each step used, and which steps lie past the trained ones
        "tsbn_statistics": source.model.describe_statistics(max(max(times) + 1, max(readouts))),
        "last_trained_step": -1 if last_trained is None else int(last_trained),
        "steps_past_trained": " ".join(str(t) for t in times if last_trained is not None and t > last_trained),
        "readout_times_past_trained": " ".join(str(t) for t in readouts
                                               if trained_readouts and t > max(trained_readouts)),
        "time_mapping": mapping.describe(),
        "ms_per_step": list(ms_per_step),
        "onset_ms": mapping.onset_ms,
        "stimulus_set": stimuli.name,
        "stimulus_set_description": stimuli.description,
        "preprocessing": describe_preprocessing(source.preprocess)
                         + (f" ({source.preprocess_note})" if source.preprocess_note else ""),
        "preprocess": json.dumps(source.preprocess.to_dict()),
        "reduction": reduction.describe(),
        "reduction_spec": f"{reduction.method}:{reduction.size}" if reduction.size else reduction.method,
        "reduction_seed": int(reduction.seed) if reduction.method in ("srp", "pca") else -1,
        "reduction_basis_sha256": reduction.basis_sha256(),
        "states": " ".join(states),  # netCDF attributes hold strings, not lists of them
        "visrecur_version": __version__,
        "torch_version": str(torch.__version__),
        **extra_attrs,
    }
    coords = {name: value if len(value) == 3 else (*value, {}) for name, value in coords.items()}
    return Template(coords, attrs, layout, n)



# --- reading ---------------------------------------------------------------------------------------

def open_recording(path: str | Path) -> xr.Dataset:
    """Open a recording lazily (dask arrays): nothing is loaded until it is used."""
    import warnings

    path = Path(path)
    if not path.exists():
        raise InputError(f"recording {str(path)!r} does not exist")
    if ".partial." in path.name:
        warnings.warn(f"{str(path)!r} is an unfinished recording: stimuli whose 'recorded' flag is False hold "
                      "no data; finish it with python -m visrecur.record ... --resume", UserWarning, stacklevel=2)
    try:
        if path.suffix == ".zarr" or path.is_dir():
            return xr.open_zarr(path)
        return xr.open_dataset(path, engine="h5netcdf", chunks={})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{str(path)!r} cannot be opened as a recording ({type(err).__name__}); give a .nc or "
                         ".zarr file written by python -m visrecur.record (a .nc file that is cut short must "
                         "be recorded again)") from None


def recorded_states(ds: xr.Dataset) -> list[str]:
    """The recorded states, in the model's order."""
    return ds.attrs.get("states", "").split()


def state_array(ds: xr.Dataset, state: str) -> xr.DataArray:
    """One state's activity with the plain dims (stimulus, time, channel, y, x) / (.., feature)."""
    if state not in recorded_states(ds) or state not in ds:
        raise InputError(f"state {state!r} is not in this recording; it has {recorded_states(ds)}")
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
            missing = sorted(set(times) - set(int(t) for t in da["time"].values))
            if missing:
                raise InputError(f"time step(s) {missing} are not in this recording; it has steps "
                                 f"{[int(t) for t in da['time'].values]}")
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
