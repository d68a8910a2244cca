"""Record what every state did at every time step: ``python -m visrecur.record``.

The recording is an xarray Dataset with one variable per state (dims ``stimulus, time`` then the
state's own ``<state>_channel, <state>_y, <state>_x``, or fewer after a reduction), logits and class
probabilities at every step where the post-net can read out, and provenance in ``attrs``. It is
written batch by batch into ``<output>.partial.nc`` (netCDF output) or ``<output>.partial.zarr`` (zarr
output, or several processes under torchrun), so memory is bounded by the batch size and an interrupted
run continues with ``--resume``; only a finished recording is renamed (or, from a shared zarr store,
converted) to the output path, which therefore never exists half-written.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from . import __version__
from .checkpoint import DEFAULT_CHECKPOINT, load as load_checkpoint
from .data import CIFAR10_MEAN, CIFAR10_STD
from .errors import InputError, TimeStepError, VisrecurError
from .files import sha256
from .reductions import Reduction
from .stimuli import StimulusSet, describe_preprocessing, preprocess, resolve
from .recordings import open_recording, summary
from .timing import DEFAULT_MS_PER_STEP, latency_ms

UNTRAINED_WARNING = ("UNTRAINED: random weights, not a trained model; its activity says nothing about "
                     "vision. Train one with python -m visrecur.train or use a checkpoint.")


@dataclass
class ModelSource:
    """A model with what a recording must say about it."""

    model: torch.nn.Module
    name: str
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    trained: bool = False
    mean: tuple = CIFAR10_MEAN
    std: tuple = CIFAR10_STD
    classes: tuple = ()


def load_model(name_or_path: str | None = None, seed: int = 0) -> ModelSource:
    """A checkpoint path, a zoo name (untrained), or None: the pretrained default shipped with visrecur
    (an untrained default model, flagged loudly, when no checkpoint is shipped)."""
    from . import zoo

    if name_or_path is None:
        if DEFAULT_CHECKPOINT.is_file():
            return load_model(str(DEFAULT_CHECKPOINT))
        name_or_path = "frnn_4state_shared"
    if name_or_path.endswith(".pt") or Path(name_or_path).is_file():
        model, payload = load_checkpoint(name_or_path, with_payload=True)
        norm = payload.get("normalization", {})
        return ModelSource(model, model.spec.name, str(name_or_path), sha256(name_or_path), True,
                           tuple(norm.get("mean", CIFAR10_MEAN)), tuple(norm.get("std", CIFAR10_STD)),
                           tuple(payload.get("classes", ())))
    torch.manual_seed(seed)  # the same untrained weights on every run and every rank
    model = zoo.build(name_or_path).eval()
    return ModelSource(model, name_or_path)


# --- the recording plan and its template ---------------------------------------------------------
def _plan(model, states, times, readout_time):
    spec = model.spec
    names = [s.name for s in spec.graph.states]
    states = list(states) if states else names
    for s in states:
        spec.graph.state_index(s, "--states")
    readout_time = readout_time or spec.readout_time
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


def _template(source: ModelSource, stimuli: StimulusSet, states, times, readouts, reduction: Reduction,
              ms_per_step, extra_attrs: dict) -> Template:
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
    low, high = latency_ms(times, ms_per_step)
    readout_low, readout_high = latency_ms(readouts, ms_per_step)
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
        "time_specific_bn_past_trained_steps": (f"steps past {spec.time_steps} reuse step {spec.time_steps}'s "
                                                "statistics" if max(max(times), max(readouts)) > spec.time_steps
                                                else "not used"),
        "ms_per_step": list(ms_per_step),
        "stimulus_set": stimuli.name,
        "stimulus_set_description": stimuli.description,
        "preprocessing": describe_preprocessing(spec.input_size, source.mean, source.std),
        "reduction": reduction.describe(),
        "reduction_spec": f"{reduction.kind}:{reduction.size}" if reduction.size else reduction.kind,
        "states": " ".join(states),  # netCDF attributes hold strings, not lists of them
        "visrecur_version": __version__,
        "torch_version": str(torch.__version__),
        **extra_attrs,
    }
    coords = {name: value if len(value) == 3 else (*value, {}) for name, value in coords.items()}
    return Template(coords, attrs, layout, n)


def _lazy(template: Template, chunk: int) -> xr.Dataset:
    """The full dataset with NaN data as lazy dask arrays (for laying out a zarr store)."""
    import dask.array as da

    return template.dataset().assign({
        name: (dims, da.full(shape, np.nan, dtype=np.float32, chunks=(chunk,) + shape[1:]), attrs)
        for name, (dims, shape, attrs) in template.layout.items()})


# --- computing one batch --------------------------------------------------------------------------
def _batch_arrays(source, stimuli, indices, device, states, times, readouts, reduction):
    """{variable: numpy array (batch, time, ...)} for the stimuli at ``indices``."""
    model, images = source.model, _images(stimuli, indices, source, device)
    index = {t: k for k, t in enumerate(times)}
    wanted = set(states)
    captured: dict[tuple[str, int], np.ndarray] = {}

    def observer(name, t, value):
        if name in wanted and t in index:
            captured[(name, t)] = reduction(name, value)

    with torch.no_grad():
        logits = model(images, readout_time=readouts, observer=observer, until=max(times))
    b = images.shape[0]
    out = {}
    for name in states:
        sample = next(v for (s, _), v in captured.items() if s == name)
        array = np.full((b, len(times)) + sample.shape[1:], np.nan, dtype=np.float32)
        for (s, t), value in captured.items():
            if s == name:
                array[:, index[t]] = value
        out[name] = array
    stacked = torch.stack([logits[t].float() for t in readouts], 1)  # batch x readout time x class
    out["logits"] = stacked.cpu().numpy()
    out["probabilities"] = torch.softmax(stacked, 2).cpu().numpy()
    return out


def _images(stimuli, indices, source, device):
    size = source.model.spec.input_size
    batch = torch.stack([preprocess(stimuli.image(i), size, source.mean, source.std) for i in indices])
    return batch.to(device)


# --- public API -----------------------------------------------------------------------------------
def record(source: ModelSource | torch.nn.Module, stimuli: StimulusSet, output: str | Path | None = None, *,
           states: Sequence[str] | None = None, times: Sequence[int] | None = None,
           readout_time: int | None = None, reduction: Reduction | str | None = None,
           batch_size: int = 64, device: str = "cpu", overwrite: bool = False, resume: bool = False,
           ms_per_step=DEFAULT_MS_PER_STEP, pca_fit: StimulusSet | None = None, progress: bool = True,
           stop_after_batches: int | None = None):
    """Record ``stimuli`` through the model. Without ``output``, return the Dataset in memory; with it,
    stream to ``output`` (.nc or .zarr) and return its path."""
    if isinstance(source, torch.nn.Module):
        source = ModelSource(source, getattr(source.spec, "name", "model"))
    reduction = reduction if isinstance(reduction, Reduction) else Reduction.parse(reduction)
    model = source.model.to(device).eval()
    states, times, readouts = _plan(model, states, times, readout_time)
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    if reduction.kind == "pca":
        _fit_pca(source, pca_fit or stimuli, states, times, readouts, reduction, batch_size, device)
    rank, world = _dist_info()
    extra = {"stimulus_set_sha256": stimuli.content_hash() if rank == 0 else "",
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    template = _template(source, stimuli, states, times, readouts, reduction, ms_per_step, extra)
    if output is None:
        return _record_in_memory(source, stimuli, template, states, times, readouts, reduction, batch_size,
                                 device, progress)
    return _record_to_store(source, stimuli, Path(output), template, states, times, readouts, reduction,
                            batch_size, device, overwrite, resume, progress, rank, world, stop_after_batches)


def _record_in_memory(source, stimuli, template, states, times, readouts, reduction, batch_size, device,
                      progress):
    from tqdm.auto import tqdm

    ds, layout = template.dataset(), template.layout
    arrays = {name: np.full(shape, np.nan, dtype=np.float32) for name, (_, shape, _) in layout.items()}
    for start in tqdm(range(0, len(stimuli), batch_size), disable=not progress, desc="recording", leave=False):
        indices = range(start, min(start + batch_size, len(stimuli)))
        batch = _batch_arrays(source, stimuli, indices, device, states, times, readouts, reduction)
        for name, values in batch.items():
            arrays[name][start:start + len(indices)] = values
    for name, values in arrays.items():
        ds[name] = (layout[name][0], values, layout[name][2])
    ds["recorded"] = ("stimulus", np.ones(len(stimuli), dtype=bool), ds["recorded"].attrs)
    return ds


def partial_paths(output: Path) -> list[Path]:
    """Where an unfinished recording lives: a netCDF file (single process, .nc output) or a zarr store."""
    return [output.with_name(output.name + ".partial.nc"), output.with_name(output.name + ".partial.zarr")]


def _record_to_store(source, stimuli, output, template, states, times, readouts, reduction, batch_size,
                     device, overwrite, resume, progress, rank, world, stop_after_batches):
    from tqdm.auto import tqdm

    if output.suffix not in (".nc", ".zarr"):
        raise InputError(f"output {str(output)!r} must end in .nc (netCDF) or .zarr")
    as_nc, as_zarr = partial_paths(output)
    existing = [p for p in (as_nc, as_zarr) if p.exists()]
    # several processes share a zarr store (disjoint chunks); one process writes .nc output directly
    partial = existing[0] if resume and existing else (as_nc if output.suffix == ".nc" and world == 1 else as_zarr)
    if rank == 0:
        _check_output(output, partial, existing, overwrite, resume)
        if not resume:
            for old in existing:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            _create_partial(template, partial, batch_size)
    _barrier(world)
    done = _check_resumable(partial, template) if resume else np.zeros(len(stimuli), dtype=bool)
    starts = [s for s in range(0, len(stimuli), batch_size) if not done[s:s + batch_size].all()]
    mine = starts[rank::world]
    # one writer thread: batch k is written while batch k + 1 is computed; at most one batch waits, so
    # memory stays bounded by the batch size
    with _open_partial(partial) as store, ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for k, start in enumerate(tqdm(mine, disable=not (progress and rank == 0), desc="recording", leave=False)):
            if stop_after_batches is not None and k >= stop_after_batches:
                raise KeyboardInterrupt("stopped on request (testing resume)")
            indices = range(start, min(start + batch_size, len(stimuli)))
            batch = _batch_arrays(source, stimuli, indices, device, states, times, readouts, reduction)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_batch, store, slice(indices.start, indices.stop), batch)
        if pending is not None:
            pending.result()
    _barrier(world)
    if rank == 0:
        _finalize(partial, output)
    _barrier(world)
    return output


def _write_batch(store, rows: slice, batch: dict) -> None:
    for name, values in batch.items():
        store[name][rows] = values
    store["recorded"][rows] = True  # last: a batch counts as recorded only once fully written
    if hasattr(store, "flush"):
        store.flush()


def _create_partial(template: Template, partial: Path, batch_size: int) -> None:
    """Lay out every variable, NaN-filled and unwritten: one chunk per batch (ranks writing different
    batches never share a chunk) and no compression (it cost more than the model's forward pass,
    benchmarks/bench_recording.py)."""
    chunk = min(batch_size, template.n)
    if partial.suffix == ".zarr":
        encoding = {name: _no_compression() for name in list(template.layout) + ["recorded"]}
        encoding["recorded"]["chunks"] = (chunk,)
        _lazy(template, chunk).to_zarr(partial, mode="w", compute=False, encoding=encoding, **_zarr_kwargs())
    else:
        _create_netcdf(template, partial, chunk)


def _create_netcdf(template: Template, partial: Path, chunk: int) -> None:
    """The netCDF layout written with h5netcdf alone, in the conventions xarray reads back (non-index
    coordinates named in the global "coordinates" attribute, booleans as int8 with dtype="bool").
    Going without xarray here spares a second of start-up: xarray imports dask to build a Dataset."""
    import h5netcdf
    import h5py

    dims = {}
    for name, (var_dims, values, _) in template.coords.items():
        dims.update(zip((var_dims,) if isinstance(var_dims, str) else var_dims, np.shape(values)))
    for var_dims, shape, _ in template.layout.values():
        dims.update(zip(var_dims, shape))
    with h5netcdf.File(partial, "w") as f:
        f.dimensions = dims
        for name, (var_dims, values, attrs) in template.coords.items():
            values = np.asarray(values)
            if values.dtype == object or values.dtype.kind == "U":
                variable = f.create_variable(name, (var_dims,), dtype=h5py.string_dtype())
                variable[...] = values.astype(object)
            else:
                variable = f.create_variable(name, (var_dims,), data=values)
            variable.attrs.update(attrs)
        recorded = f.create_variable("recorded", ("stimulus",), data=np.zeros(template.n, dtype=np.int8),
                                     chunks=(chunk,))
        recorded.attrs.update({**RECORDED_ATTRS, "dtype": "bool"})
        for name, (var_dims, shape, attrs) in template.layout.items():
            variable = f.create_variable(name, var_dims, np.float32, fillvalue=np.float32(np.nan),
                                         chunks=(chunk,) + shape[1:])
            variable.attrs.update(attrs)
        f.attrs.update(template.attrs)
        f.attrs["coordinates"] = " ".join(name for name, (d, _, _) in template.coords.items() if d != name)


@contextmanager
def _open_partial(partial: Path):
    """Array-like access to the partial output's variables, opened once for the whole run."""
    if partial.suffix == ".zarr":
        import zarr

        yield zarr.open_group(str(partial), mode="r+")
    else:
        import h5py

        with h5py.File(partial, "r+") as f:
            yield f


def _zarr_kwargs() -> dict:
    import inspect

    # zarr format 2 stores open with every xarray and zarr release researchers use
    return {"zarr_format": 2} if "zarr_format" in inspect.signature(xr.Dataset.to_zarr).parameters else {}


def _no_compression() -> dict:
    import zarr

    return {"compressors": None} if int(zarr.__version__.split(".")[0]) >= 3 else {"compressor": None}


def _check_output(output: Path, partial: Path, existing: list[Path], overwrite: bool, resume: bool) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder {str(output.parent)!r} ({err.strerror})") from None
    if output.exists() and not overwrite:
        raise InputError(f"{str(output)!r} already exists; pass --overwrite to replace it or choose --output")
    if resume and not existing:
        raise InputError(f"nothing to resume: no unfinished recording {str(partial)!r} (it is kept only while a "
                         "recording is unfinished); run without --resume")
    if existing and not resume and not overwrite:
        raise InputError(f"an unfinished recording {str(existing[0])!r} exists; pass --resume to continue it or "
                         "--overwrite to start again")


def _check_resumable(partial: Path, template: Template) -> np.ndarray:
    try:
        stored = xr.open_zarr(partial) if partial.suffix == ".zarr" else xr.open_dataset(partial, engine="h5netcdf")
    except Exception as err:  # e.g. a netCDF file cut off by a hard kill
        raise InputError(f"cannot resume {str(partial)!r}: it cannot be read ({type(err).__name__}); pass "
                         "--overwrite to start again (zarr outputs survive hard kills)") from None
    for key in ("model_spec", "checkpoint_sha256", "stimulus_set_sha256", "reduction_spec", "states"):
        theirs, mine = stored.attrs.get(key), template.attrs.get(key)
        if key == "stimulus_set_sha256" and not mine:
            continue
        if json.dumps(_plain(theirs)) != json.dumps(_plain(mine)):
            raise InputError(f"cannot resume {str(partial)!r}: its {key} differs from this run's; resume with "
                             "the same model, stimuli, states and reduction, or pass --overwrite")
    if (stored.sizes.get("stimulus") != template.n
            or list(stored["time"].values) != list(template.coords["time"][1])
            or list(stored["readout_time"].values) != list(template.coords["readout_time"][1])):
        raise InputError(f"cannot resume {str(partial)!r}: it has other stimuli or time steps than this run")
    return stored["recorded"].values.astype(bool)


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def _finalize(partial: Path, output: Path) -> None:
    import zarr

    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    if partial.suffix == output.suffix == ".nc":
        os.replace(partial, output)
    elif output.suffix == ".zarr":
        zarr.consolidate_metadata(str(partial))
        os.replace(partial, output)
    else:  # several ranks wrote a zarr store; the netCDF file is written from it chunk by chunk
        tmp = output.with_name(output.name + ".tmp")
        with xr.open_zarr(partial) as ds:
            ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, output)
        shutil.rmtree(partial)


def _fit_pca(source, fit_set, states, times, readouts, reduction, batch_size, device):
    """Fit the PCA on the fitting set's unreduced activity (all its stimuli, every populated step)."""
    full = Reduction("none")
    samples = {name: [] for name in states}
    for start in range(0, len(fit_set), batch_size):
        indices = range(start, min(start + batch_size, len(fit_set)))
        batch = _batch_arrays(source, fit_set, indices, device, states, times, readouts, full)
        for name in states:
            values = batch[name].reshape(batch[name].shape[0] * batch[name].shape[1], -1)
            samples[name].append(values[~np.isnan(values).any(axis=1)])
    reduction.fit_pca({name: np.concatenate(parts) for name, parts in samples.items()})


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), world
    return 0, 1


def _barrier(world):
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# --- command line ----------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m visrecur.record",
        description="Record every state of a recurrent model at every time step into an xarray dataset. "
                    "With no arguments: the pretrained default model (4-state FRNN V1-V2-V4-IT, CIFAR-10) on "
                    "the built-in stimuli, into recordings/<model>_<stimuli>.nc.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m visrecur.record\n"
               "  python -m visrecur.record --stimuli 92images --reduction mean\n"
               "  python -m visrecur.record --model runs/x/checkpoint.pt --stimuli photos/ --states V4 IT \\\n"
               "      --times 0 1 2 3 4 5 6 7 --output rec.zarr\n"
               "  python -m visrecur.record --output rec.zarr --resume      # after an interruption\n"
               "read it back: visrecur.recordings.open_recording(path) (lazy xarray.Dataset)")
    p.add_argument("--model", help="checkpoint (.pt) or zoo model name (untrained!); default: the shipped "
                                   "pretrained model")
    p.add_argument("--stimuli", nargs="+", default=["builtin"],
                   help="builtin | 92images[:file.mat] | cifar10-test[:root] | folder | array.npy | list.txt | "
                        "image files (default: builtin)")
    p.add_argument("--limit", type=int, help="record only the first N stimuli")
    p.add_argument("--states", nargs="+", help="states to record (default: all)")
    p.add_argument("--times", nargs="+", type=int,
                   help="state time steps (default 0..T-1, the steps a readout at T is computed from)")
    p.add_argument("--readout-time", type=int, help="readout time T; logits are recorded at every readout "
                                                       "time up to T (default: the model's)")
    p.add_argument("--reduction", default="none", help="none | mean | pool:K | srp:D | pca:D (default none)")
    p.add_argument("--pca-fit", nargs="+", help="stimuli to fit the PCA on (default: the recorded ones)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random projection")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--output", help="output .nc or .zarr (default recordings/<model>_<stimuli>.nc)")
    p.add_argument("--format", choices=["nc", "zarr"], default="nc", help="format of the default output")
    p.add_argument("--ms-per-step", nargs=2, type=float, default=list(DEFAULT_MS_PER_STEP),
                   metavar=("LOW", "HIGH"), help="latency of one step in ms (default 20 50)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--resume", action="store_true", help="continue an interrupted recording")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        source = load_model(args.model)
        if not source.trained:
            print(f"WARNING: {UNTRAINED_WARNING}", file=sys.stderr)
        stimuli = resolve(args.stimuli, args.limit)
        pca_fit = resolve(args.pca_fit) if args.pca_fit else None
        output = Path(args.output or f"recordings/{source.name}_{stimuli.name}.{args.format}")
        reduction = Reduction.parse(args.reduction, args.seed)
        path = record(source, stimuli, output, states=args.states, times=args.times,
                      readout_time=args.readout_time, reduction=reduction, batch_size=args.batch_size,
                      device=args.device, overwrite=args.overwrite, resume=args.resume,
                      ms_per_step=tuple(args.ms_per_step), pca_fit=pca_fit, progress=not args.no_progress)
        if _dist_info()[0] == 0:
            with open_recording(path) as ds:
                print(summary(path, ds))
    except VisrecurError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
