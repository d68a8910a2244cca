"""Result tables: one writer, one reader and one vocabulary for what the analyses write and the notebooks
and docs pages read.

A table is a CSV file with a metadata file beside it, ``NAME.csv-metadata.json`` (the name CSV on the
Web uses to find a table's metadata): the table's description, the command that wrote it, every
column's units, and provenance (model, checkpoint hash, time mapping, visrecur version).
``read_table`` returns a ``pandas.DataFrame`` whose ``attrs`` hold them (``attrs["units"]``: column ->
units). Both files are written atomically, together.

The vocabulary, used by every analysis:

* milliseconds are a pair of columns, ``<what>_min_ms`` and ``<what>_max_ms`` (``ms_columns``): a step
  is known in ms only as a range (``visrecur.timing.TimeMapping``). ``<what>`` is ``latency`` for when a
  step or readout happens, or the quantity (``rt``, ``duration``, ``tau``);
* ``tsbn_policy``: which time-specific batch-norm statistics were used, one of
  ``visrecur.nn.statistics.POLICIES`` (trained, past, every, after-first-state), and ``calibration``:
  the images that estimated them ("none" for the trained statistics);
* units of the usual suffixes are known without being given: ``_ms`` ms, ``_pct`` percent, ``_steps``
  and the step columns model steps.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from visrecur.artifacts.io import check_replaceable, write_all_atomically, write_atomically
from visrecur.errors import InputError

TSBN_POLICY, CALIBRATION = "tsbn_policy", "calibration"
NO_CALIBRATION = "none"
STEP_COLUMNS = ("time", "step", "readout_time", "trained_readout_time", "first_step", "last_step")
SUFFIX_UNITS = {"_ms": "ms", "_pct": "percent", "_steps": "model steps"}


def ms_columns(what: str = "latency") -> tuple[str, str]:
    """The vocabulary's pair of millisecond columns for ``what`` (latency, rt, duration, ...)."""
    return f"{what}_min_ms", f"{what}_max_ms"


def add_ms(table: pd.DataFrame, steps, mapping, what: str = "latency", state: str | None = None,
           after: str | None = None) -> pd.DataFrame:
    """``table`` with ``<what>_min_ms`` and ``<what>_max_ms`` for ``steps`` (a column name or values) through
    ``mapping`` (a ``TimeMapping``; ``state`` for its per-state timing), inserted after column ``after``
    (default: the steps column, or at the end)."""
    values = table[steps].to_numpy(dtype=float) if isinstance(steps, str) else np.asarray(steps, dtype=float)
    low, high = mapping.latency(values, state)
    table = table.copy()
    position = len(table.columns)
    anchor = after or (steps if isinstance(steps, str) else None)
    if anchor in table.columns:
        position = list(table.columns).index(anchor) + 1
    names = ms_columns(what)
    for offset, (name, column) in enumerate(zip(names, (low, high))):
        if name in table.columns:
            table = table.drop(columns=name)
        table.insert(min(position + offset, len(table.columns)), name, column)
    return table


def units_of(columns: Sequence[str], given: Mapping[str, str] | None = None) -> dict:
    units = {}
    for column in columns:
        if given and column in given:
            units[column] = given[column]
        elif column in STEP_COLUMNS:
            units[column] = "model step"
        else:
            units.update({column: unit for suffix, unit in SUFFIX_UNITS.items() if column.endswith(suffix)})
    return units


def metadata_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + "-metadata.json")


def _metadata(table: pd.DataFrame, path: Path, description: str, command: str, units, provenance) -> dict:
    from visrecur import __version__

    return {"url": path.name, "description": description, "command": command,
            "units": units_of(table.columns, units),
            "provenance": {"visrecur_version": __version__, **{k: _plain(v) for k, v in (provenance or {}).items()}}}


def _plain(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _metadata_of(path: Path) -> dict | None:
    try:
        meta = json.loads(metadata_path(path).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "visrecur_version" in meta.get("provenance", {}) else None


def is_result_table(path: Path) -> bool:
    """A table visrecur wrote: a file beside its metadata file, which names it and visrecur's version."""
    meta = _metadata_of(path)
    return path.is_file() and meta is not None and meta.get("url") == path.name


def is_result_metadata(path: Path) -> bool:
    return path.is_file() and path.name.endswith(".csv-metadata.json") and \
        _metadata_of(path.with_name(path.name.removesuffix("-metadata.json"))) is not None


def write_tables(tables: Mapping[str | Path, pd.DataFrame], *, description: Mapping[str, str] | str = "",
                 command: str = "", units: Mapping[str, str] | None = None,
                 provenance: Mapping | None = None, option: str = "--out-dir") -> list[Path]:
    """Write every ``path: table`` and its metadata file, all to temporary names first, then renamed: an
    interruption leaves the previous results, never half a table. ``description``: one for all, or
    per path (its file name). A table visrecur wrote is replaced; anything else at a path is refused
    before anything is written (``io.check_replaceable``; ``option``: the output option to name)."""
    writers = {}
    for path in map(Path, tables):
        if path.suffix != ".csv":
            raise InputError(f"{str(path)!r}: a result table is a CSV file; give a name ending in .csv")
        check_replaceable(path, is_result_table, "result table", True, option)
        check_replaceable(metadata_path(path), is_result_metadata, "result table's metadata file", True, option)
    for path, table in tables.items():
        path = Path(path)
        text = description if isinstance(description, str) else description.get(path.name, "")
        meta = _metadata(table, path, text, command, units, provenance)
        writers[path] = lambda tmp, table=table: table.to_csv(tmp, index=False)
        writers[metadata_path(path)] = lambda tmp, meta=meta: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n")
    written = write_all_atomically(writers)
    return [p for p in written if p.suffix == ".csv"]


def write_table(table: pd.DataFrame, path: str | Path, **options) -> Path:
    return write_tables({path: table}, **options)[0]


def read_table(path: str | Path, command: str | None = None) -> pd.DataFrame:
    """A result table with ``attrs`` from its metadata file (``units``, ``description``, ``command``,
    ``provenance``; empty for a CSV written without one). A missing file is one line naming the command
    that writes it (``command``, else the one its metadata would name)."""
    path = Path(path)
    if not path.is_file():
        fix = f"make it with {command}" if command else "write it with the analysis that makes it"
        raise InputError(f"{str(path)} is missing; {fix}")
    table = pd.read_csv(path)
    meta_file = metadata_path(path)
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    table.attrs = {"units": meta.get("units", units_of(table.columns)), "description": meta.get("description", ""),
                   "command": meta.get("command", ""), "provenance": meta.get("provenance", {})}
    return table


RESULT_MARK = "visrecur_result"


def is_result_dataset(path: Path) -> bool:
    """A netCDF result visrecur wrote: its attrs carry ``RESULT_MARK`` (visrecur's version)."""
    import h5py

    if not (path.is_file() and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        return RESULT_MARK in f.attrs


def write_dataset(ds, path: str | Path, option: str = "--out-dir") -> Path:
    """A netCDF result (e.g. a score table with dims target x state x time), written atomically, marked as
    visrecur's; only a result visrecur wrote is replaced (``io.check_replaceable``)."""
    from visrecur import __version__

    check_replaceable(Path(path), is_result_dataset, "netCDF result", True, option)
    marked = ds.assign_attrs({RESULT_MARK: __version__})
    return write_atomically(path, lambda tmp: marked.to_netcdf(tmp, engine="h5netcdf"))


def read_dataset(path: str | Path, command: str | None = None):
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        fix = f"make it with {command}" if command else "write it with the analysis that makes it"
        raise InputError(f"{str(path)} is missing; {fix}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
