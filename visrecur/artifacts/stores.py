"""Where a recording is stored while it is made: netCDF (h5netcdf) or zarr partial files laid out from the
template, chunk writes, checks before starting or resuming, and the final atomic rename (or, from a zarr
store that several ranks shared, conversion) to the output path."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from visrecur.errors import InputError
from visrecur.artifacts.io import writable_ancestor
from visrecur.artifacts.recordings import RECORDED_ATTRS, Template

# everything that determines the stored values: a resume must agree on each
RESUME_KEYS = ("model_spec", "checkpoint_sha256", "preprocess", "stimulus_set_sha256", "reduction_spec",
               "reduction_seed", "reduction_basis_sha256", "pca_fit_set_sha256", "states", "ms_per_step", "onset_ms")


def partial_paths(output: Path) -> list[Path]:
    """Where an unfinished recording lives: a netCDF file (single process, .nc output) or a zarr store."""
    return [output.with_name(output.name + ".partial.nc"), output.with_name(output.name + ".partial.zarr")]


def remove(paths) -> None:
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _lazy(template: Template, chunk: int) -> xr.Dataset:
    """The full dataset with NaN data as lazy dask arrays (for laying out a zarr store)."""
    import dask.array as da

    return template.dataset().assign({
        name: (dims, da.full(shape, np.nan, dtype=np.float32, chunks=(chunk,) + shape[1:]), attrs)
        for name, (dims, shape, attrs) in template.layout.items()})


def write_batch(store, rows: slice, batch: dict) -> None:
    for name, values in batch.items():
        store[name][rows] = values
    store["recorded"][rows] = True  # last: a batch counts as recorded only once fully written
    if hasattr(store, "flush"):
        store.flush()


def create_partial(template: Template, partial: Path, batch_size: int) -> None:
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
def open_partial(partial: Path):
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


def check_writable(output: Path) -> None:
    """Refuse an output whose folder cannot be created or written, without creating anything."""
    existing, writable = writable_ancestor(Path(output).resolve().parent)
    if not writable:
        raise InputError(f"cannot write {str(output)!r}: {str(existing)!r} is not a writable folder; choose "
                         "another --output")


def check_output(output: Path, partial: Path, existing: list[Path], overwrite: bool, resume: bool) -> None:
    check_writable(output)
    if output.exists() and not overwrite:
        raise InputError(f"{str(output)!r} already exists; pass --overwrite to replace it or choose --output")
    if resume and not existing:
        raise InputError(f"nothing to resume: no unfinished recording {str(partial)!r} (it is kept only while a "
                         "recording is unfinished); run without --resume")
    if existing and not resume and not overwrite:
        raise InputError(f"an unfinished recording {str(existing[0])!r} exists; pass --resume to continue it or "
                         "--overwrite to start again")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder {str(output.parent)!r} ({err.strerror})") from None


def check_resumable(partial: Path, template: Template) -> np.ndarray:
    try:
        stored = xr.open_zarr(partial) if partial.suffix == ".zarr" else xr.open_dataset(partial, engine="h5netcdf")
    except Exception as err:  # e.g. a netCDF file cut off by a hard kill
        raise InputError(f"cannot resume {str(partial)!r}: it cannot be read ({type(err).__name__}); pass "
                         "--overwrite to start again (zarr outputs survive hard kills)") from None
    for key in RESUME_KEYS:
        theirs, mine = stored.attrs.get(key), template.attrs.get(key)
        if key == "stimulus_set_sha256" and not mine:
            continue
        if json.dumps(_plain(theirs)) != json.dumps(_plain(mine)):
            shown = [v if len(json.dumps(_plain(v))) <= 80 else "(another value)" for v in (theirs, mine)]
            raise InputError(f"cannot resume {str(partial)!r}: its {key} is {shown[0]!r}, this run's is "
                             f"{shown[1]!r}; resume with the same options, or pass --overwrite")
    if (stored.sizes.get("stimulus") != template.n
            or list(stored["time"].values) != list(template.coords["time"][1])
            or list(stored["readout_time"].values) != list(template.coords["readout_time"][1])):
        raise InputError(f"cannot resume {str(partial)!r}: it has other stimuli or time steps than this run")
    return stored["recorded"].values.astype(bool)


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def finalize(partial: Path, output: Path) -> None:
    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    if partial.suffix == output.suffix == ".nc":
        os.replace(partial, output)
    elif output.suffix == ".zarr":
        import zarr  # only here: a netCDF recording by one process needs no zarr

        zarr.consolidate_metadata(str(partial))
        os.replace(partial, output)
    else:  # several ranks wrote a zarr store; the netCDF file is written from it chunk by chunk
        tmp = output.with_name(output.name + ".tmp")
        with xr.open_zarr(partial) as ds:
            ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, output)
        shutil.rmtree(partial)

