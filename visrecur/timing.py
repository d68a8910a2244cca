"""Model time steps <-> milliseconds after stimulus onset.

The paper estimates that readout time ``t`` corresponds to about ``20 t`` to ``50 t`` ms (the latency
of one layer of biological neurons, 20-50 ms). Milliseconds are derived, never the primary axis:
``ms_per_step`` is an explicit parameter wherever they appear.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError

DEFAULT_MS_PER_STEP = (20.0, 50.0)


def _check(ms_per_step):
    low, high = (float(v) for v in ms_per_step)
    if not 0 < low <= high:
        raise InputError(f"ms per step {low:g} {high:g} must be LOW HIGH with 0 < LOW <= HIGH, e.g. "
                         "--ms-per-step 20 50 (ms_per_step=(20, 50))")
    return low, high


def latency_ms(t, ms_per_step=DEFAULT_MS_PER_STEP):
    """(earliest, latest) milliseconds after onset for step(s) ``t``."""
    low, high = _check(ms_per_step)
    t = np.asarray(t, dtype=float)
    return low * t, high * t

