"""Time mappings to compare with: ``cornet-s``, the time table Brain-Score's CORnet-S plugin commits to,
read from the installed brainscore-vision (``brainscore_vision/models/cornet_s/model.py``,
``TIME_MAPPINGS``: region -> (first bin's start ms, ms per step, steps)), as a ``TimeMapping``: each
region's state gets that step duration, and the region's first output (CORnet-S's time step 0 of the
region) is the state's first reached step (its arrival): state onset = start - arrival x duration, so
that step ``arrival + k`` covers CORnet-S's bin of the region's step ``k``.

What the preset does not copy: CORnet-S commits only those steps (V1 one, V2 two, V4 four, IT two) and
answers any bin with the step whose bin start is nearest to the bin's start (so a bin before a region's
first step gets that first step); a visrecur model runs as many steps as a bin needs, and time before a
state responds holds zeros (``timebins``).
"""
from __future__ import annotations

import ast
from pathlib import Path

from visrecur.errors import InputError
from visrecur.timing import TimeMapping

CORNET_S_FILE = ("models", "cornet_s", "model.py")
PRESETS = ("cornet-s",)


def cornet_s_time_table() -> dict[str, tuple[float, float, int]]:
    """{region: (start ms, ms per step, number of steps)}, read (not imported) from the installed wheel."""
    from importlib.util import find_spec

    from .environment import require

    require()  # one line naming the extra where brainscore-vision is missing
    spec = find_spec("brainscore_vision")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*CORNET_S_FILE)
    if not path.is_file():
        raise InputError(f"{path} is missing: this brainscore-vision has no CORnet-S plugin to read its time table "
                         "from")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TIME_MAPPINGS" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {str(region): (float(a), float(w), int(n)) for region, (a, w, n) in table.items()}
    raise InputError(f"{path} has no TIME_MAPPINGS table; this brainscore-vision's CORnet-S plugin is not the one "
                     "visrecur knows (2.4.2)")


def preset_mapping(name: str, region_states: dict[str, str], arrivals: dict[str, int] | None = None) -> TimeMapping:
    """The preset ``name`` for a model whose regions map to ``region_states`` ({region: state}) and whose
    states are first reached at ``arrivals`` ({state: step}; default 0); regions the model does not map
    are left out, and states without a region keep the base 100 ms per step from 0 ms."""
    if name != "cornet-s":
        raise InputError(f"time preset {name!r} does not exist; use one of {', '.join(PRESETS)}")
    table = cornet_s_time_table()
    mapped = {region: row for region, row in table.items() if region in region_states}
    if not mapped:
        raise InputError(f"no region of the CORnet-S time table ({', '.join(table)}) is mapped to a state of this "
                         f"model (mapped: {region_states or 'none'}); map one with region_states / --region")
    arrivals = arrivals or {}
    onsets = {region_states[region]: start - arrivals.get(region_states[region], 0) * width
              for region, (start, width, _) in mapped.items()}
    widths = {region_states[region]: (width, width) for region, (_, width, _) in mapped.items()}
    return TimeMapping((100.0, 100.0), 0.0, onsets, widths)
