"""Argument checks shared by the Python entry points, so that a value of the wrong type is one
``VisrecurError`` naming the argument and what it takes, not a TypeError or AttributeError from deep inside."""
from __future__ import annotations

import os
from pathlib import Path

from visrecur.errors import InputError, VisrecurError


def path_arg(value, what: str, error: type[VisrecurError] = InputError) -> Path:
    """``value`` as a Path, or one error when it is not a non-empty path or string."""
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Path(value)
    raise error(f"{what} must be a file path (a non-empty str or pathlib.Path), not {_shown(value)}")


def dataset_arg(value, what: str, error: type[VisrecurError] = InputError):
    """``value`` when it is an ``xarray.Dataset`` (e.g. a recording), else one error."""
    import xarray as xr

    if not isinstance(value, xr.Dataset):
        raise error(f"{what} must be an xarray.Dataset (e.g. visrecur.artifacts.recordings.open_recording(path)), "
                    f"not {_shown(value)}")
    return value


def dataarray_arg(value, what: str, error: type[VisrecurError] = InputError):
    """``value`` when it is an ``xarray.DataArray``, else one error."""
    import xarray as xr

    if not isinstance(value, xr.DataArray):
        raise error(f"{what} must be an xarray.DataArray, not {_shown(value)}")
    return value


def names_arg(value, what: str, error: type[VisrecurError] = InputError) -> list[str] | None:
    """None, or a list of names from a list/tuple of strings (one bare string is refused: it would be read
    letter by letter)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise error(f"{what} must be a list of names, e.g. ['V1', 'IT'], not {_shown(value)}")
    return list(value)


def int_arg(value, what: str, least: int | None = None, error: type[VisrecurError] = InputError) -> int:
    """``value`` as an int (bool and non-whole numbers refused), at least ``least``."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error(f"{what} must be a whole number, not {_shown(value)}")
    if least is not None and value < least:
        raise error(f"{what} {value} must be at least {least}")
    return int(value)


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def seed_arg(value, what: str = "seed", error: type[VisrecurError] = InputError) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what numpy and torch generators take)."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2 ** 32:
        raise error(f"{what} {value!r} must be a whole number from 0 to 2**32 - 1")
    return int(value)
