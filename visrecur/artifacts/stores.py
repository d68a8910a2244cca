"""Where a recording is kept: a ``Store`` per file format (netCDF, zarr) behind one registry, ``STORES``, by
suffix. A new format is one class with ``suffix``, ``create`` (lay out a partial recording from the
template), ``writer`` (array-like access for the batches), ``open`` (lazy reading) and ``publish`` (the
finished partial becomes the output).

A recording is made in ``<output>.partial<suffix>`` and published only when complete. Several processes
(torchrun) share one zarr partial (disjoint chunks), converted to netCDF at the end when the output is
.nc. The checks before starting or resuming are here too (``check_output``, ``check_resumable``).
"""
from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from visrecur.artifacts.io import (
    atomic_path,
    check_replaceable,
    publish,
    remove,
    writable_ancestor,
)
from visrecur.artifacts.recordings import RECORDED_ATTRS, RESUME_KEYS, SCHEMA, Template
from visrecur.errors import InputError

PARTIAL = ".partial"


class Store:
    """One file format for recordings."""

    suffix = ""
    name = ""

    def create(self, template: Template, path: Path, chunk: int) -> None:
        """Lay out every variable, NaN-filled and unwritten, one chunk per batch of ``chunk`` stimuli."""
        raise NotImplementedError

    @contextmanager
    def writer(self, path: Path):
        """Array-like access (``writer[name][rows] = values``) to a partial recording, for the whole run."""
        raise NotImplementedError

    def open(self, path: Path) -> xr.Dataset:
        """The recording at ``path``, lazily (dask arrays)."""
        raise NotImplementedError

    def publish(self, partial: Path, output: Path) -> None:
        """Make the finished ``partial`` (of this format) the ``output`` (of this format): flushed to disk,
        then renamed onto it, so a reader finds the old output or the whole new one."""
        publish(partial, output)

    def schema(self, path: Path) -> str | None:
        """The ``schema`` attr of the dataset at ``path`` (read without opening it as a dataset), or None."""
        raise NotImplementedError

    def looks_like(self, path: Path) -> bool:
        """Whether ``path`` is a file (or folder) of this format, even one cut off by a hard kill."""
        raise NotImplementedError


class NetCDFStore(Store):
    suffix, name = ".nc", "netCDF (h5netcdf)"

    def create(self, template, path, chunk):
        """The layout written with h5netcdf alone, in the conventions xarray reads back (non-index
        coordinates named in the global "coordinates" attribute, booleans as int8 with dtype="bool").
        Going without xarray here spares a second of start-up: xarray imports dask to build a Dataset.
        No compression: it cost more than the model's forward pass (benchmarks/bench_recording.py)."""
        import h5netcdf
        import h5py

        dims = {}
        for name, (var_dims, values, _) in template.coords.items():
            dims.update(zip(_dims(var_dims), np.shape(values)))
        for var_dims, shape, _ in template.layout.values():
            dims.update(zip(var_dims, shape))
        with h5netcdf.File(path, "w") as f:
            f.dimensions = dims
            for name, (var_dims, values, attrs) in template.coords.items():
                values = np.asarray(values)
                if values.dtype == object or values.dtype.kind == "U":
                    variable = f.create_variable(name, _dims(var_dims), dtype=h5py.string_dtype())
                    variable[...] = values.astype(object)
                else:
                    variable = f.create_variable(name, _dims(var_dims), data=values)
                variable.attrs.update(attrs)
            recorded = f.create_variable("recorded", ("stimulus",), data=np.zeros(template.n, dtype=np.int8),
                                         chunks=(chunk,))
            recorded.attrs.update({**RECORDED_ATTRS, "dtype": "bool"})
            for name, (var_dims, shape, attrs) in template.layout.items():
                variable = f.create_variable(name, var_dims, np.float32, fillvalue=np.float32(np.nan),
                                             chunks=(chunk,) + shape[1:])
                variable.attrs.update(attrs)
            f.attrs.update(template.attrs)
            f.attrs["coordinates"] = " ".join(name for name, (d, _, _) in template.coords.items()
                                              if _dims(d) != (name,))

    @contextmanager
    def writer(self, path):
        import h5py

        with h5py.File(path, "r+") as f:
            yield f

    def open(self, path):
        return xr.open_dataset(path, engine="h5netcdf", chunks={})

    def schema(self, path):
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get("schema")
        return value.decode() if isinstance(value, bytes) else None if value is None else str(value)

    def looks_like(self, path):
        import h5py

        return path.is_file() and h5py.is_hdf5(path)


class ZarrStore(Store):
    suffix, name = ".zarr", "zarr (format 2)"

    def create(self, template, path, chunk):
        import dask.array as da

        lazy = template.dataset().assign({
            name: (dims, da.full(shape, np.nan, dtype=np.float32, chunks=(chunk,) + shape[1:]), attrs)
            for name, (dims, shape, attrs) in template.layout.items()})
        encoding = {name: self._no_compression() for name in list(template.layout) + ["recorded"]}
        encoding["recorded"]["chunks"] = (chunk,)
        lazy.to_zarr(path, mode="w", compute=False, encoding=encoding, **self._format())

    @contextmanager
    def writer(self, path):
        import zarr

        yield zarr.open_group(str(path), mode="r+")

    def open(self, path):
        return xr.open_zarr(path)

    def publish(self, partial, output):
        import zarr  # only here: a netCDF recording by one process needs no zarr

        zarr.consolidate_metadata(str(partial))
        publish(partial, output)

    def schema(self, path):
        import zarr

        value = zarr.open_group(str(path), mode="r").attrs.get("schema")
        return None if value is None else str(value)

    def looks_like(self, path):
        return path.is_dir() and any((path / name).is_file() for name in (".zgroup", "zarr.json"))

    @staticmethod
    def _format() -> dict:
        # zarr format 2 stores open with every xarray and zarr release researchers use
        return {"zarr_format": 2} if "zarr_format" in inspect.signature(xr.Dataset.to_zarr).parameters else {}

    @staticmethod
    def _no_compression() -> dict:
        import zarr

        return {"compressors": None} if int(zarr.__version__.split(".")[0]) >= 3 else {"compressor": None}


STORES: dict[str, Store] = {store.suffix: store for store in (NetCDFStore(), ZarrStore())}


def _dims(var_dims) -> tuple:
    return (var_dims,) if isinstance(var_dims, str) else tuple(var_dims)


def store_for(path: str | Path) -> Store:
    """The store of ``path``'s format (its suffix, a partial's included), or one clear error."""
    path = Path(path)
    suffix = path.suffix
    if suffix not in STORES:
        raise InputError(f"output {str(path)!r} must end in " + " or ".join(
            f"{s} ({store.name})" for s, store in STORES.items()))
    return STORES[suffix]


def partial_paths(output: Path) -> list[Path]:
    """Where an unfinished recording of ``output`` may live: one partial per store format."""
    return [output.with_name(output.name + PARTIAL + suffix) for suffix in STORES]


def is_partial_name(path: Path) -> bool:
    return any(path.name.endswith(PARTIAL + suffix) for suffix in STORES)


def made_by_visrecur(path: Path) -> bool:
    """Whether ``path`` is a recording visrecur made (its format, and the schema in its attrs), or the
    partial of one: named ``<output>.partial<suffix>`` and of that format, even if a hard kill cut it
    off before its attrs were written."""
    store = STORES.get(path.suffix)
    if store is None or not store.looks_like(path):
        return False
    if is_partial_name(path):
        return True
    try:
        schema = store.schema(path)
    except Exception:  # noqa: BLE001 (unreadable: not recognisably a recording)
        return False
    return schema is not None and schema.split("-")[:2] == SCHEMA.split("-")[:2]


def partial_for(output: Path, world: int) -> Path:
    """The partial a new recording of ``output`` is made in: the output's own format, except that
    several processes share a zarr store."""
    suffix = ZarrStore.suffix if world > 1 else store_for(output).suffix
    return output.with_name(output.name + PARTIAL + suffix)


def write_batch(writer, rows: slice, batch: dict) -> None:
    for name, values in batch.items():
        writer[name][rows] = values
    writer["recorded"][rows] = True  # last: a batch counts as recorded only once fully written
    if hasattr(writer, "flush"):
        writer.flush()


def finalize(partial: Path, output: Path) -> None:
    """Publish a finished partial as ``output``: renamed in its own format, or converted (a zarr store
    shared by several processes to a netCDF output) chunk by chunk through a temporary file."""
    source, target = store_for(partial), store_for(output)
    if source is target:
        target.publish(partial, output)
        return
    with atomic_path(output) as tmp, source.open(partial) as ds:
        ds.to_netcdf(tmp, engine="h5netcdf")
    remove(partial)


# --- checks before starting or resuming ----------------------------------------------------------------
def check_writable(output: Path) -> None:
    """Refuse an output of an unknown format, or whose folder cannot be created or written, without
    creating anything."""
    store_for(output)
    existing, writable = writable_ancestor(Path(output).resolve().parent)
    if not writable:
        raise InputError(f"cannot write {str(output)!r}: {str(existing)!r} is not a writable folder; choose "
                         "another --output")


def check_output(output: Path, partial: Path, existing: list[Path], overwrite: bool, resume: bool,
                 create: bool = True) -> None:
    """Before a recording starts (under the output's lock, ``io.exclusive``): what is at the output and its
    partials may be replaced only if visrecur made it (``io.check_replaceable``), and only as asked.
    ``create=False``: the same checks before any work, creating nothing (the output folder included)."""
    check_writable(output)
    check_replaceable(output, made_by_visrecur, "recording", overwrite)
    for path in existing:
        check_replaceable(path, made_by_visrecur, "partial recording", True)
    if resume and not existing:
        raise InputError(f"nothing to resume: no unfinished recording {str(partial)!r} (it is kept only while a "
                         "recording is unfinished); run without --resume")
    if existing and not resume and not overwrite:
        raise InputError(f"an unfinished recording {str(existing[0])!r} exists; pass --resume to continue it or "
                         "--overwrite to start again")
    if not create:
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder {str(output.parent)!r} ({err.strerror})") from None


def check_resumable(partial: Path, template: Template) -> np.ndarray:
    """Which stimuli the partial recording holds already, after checking that it was made with everything
    this run would store (``RESUME_KEYS``) and the same stimuli and steps."""
    try:
        stored = store_for(partial).open(partial)
    except Exception as err:  # e.g. a netCDF file cut off by a hard kill
        raise InputError(f"cannot resume {str(partial)!r}: it cannot be read ({type(err).__name__}); pass "
                         "--overwrite to start again (zarr outputs survive hard kills)") from None
    with stored:  # closed before the writer opens the file again
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
