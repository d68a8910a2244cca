"""Neural targets as labelled RDMs: the 92-image fMRI and electrophysiology RDMs, and any user file.

Every target is an ``xarray.DataArray`` with dims ``subject, stimulus, stimulus_b``; the stimulus ids
are those of a ``--stimuli 92images`` recording (``92img_01`` ... ``92img_92``), so scores join by id.
Provenance (paper, file, sha256, where to get it) is in ``attrs``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import xarray as xr
from scipy.spatial.distance import squareform

from visrecur.artifacts.io import sha256
from visrecur.artifacts.io import data_root
from .errors import NeuralDataError, RDMError
from .rdm import as_rdm

IDS_92 = [f"92img_{k + 1:02d}" for k in range(92)]
KRIEGESKORTE_FILE = "Kriegeskorte_Neuron2008_supplementalData.mat"
BRAIN_RDMS_FILE = "92_brainRDMs.mat"
RSATOOLBOX_SOURCE = "rsatoolbox repository (github.com/rsagroup/rsatoolbox), demos/92imageData/"
NET2BRAIN_SOURCE = ("Net2Brain repository (github.com/cvai-roig-lab/Net2Brain), input_data/brain_data/92images/ "
                    "(Algonauts 2019 training fMRI)")
CICHY2014 = "Cichy, Pantazis & Oliva (2014) Resolving human object recognition in space and time. Nat Neurosci 17:455"
KRIEGESKORTE2008 = ("Kriegeskorte, Mur, Ruff, Kiani, Bodurka, Esteky, Tanaka & Bandettini (2008) Matching "
                    "categorical object representations in inferior temporal cortex of man and monkey. Neuron 60:1126")


def data_file(name: str, source: str, folder: str | Path | None = None) -> Path:
    """A file of the 92-image data, or one line naming it and where to get it."""
    path = Path(folder or data_root() / "92images") / name
    if not path.is_file():
        raise NeuralDataError(f"{name} not found at {str(path)!r}; get it from the {source} and put it in "
                              "$VISRECUR_DATA/92images/ (or ../shared/data/92images/)")
    return path


def _provenance(path: Path, paper: str, source: str, **more) -> dict:
    return {"paper": paper, "file": path.name, "sha256": sha256(path), "source": source,
            "stimulus_set": "92images", **more}


def cichy2014_fmri(region: str, folder: str | Path | None = None) -> xr.DataArray:
    """Cichy et al. 2014 fMRI RDMs of early visual cortex (``"EVC"``) or inferior temporal cortex (``"IT"``),
    15 subjects."""
    if region not in ("EVC", "IT"):
        raise NeuralDataError(f"Cichy 2014 fMRI region {region!r} does not exist; use 'EVC' or 'IT'")
    path = data_file(f"cichy2014_fmri_{region}_RDMs.npz", NET2BRAIN_SOURCE, folder)
    values = _read_npz(path, "Net_RDM")
    return as_rdm(values, IDS_92, {"subject": [f"S{k + 1:02d}" for k in range(values.shape[0])]},
                  f"cichy2014_fmri_{region}", _provenance(
                      path, CICHY2014, NET2BRAIN_SOURCE, region=region, species="human", modality="fMRI",
                      dissimilarity="1 - Pearson r between voxel patterns", independent="yes"))


def kriegeskorte2008(which: str, folder: str | Path | None = None) -> xr.DataArray:
    """Kriegeskorte et al. 2008 Fig. 1 RDMs: ``"monkey_IT"`` (674 neurons) or ``"human_IT"`` (316 voxels);
    one group RDM each (a single "subject": no noise ceiling)."""
    names = {"monkey_IT": "mIT_674neurons", "human_IT": "hITvisStim_316vx"}
    if which not in names:
        raise NeuralDataError(f"Kriegeskorte 2008 RDM {which!r} does not exist; use one of {list(names)}")
    path = data_file(KRIEGESKORTE_FILE, RSATOOLBOX_SOURCE, folder)
    structs = _loadmat(path)["RDMs_mIT_hIT_fig1"]
    vector = next(np.asarray(s.RDM, dtype=np.float64) for s in structs if s.name == names[which])
    species, modality = ("monkey", "electrophysiology, 674 neurons") if which == "monkey_IT" \
        else ("human", "fMRI, 316 voxels")
    return as_rdm(squareform(vector)[None], IDS_92, {"subject": ["group"]}, f"kriegeskorte2008_{which}",
                  _provenance(path, KRIEGESKORTE2008, RSATOOLBOX_SOURCE, region="IT", species=species,
                              modality=modality, dissimilarity="1 - Pearson r", variable=names[which],
                              independent="yes"))


def kriegeskorte2008_human_subjects(folder: str | Path | None = None) -> xr.DataArray:
    """The 4 subjects' human IT RDMs of Kriegeskorte et al. 2008 (``92_brainRDMs.mat``), each the mean of
    its 2 sessions. Their mean equals the human IT RDM of the 2008 supplementary file exactly (checked:
    largest absolute difference 0), so this is the same data, not another target."""
    path = data_file(BRAIN_RDMS_FILE, RSATOOLBOX_SOURCE, folder)
    structs = _loadmat(path)["RDMs"]  # 4 subjects x 2 sessions
    names = [str(s.name) for s in structs.flat]
    values = np.stack([np.asarray(s.RDM, dtype=np.float64) for s in structs.flat]).reshape(
        structs.shape + (92, 92)).mean(1)
    subjects = [n.split("|")[1].strip() for n in names[::structs.shape[1]]]
    return as_rdm(values, IDS_92, {"subject": subjects}, "kriegeskorte2008_human_IT_subjects", _provenance(
        path, KRIEGESKORTE2008, RSATOOLBOX_SOURCE, region="IT", species="human", modality="fMRI",
        dissimilarity="1 - Pearson r", sessions="each subject's RDM is the mean of its 2 sessions",
        independent=("no: the mean of these 4 subjects (8 sessions) equals kriegeskorte2008_human_IT exactly; "
                     "use it for a noise ceiling on that RDM, not as a second target")))


TARGETS: dict[str, Callable[..., xr.DataArray]] = {
    "cichy2014_fmri_EVC": lambda folder=None: cichy2014_fmri("EVC", folder),
    "cichy2014_fmri_IT": lambda folder=None: cichy2014_fmri("IT", folder),
    "kriegeskorte2008_monkey_IT": lambda folder=None: kriegeskorte2008("monkey_IT", folder),
    "kriegeskorte2008_human_IT": lambda folder=None: kriegeskorte2008("human_IT", folder),
    "kriegeskorte2008_human_IT_subjects": kriegeskorte2008_human_subjects,
}


def load_target(name_or_path: str, folder: str | Path | None = None, **file_options) -> xr.DataArray:
    """A built-in target by name (``TARGETS``) or any RDM file (``load_rdm_file``)."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise NeuralDataError(f"a target must be a name ({', '.join(TARGETS)}) or an RDM file path, not "
                              f"{type(name_or_path).__name__} {name_or_path!r:.40}")
    name_or_path = str(name_or_path)
    if name_or_path in TARGETS:
        return TARGETS[name_or_path](folder)
    if Path(name_or_path).suffix in (".npz", ".npy", ".mat"):
        return load_rdm_file(name_or_path, **file_options)
    raise NeuralDataError(f"unknown target {name_or_path!r}; use one of {', '.join(TARGETS)} or an RDM file "
                          "(.npz, .npy, .mat)")


def load_rdm_file(path: str | Path, key: str | None = None, stimuli: Sequence[str] | str | None = None,
                  name: str | None = None) -> xr.DataArray:
    """Any RDM file: subjects x N x N (or one N x N, or condensed vectors) in .npz / .npy / .mat.

    ``stimuli``: the N stimulus ids in matrix order, as a list, a text file with one id a line,
    ``"92images"`` for the 92-image ids, or None to read them from the file (a ``stimuli`` or
    ``stimulus_ids`` entry). ``key``: the array's name in .npz/.mat files (default: the only array with
    at least 2 dims, or the only numeric vector).
    """
    from visrecur.checks import path_arg

    path = path_arg(path, "an RDM file", NeuralDataError)
    if not path.is_file():
        raise NeuralDataError(f"RDM file {str(path)!r} does not exist")
    if path.suffix in (".npy", ".npz"):
        entries = _read_numpy(path)
    elif path.suffix == ".mat":
        entries = {k: v for k, v in _loadmat(path).items() if not k.startswith("__")}
    else:
        raise NeuralDataError(f"{path.name}: RDM files must be .npz, .npy or .mat")
    ids = _stimulus_ids(stimuli, entries, path)
    numeric = {k: np.asarray(v) for k, v in entries.items()
               if k not in ("stimuli", "stimulus_ids") and np.asarray(v).dtype.kind in "fiu"}
    if key is None:
        candidates = [k for k, v in numeric.items() if v.ndim >= 2] or [k for k, v in numeric.items() if v.ndim == 1]
        if len(candidates) != 1:
            raise NeuralDataError(f"{path.name}: cannot tell which array is the RDM ({sorted(numeric)}); give key=")
        key = candidates[0]
    if key not in numeric:
        raise NeuralDataError(f"{path.name} has no numeric array {key!r}; it has {sorted(numeric)}")
    values = np.asarray(numeric[key], dtype=np.float64)
    n = len(ids)
    if values.ndim in (1, 2) and values.shape[-1] == n * (n - 1) // 2 and values.shape[-1] != n:
        values = np.stack([squareform(v) for v in np.atleast_2d(values)])  # condensed vectors
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise RDMError(f"{path.name}:{key}: expected subjects x N x N, got shape {values.shape}")
    return as_rdm(values, ids, {"subject": [f"S{k + 1:02d}" for k in range(values.shape[0])]},
                  name or path.stem, {"file": path.name, "sha256": sha256(path), "variable": key,
                                      "independent": "yes"})


def _read_numpy(path: Path) -> dict:
    """{name: array} of an .npy (one array, "rdm") or .npz file, or one line saying why it cannot be read."""
    import zipfile

    try:
        with open(path, "rb") as file:  # closed on every path, a corrupt file's too
            if path.suffix == ".npy":
                return {"rdm": np.load(file, allow_pickle=False)}
            with np.load(file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    except ValueError as err:
        why = "it holds Python objects (pickled), which are not read" if "pickle" in str(err) else str(err)
        raise NeuralDataError(f"{path.name} cannot be read as an RDM: {why}; save numbers with numpy.save / "
                              "numpy.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise NeuralDataError(f"{path.name} is not a readable {path.suffix} file ({type(err).__name__}): it is "
                              "truncated or corrupted; write it again with numpy.save / numpy.savez") from None


def _stimulus_ids(stimuli, entries: dict, path: Path) -> list[str]:
    if isinstance(stimuli, str) and stimuli == "92images":
        return IDS_92
    if isinstance(stimuli, (str, Path)):
        if not Path(stimuli).is_file():
            raise NeuralDataError(f"stimulus id list {str(stimuli)!r} does not exist; give a text file with one "
                                  "id a line, a list of ids, or '92images'")
        return [line.strip() for line in Path(stimuli).read_text().splitlines() if line.strip()]
    if stimuli is not None:
        if not isinstance(stimuli, (list, tuple, np.ndarray)):
            raise NeuralDataError(f"stimuli must be a list of ids, a text file or '92images', not "
                                  f"{type(stimuli).__name__}")
        return [str(s) for s in stimuli]
    for k in ("stimulus_ids", "stimuli"):
        if k in entries:
            return [str(s).strip() for s in np.ravel(entries[k])]
    raise NeuralDataError(f"{path.name}: no stimulus list; store one as 'stimulus_ids' in the file or pass "
                          "stimuli=[...] (or a text file with one id a line, or '92images')")


def _read_npz(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        if key not in z.files:
            raise NeuralDataError(f"{path.name} has no array {key!r} (it has {z.files})")
        return z[key]


def _loadmat(path: Path) -> dict:
    import h5py
    from scipy.io import loadmat

    if h5py.is_hdf5(path):  # MATLAB v7.3 files are HDF5; h5py shows their arrays with the axes reversed
        with h5py.File(path, "r") as f:
            return {k: np.asarray(v).T for k, v in f.items() if isinstance(v, h5py.Dataset)}
    try:
        return loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:
        raise NeuralDataError(f"{path.name} cannot be read as a MATLAB file ({type(err).__name__}: {err})") from None
