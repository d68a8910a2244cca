"""Stimuli between Brain-Score and visrecur: a Brain-Score ``StimulusSet`` (or a list of image paths)
becomes a visrecur ``StimulusSet`` read through visrecur's own image decoding, and any visrecur stimulus
set can be written as image files with a Brain-Score ``StimulusSet`` beside them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from visrecur.artifacts.io import atomic_path
from visrecur.errors import InputError
from visrecur.recording.images import IMAGE_SUFFIXES, is_image, open_image
from visrecur.recording.stimuli import StimulusSet


def from_brainscore(stimuli) -> tuple[StimulusSet, dict]:
    """(visrecur StimulusSet, presentation coords {name: values}) for a Brain-Score StimulusSet (paths via
    ``get_stimulus``; every column becomes a presentation coord) or a list of image paths (ids: the
    paths). Missing and non-image files are refused here; unreadable ones when recording starts."""
    if isinstance(stimuli, pd.DataFrame):
        if "stimulus_id" not in stimuli.columns:
            raise InputError("the stimulus set has no 'stimulus_id' column; Brain-Score stimulus sets need one")
        ids = [str(i) for i in stimuli["stimulus_id"]]
        getter = getattr(stimuli, "get_stimulus", None)
        if getter is None or getattr(stimuli, "stimulus_paths", None) is None:
            raise InputError("the stimulus set has no stimulus_paths; give a Brain-Score StimulusSet whose "
                             "stimulus_paths maps each stimulus_id to an image file")
        try:
            paths = [Path(getter(i)) for i in stimuli["stimulus_id"]]
        except KeyError as err:
            raise InputError(f"stimulus {err.args[0]!r} has no entry in the stimulus set's stimulus_paths; "
                             "give every stimulus_id a file") from None
        coords = {column: _coord_values(stimuli[column]) for column in stimuli.columns}
        name = str(getattr(stimuli, "identifier", None) or "brainscore")
    else:
        paths = [Path(p) for p in ([stimuli] if isinstance(stimuli, (str, Path)) else list(stimuli))]
        ids = [str(p) for p in paths]
        coords = {"stimulus_id": np.array(ids, dtype=object), "stimulus_path": np.array(ids, dtype=object)}
        name = "paths"
    if not paths:
        raise InputError("no stimuli given; look_at needs at least one image")
    for stimulus_id, path in zip(ids, paths):
        if not path.is_file():
            raise InputError(f"stimulus {stimulus_id!r}: image file {str(path)!r} does not exist; check the "
                             "stimulus set's stimulus_paths")
        if not is_image(path):
            raise InputError(f"stimulus {stimulus_id!r}: {str(path)!r} is not an image file (suffix "
                             f"{path.suffix or 'none'}); give files ending in {', '.join(IMAGE_SUFFIXES)}")
    meta = pd.DataFrame({"stimulus_id": ids, "file": [str(p) for p in paths]})
    return (StimulusSet(name, meta, lambda i: open_image(paths[i]), f"{len(paths)} Brain-Score stimuli",
                        lambda i: paths[i].read_bytes(), files=paths), coords)


def _coord_values(column: pd.Series) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype == object or values.dtype.kind in "UO":
        return np.array([str(v) for v in values], dtype=object)
    return values


def to_brainscore(stimuli: StimulusSet, folder: str | Path, identifier: str | None = None):
    """Write every image of a visrecur stimulus set as PNG into ``folder`` and return a Brain-Score
    StimulusSet over them (columns: stimulus_id, filename and the set's metadata)."""
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet as BrainScoreStimuli

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{k:05d}.png" for k in range(len(stimuli))]
    for k, name in enumerate(names):
        path = folder / name
        if not path.is_file():
            with atomic_path(path) as tmp:
                stimuli.image(k).save(tmp, format="PNG")
    meta = stimuli.metadata.drop(columns=[c for c in ("file",) if c in stimuli.metadata.columns])
    meta = meta.assign(filename=names)
    out = BrainScoreStimuli(meta)
    out.stimulus_paths = {sid: folder / name for sid, name in zip(meta["stimulus_id"], names)}
    out.identifier = identifier or f"visrecur.{stimuli.name}"
    return out
