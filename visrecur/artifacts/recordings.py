"""The recording: its schema (dims, coordinates, attrs, named here once), the template every writer lays
out (the netCDF and zarr stores and the in-memory path), and its readers (open and validate, the time
mapping read back whole, one state with plain dims, the stimulus x neuroid export, a summary). Over 350
lines because the schema, its two templates (FRNNs and timed models) and the readers that must agree
with them are kept in one module.

Layout. Dims ``stimulus``, ``time`` (integer model step), ``state`` (the recorded states in model order),
``readout_time`` and ``class``; one variable per state with dims ``stimulus, time`` then the state's own
``<state>_channel, <state>_y, <state>_x`` (or ``<state>_feature`` after a reduction), NaN where the state
holds nothing at that step (before its arrival); ``logits`` and ``probabilities`` over ``stimulus,
readout_time, class``; ``recorded`` (stimulus). Milliseconds: ``latency_min_ms`` and ``latency_max_ms``
over ``state, time`` (a state may have its own onset and step duration) and ``readout_latency_min_ms``,
``readout_latency_max_ms`` over ``readout_time``, all from the ``TimeMapping`` stored whole in the
``time_mapping`` attr (JSON), which ``time_mapping(ds)`` reads back.

Timed models (``visrecur.timed``: CORnet, BL-net, adapted modules) are recorded in this same layout.
Their areas may run different steps (CORnet-S: V1 step 0, V2 0..1, V4 0..3, IT 0..1): every area
keeps its own step numbers on the one ``time`` dim, NaN where it does not run, and ``state_runs``
(state, time; 1 or 0) marks the steps it runs; each area's ms come from its own onset and step width in the
``TimeMapping``. A readout at step T reads the last area at its step T. ``model_kind`` is set
(``adapted`` or ``timed``), ``model_spec`` holds the model's ``to_dict()``.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from visrecur.errors import InputError
from visrecur.timing import TimeMapping

SCHEMA = "visrecur-recording-2"
STIMULUS, TIME, STATE, READOUT, CLASS = "stimulus", "time", "state", "readout_time", "class"
LATENCY = ("latency_min_ms", "latency_max_ms")
READOUT_LATENCY = ("readout_latency_min_ms", "readout_latency_max_ms")
RECORDED_ATTRS = {"description": "True once this stimulus has been recorded"}
# the attrs that determine the stored values: a resume must agree on each
RESUME_KEYS = ("model_spec", "checkpoint_sha256", "preprocess", "stimulus_set_sha256", "reduction_spec",
               "reduction_seed", "reduction_basis_sha256", "pca_fit_set_sha256", "states", "time_mapping")
UNTRAINED_WARNING = ("UNTRAINED: random weights, not a trained model; its activity says nothing about "
                     "vision. Train one with python -m visrecur.train or use a checkpoint.")


def state_dims(state: str, names: Sequence[str]) -> tuple[str, ...]:
    """A state's own dims (states differ in size): channel -> ``<state>_channel``."""
    return tuple(f"{state}_{name}" for name in names)


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
        recorded = xr.Variable((STIMULUS,), np.zeros(self.n, dtype=bool), RECORDED_ATTRS)
        return xr.Dataset({"recorded": recorded}, coords=self.coords, attrs=self.attrs)


def template(source, stimuli, states, times, readouts, reduction, mapping: TimeMapping, extra_attrs: dict) -> Template:
    """The layout of a recording of ``stimuli`` through ``source`` (a ModelSource): ``states`` at steps
    ``times``, logits at ``readouts``, each state's activity reduced by ``reduction``, milliseconds from
    ``mapping``."""
    model = source.model
    spec = model.spec
    n, nt, nr = len(stimuli), len(times), len(readouts)
    layout = {}
    for name in states:
        state = spec.graph.state(name)
        dims = reduction.dims(name, state.channels, state.size[0], state.size[1])
        arrival = spec.graph.arrival_time(name)
        layout[name] = ((STIMULUS, TIME) + tuple(d for d, _ in dims), (n, nt) + tuple(size for _, size in dims),
                        {"arrival_time": arrival, "channels": state.channels,
                         "height_at_reference_input": state.size[0], "width_at_reference_input": state.size[1],
                         "description": f"activity of state {name}; NaN at steps before its arrival (t < {arrival})"})
    for var in ("logits", "probabilities"):
        layout[var] = ((STIMULUS, READOUT, CLASS), (n, nr, spec.num_classes),
                       {"description": f"post-net {var} at readout time T, computed from the last state at step T - 1"})
    last_trained = model.last_trained_step()
    trained_readouts = model.trained_readouts()
    # strings as objects: every backend stores them as variable-length strings
    coords = {STIMULUS: (STIMULUS, np.array(stimuli.ids, dtype=object)),
              TIME: (TIME, np.array(times, dtype=np.int64), {"units": "model step"}),
              STATE: (STATE, np.array(states, dtype=object)),
              READOUT: (READOUT, np.array(readouts, dtype=np.int64), {"units": "model step"}),
              CLASS: (CLASS, np.array(source.classes or [str(k) for k in range(spec.num_classes)], dtype=object))}
    coords.update(ms_coords(mapping, states, times, readouts, spec.graph.last.name))
    coords.update(stimulus_coords(stimuli))
    attrs = {
        **provenance_attrs(source, stimuli, json.dumps(spec.to_dict())),
        "readout_time": int(max(readouts)),
        "model_time_steps": int(spec.time_steps),
        # which TSBN statistics each step used, and which steps lie past the trained ones
        "tsbn_statistics": model.describe_statistics(max(max(times) + 1, max(readouts))),
        "last_trained_step": -1 if last_trained is None else int(last_trained),
        "steps_past_trained": " ".join(str(t) for t in times if last_trained is not None and t > last_trained),
        "readout_times_past_trained": " ".join(str(t) for t in readouts
                                               if trained_readouts and t > max(trained_readouts)),
        **_run_attrs(source, stimuli, states, reduction, mapping, extra_attrs),
    }
    coords = {name: value if len(value) == 3 else (*value, {}) for name, value in coords.items()}
    return Template(coords, attrs, layout, n)


def timed_template(source, stimuli, states, times, readouts, reduction, mapping: TimeMapping,
                   extra_attrs: dict) -> Template:
    """The layout of a recording through a timed model (``visrecur.timed``: CORnet, BL-net, an adapted
    module): the same variables, dims and ms coordinates as an FRNN's. Areas that run different steps
    share the one ``time`` dim: area a's step t is at ``time = t``, NaN at every step a does not run
    (before its first step and after its last), and ``state_runs`` (state, time; 1 or 0) says
    which steps each area runs; the ms coordinates of a step an area does not run are NaN. A readout
    at step t reads the last area at its step t (its ms are that step's)."""
    model = source.model
    n, nt, nr = len(stimuli), len(times), len(readouts)
    layout = {}
    # 0/1, not bool: netCDF has no boolean type
    runs = np.array([[t in model.area_steps(name) for t in times] for name in states], dtype=np.int8)
    for name in states:
        channels, height, width = model.area_shape(name)
        dims = reduction.dims(name, channels, height, width)
        steps = model.area_steps(name)
        layout[name] = ((STIMULUS, TIME) + tuple(d for d, _ in dims), (n, nt) + tuple(size for _, size in dims),
                        {"arrival_time": steps[0], "steps": " ".join(str(t) for t in steps), "channels": channels,
                         "height_at_reference_input": height, "width_at_reference_input": width,
                         "description": f"activity of area {name}; it runs at steps {_ranges(steps)}, NaN at "
                                        "every other step"})
    if nr:
        for var in ("logits", "probabilities"):
            layout[var] = ((STIMULUS, READOUT, CLASS), (n, nr, model.num_classes),
                           {"description": f"readout {var} at step T, read from the last area at its step T"})
    classes = source.classes or [str(k) for k in range(model.num_classes or 0)]
    coords = {STIMULUS: (STIMULUS, np.array(stimuli.ids, dtype=object)),
              TIME: (TIME, np.array(times, dtype=np.int64), {"units": "model step"}),
              STATE: (STATE, np.array(states, dtype=object)),
              READOUT: (READOUT, np.array(readouts, dtype=np.int64), {"units": "model step"}),
              CLASS: (CLASS, np.array(classes, dtype=object)),
              "state_runs": ((STATE, TIME), runs, {"description": "1 where the area runs at the step, else 0"})}
    for name, (dims, values, attrs) in ms_coords(mapping, states, times, readouts, model.areas[-1]).items():
        coords[name] = (dims, np.where(runs == 1, values, np.nan) if dims == (STATE, TIME) else values, attrs)
    coords.update(stimulus_coords(stimuli))
    attrs = {
        **provenance_attrs(source, stimuli, json.dumps(model.to_dict())),
        "model_kind": model.kind,
        "readout_time": int(max(readouts)) if nr else -1,
        "model_time_steps": len(model.time_steps),
        "tsbn_statistics": "none: not an FRNN, no time-specific batch norm",
        "last_trained_step": -1,
        "steps_past_trained": "",
        "readout_times_past_trained": "",
        **_run_attrs(source, stimuli, states, reduction, mapping, extra_attrs),
    }
    coords = {name: value if len(value) == 3 else (*value, {}) for name, value in coords.items()}
    return Template(coords, attrs, layout, n)


def _ranges(steps: Sequence[int]) -> str:
    steps = list(steps)
    contiguous = steps == list(range(steps[0], steps[-1] + 1))
    return (f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}..{steps[-1]}") if contiguous else \
        " ".join(str(t) for t in steps)


def stimulus_coords(stimuli) -> dict:
    """The stimulus set's metadata columns as ``stimulus_<column>`` coordinates."""
    coords = {}
    for column in stimuli.metadata.columns:
        if column == "stimulus_id":
            continue
        values = stimuli.metadata[column].to_numpy()
        coords[f"stimulus_{column}"] = (STIMULUS, values.astype(str).astype(object)
                                        if values.dtype == object or values.dtype.kind == "U" else values)
    return coords


def provenance_attrs(source, stimuli, model_spec: str) -> dict:
    """Which model made the recording, and whether it was trained."""
    return {
        "schema": SCHEMA,
        "title": f"visrecur recording of {source.name} on {stimuli.name}",
        "model": source.name,
        "model_spec": model_spec,
        "trained": "yes" if source.trained else "NO",
        "warning": "" if source.trained else UNTRAINED_WARNING,
        "checkpoint": source.checkpoint,
        "checkpoint_sha256": source.checkpoint_sha256,
    }


def _run_attrs(source, stimuli, states, reduction, mapping: TimeMapping, extra_attrs: dict) -> dict:
    import torch

    from visrecur import __version__
    from visrecur.recording.stimuli import describe_preprocessing

    return {
        "time_mapping": json.dumps(mapping.to_dict()),
        "time_mapping_description": mapping.describe(),
        "stimulus_set": stimuli.name,
        "stimulus_set_description": stimuli.description,
        "preprocessing": describe_preprocessing(source.preprocess)
                         + (f" ({source.preprocess_note})" if source.preprocess_note else ""),
        "preprocess": json.dumps(source.preprocess.to_dict()),
        "reduction": reduction.describe(),
        "reduction_spec": reduction.spec,
        "reduction_seed": int(reduction.seed) if reduction.seeded else -1,
        "reduction_basis_sha256": reduction.basis_sha256(),
        "states": " ".join(states),  # netCDF attributes hold strings, not lists of them
        "visrecur_version": __version__,
        "torch_version": str(torch.__version__),
        **extra_attrs,
    }


def ms_coords(mapping: TimeMapping, states: Sequence[str], times: Sequence[int], readouts: Sequence[int],
              last_state: str) -> dict:
    """The millisecond coordinates: every (state, step)'s latency range, and each readout's (the
    post-net reads the last state at T - 1, and the readout at T is one more step)."""
    per_state = [mapping.latency(times, state) for state in states]
    description = f"{mapping.describe()}; a step is known in ms only as a range"
    coords = {name: ((STATE, TIME), np.array([bounds[k] for bounds in per_state], dtype=float).reshape(len(states), -1),
                     {"units": "ms", "description": description}) for k, name in enumerate(LATENCY)}
    readout = mapping.latency(readouts, last_state)
    coords.update({name: (READOUT, np.asarray(readout[k], dtype=float), {"units": "ms"})
                   for k, name in enumerate(READOUT_LATENCY)})
    return coords


def assemble(activity: dict, ids: Sequence[str], times: Sequence[int], *, arrival: dict | None = None,
             mapping: TimeMapping | None = None, model: str = "synthetic", attrs: dict | None = None) -> xr.Dataset:
    """A complete in-memory recording from arrays, laid out by this schema: ``activity`` maps each state
    (in model order) to an array (stimulus, time, channel, y, x) or (stimulus, time, feature), NaN where
    the state holds nothing. For planted data, other tools' activations and tests."""
    mapping = mapping or TimeMapping()
    states = list(activity)
    names = {5: ("channel", "y", "x"), 3: ("feature",)}
    coords = {STIMULUS: (STIMULUS, np.array(ids, dtype=object)), TIME: (TIME, np.asarray(times, dtype=np.int64)),
              STATE: (STATE, np.array(states, dtype=object))}
    coords.update({k: v for k, v in ms_coords(mapping, states, times, [], states[-1]).items()
                   if k not in READOUT_LATENCY})
    ds = xr.Dataset(coords=coords, attrs={"schema": SCHEMA, "model": model, "states": " ".join(states),
                                          "time_mapping": json.dumps(mapping.to_dict()),
                                          "time_mapping_description": mapping.describe(),
                                          "trained": "yes", **(attrs or {})})
    for state, values in activity.items():
        values = np.asarray(values, dtype=np.float32)
        if values.ndim not in names or values.shape[:2] != (len(ids), len(times)):
            raise InputError(f"activity of {state!r} has shape {values.shape}; give (stimulus, time, channel, y, x) "
                             f"or (stimulus, time, feature) with {len(ids)} stimuli and {len(times)} steps")
        first = (arrival or {}).get(state, 0)
        ds[state] = ((STIMULUS, TIME) + state_dims(state, names[values.ndim]), values,
                     {"arrival_time": first, "description": f"activity of state {state}"})
    ds["recorded"] = (STIMULUS, np.ones(len(ids), dtype=bool), RECORDED_ATTRS)
    return ds


# --- reading ---------------------------------------------------------------------------------------
def open_recording(path: str | Path) -> xr.Dataset:
    """Open a recording lazily (dask arrays: nothing is loaded until used), checked against the schema."""
    from visrecur.artifacts.stores import store_for
    from visrecur.checks import path_arg

    path = path_arg(path, "a recording")
    if not path.exists():
        raise InputError(f"recording {str(path)!r} does not exist")
    if ".partial." in path.name:
        warnings.warn(f"{str(path)!r} is an unfinished recording: stimuli whose 'recorded' flag is False hold "
                      "no data; finish it with python -m visrecur.record ... --resume", UserWarning, stacklevel=2)
    try:
        store = store_for(path)
    except InputError:
        raise InputError(f"{str(path)!r} is not a recording: give a .nc or .zarr file written by python -m "
                         "visrecur.record") from None
    try:
        ds = store.open(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{str(path)!r} cannot be opened as a recording ({type(err).__name__}); give a .nc or "
                         ".zarr file written by python -m visrecur.record (a .nc file that is cut short must "
                         "be recorded again)") from None
    check(ds, str(path))
    return ds


def is_recording(ds: xr.Dataset) -> bool:
    """Whether ``ds`` has what every visrecur recording has (its schema)."""
    attrs = ds.attrs
    states = str(attrs.get("states", "")).split()
    return (bool(states) and "model" in attrs and STIMULUS in ds.dims and TIME in ds.dims
            and all(s in ds.data_vars for s in states) and "recorded" in ds)


def check(ds: xr.Dataset, name: str = "dataset") -> None:
    """Refuse, in one line, a dataset that is not a visrecur recording or whose time mapping is unreadable."""
    if not is_recording(ds):
        raise InputError(f"{name} is not a visrecur recording (no model, states, stimulus and time dims, a "
                         "variable per state and the 'recorded' flag); give a file written by python -m "
                         "visrecur.record")
    time_mapping(ds)


def time_mapping(ds: xr.Dataset) -> TimeMapping:
    """The ``TimeMapping`` the recording was made with, read back whole (recordings before the
    ``time_mapping`` attr stored only ``ms_per_step`` and ``onset_ms``)."""
    from visrecur.timing import TimeMappingError

    try:
        if "time_mapping" in ds.attrs:
            return TimeMapping.from_dict(json.loads(ds.attrs["time_mapping"]))
        return TimeMapping(tuple(np.atleast_1d(ds.attrs.get("ms_per_step", (20.0, 50.0))).tolist()),
                           float(ds.attrs.get("onset_ms", 0.0)))
    except (ValueError, TypeError, TimeMappingError) as err:
        raise InputError(f"the recording's time mapping cannot be read ({err}); record it again") from None


def recorded_states(ds: xr.Dataset) -> list[str]:
    """The recorded states, in the model's order."""
    return ds.attrs.get("states", "").split()


def latency(ds: xr.Dataset, state: str) -> tuple[np.ndarray, np.ndarray]:
    """(earliest, latest) ms of every recorded step of ``state``, from the recording's time mapping."""
    if state not in recorded_states(ds):
        raise InputError(f"state {state!r} is not in this recording; it has {recorded_states(ds)}")
    return time_mapping(ds).latency(ds[TIME].values, state)


def state_array(ds: xr.Dataset, state: str) -> xr.DataArray:
    """One state's activity with the plain dims (stimulus, time, channel, y, x) / (.., feature) and its own
    millisecond coordinates on ``time``."""
    from visrecur.checks import dataset_arg

    dataset_arg(ds, "a recording")
    if not isinstance(state, str) or state not in recorded_states(ds) or state not in ds:
        raise InputError(f"state {state!r} is not in this recording; it has {recorded_states(ds)}")
    da = ds[state]
    da = da.rename({d: d[len(state) + 1:] for d in da.dims if d.startswith(f"{state}_")})
    low, high = latency(ds, state)
    if "state_runs" in ds.coords:  # a timed model's area: no ms at the steps it does not run
        runs = ds["state_runs"].sel(state=state).values == 1
        low, high = np.where(runs, low, np.nan), np.where(runs, high, np.nan)
    return da.assign_coords({LATENCY[0]: (TIME, low), LATENCY[1]: (TIME, high)})


def summary(path: Path, ds: xr.Dataset) -> str:
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    mapping = time_mapping(ds)
    last = int(ds[TIME].max())
    lines = [f"recorded {ds.attrs['model']} on {ds.sizes[STIMULUS]} stimuli ({ds.attrs['stimulus_set']}), "
             f"steps {int(ds[TIME].min())}..{last} ({mapping.describe()})",
             f"  -> {path}  ({size / 1e6:.1f} MB)"]
    for name in recorded_states(ds):
        # a timed model's area runs only its own steps (its 'steps' attr): report its last one
        own = [int(t) for t in str(ds[name].attrs.get("steps", "")).split() if int(t) <= last]
        step = own[-1] if own else last
        low, high = mapping.latency(step, name)
        lines.append(f"  {name:>6}: {dict(ds[name].sizes)}  arrives at t={ds[name].attrs['arrival_time']}, "
                     f"step {step} at {float(low):.0f}-{float(high):.0f} ms")
    readouts = ds[READOUT].values
    if len(readouts):  # a timed model may have no readout
        lines.append(f"  logits, probabilities: readout times {readouts.min()}..{readouts.max()} "
                     f"({ds[READOUT_LATENCY[0]].values.min():.0f}-{ds[READOUT_LATENCY[1]].values.max():.0f} ms), "
                     f"{ds.sizes[CLASS]} classes")
    else:
        lines.append("  no readout")
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
    from visrecur.checks import dataset_arg, names_arg

    dataset_arg(ds, "a recording")
    states = names_arg(states, "states") or recorded_states(ds)
    if not states:
        raise InputError("no states to export; give states=[...]")
    parts = []
    for state in states:
        if state not in ds:
            raise InputError(f"state {state!r} is not in this recording; it has {recorded_states(ds)}")
        da = state_array(ds, state).drop_vars(list(LATENCY))
        if times is not None:
            missing = sorted(set(times) - set(int(t) for t in da[TIME].values))
            if missing:
                raise InputError(f"time step(s) {missing} are not in this recording; it has steps "
                                 f"{[int(t) for t in da[TIME].values]}")
            da = da.sel(time=list(times))
        feature_dims = [d for d in da.dims if d not in (STIMULUS, TIME)]
        stacked = da.stack(neuroid=feature_dims).transpose(STIMULUS, "neuroid", TIME)
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
    if out.sizes[TIME] == 1:
        out = out.isel(time=0)
    out.name = "activity"
    out.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}
    return out
