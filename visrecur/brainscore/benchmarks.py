"""Offline RSA benchmarks in Brain-Score's own terms: the 92-image set's fMRI RDMs of Cichy et al. (2014),
early visual cortex and IT, scored by Brain-Score's ``RSABenchmark`` (its RDM, Spearman similarity and
``RSACeiling``) on data read from disk (``visrecur.neural.targets``), so ``score(model, benchmark)``
runs without S3.

The fMRI data are RDMs, not voxel responses. They enter Brain-Score as an *RDM-row assembly*:
presentation x neuroid where a neuroid is one column of one subject's RDM (``subject``, ``rdm_column``).
``PrecomputedRDM`` passes such rows through as the subject's RDM and computes Brain-Score's correlation
RDM for anything else (the model's activity), so the benchmark, its per-subject scores and its ceiling
(each subject against the mean of all, Nili et al. 2014; the leave-one-out bound in the ceiling's attrs)
are Brain-Score's own code.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from visrecur.errors import InputError
from .environment import require

require()
from brainscore_core.supported_data_standards.brainio.assemblies import DataAssembly, NeuroidAssembly  # noqa: E402
from brainscore_vision.benchmark_helpers.neural_common import RSABenchmark  # noqa: E402
from brainscore_vision.metrics.rdm.metric import RDM  # noqa: E402
from brainscore_vision.metrics.rsa_ceiling import RSACeiling  # noqa: E402

# Cichy et al. 2014 regions -> Brain-Score recording targets: EVC (V1-V3 in their ROI) is recorded as V1
CICHY_REGIONS = {"EVC": "V1", "IT": "IT"}
# fMRI integrates over the trial; the bin Brain-Score's static neural benchmarks ask for
FMRI_TIME_BINS = ((70, 170),)
# Cichy et al. 2014 showed the images at 2.9 degrees of visual angle
CICHY_VISUAL_DEGREES = 2.9
BIBTEX = """@article{cichy2014resolving,
  title={Resolving human object recognition in space and time},
  author={Cichy, Radoslaw Martin and Pantazis, Dimitrios and Oliva, Aude},
  journal={Nature Neuroscience}, volume={17}, pages={455--462}, year={2014},
  url={https://doi.org/10.1038/nn.3635}
}"""


class PrecomputedRDM:
    """Brain-Score's RDM for activity; an RDM-row assembly (a ``rdm_column`` coord on the neuroid dim)
    passes through as the RDM it holds."""

    def __init__(self):
        self._rdm = RDM()

    def __call__(self, assembly):
        if "rdm_column" not in _neuroid_levels(assembly):
            return self._rdm(assembly)
        ids = [str(i) for i in assembly["stimulus_id"].values]
        columns = [str(c) for c in assembly["rdm_column"].values]
        order = [columns.index(i) for i in ids]  # columns in the presentation order: a square RDM
        values = np.asarray(assembly.transpose("presentation", "neuroid").values)[:, order]
        # laid out as Brain-Score's RDM lays out its result: presentation x presentation, presentation coords
        coords = {name: value for name, value in assembly.coords.items()
                  if "neuroid" not in assembly[name].dims and "time_bin" not in assembly[name].dims}
        return DataAssembly(values, coords=coords, dims=["presentation", "presentation"])


def _neuroid_levels(assembly) -> list[str]:
    index = assembly.indexes.get("neuroid") if hasattr(assembly, "indexes") else None
    names = list(getattr(index, "names", None) or [])
    return names + [c for c in assembly.coords if c not in names and assembly[c].dims == ("neuroid",)]


def rdm_row_assembly(target, stimulus_set=None, time_bins=FMRI_TIME_BINS) -> NeuroidAssembly:
    """A visrecur RDM target (subject x stimulus x stimulus_b) as Brain-Score's presentation x neuroid x
    time_bin assembly whose neuroids are (subject, RDM column); ``stimulus_set`` is attached."""
    subjects = [str(s) for s in target["subject"].values]
    ids = [str(i) for i in target["stimulus"].values]
    n, k = len(ids), len(subjects)
    values = np.asarray(target.transpose("stimulus", "subject", "stimulus_b").values).reshape(n, k * n)
    bins = np.asarray(time_bins, dtype=float)
    presentation = {"stimulus_id": np.array(ids, dtype=object)}
    if stimulus_set is not None:  # the stimulus set's columns, in the targets' order
        rows = stimulus_set.set_index(stimulus_set["stimulus_id"].astype(str)).loc[ids]
        presentation.update({c: rows[c].to_numpy() for c in rows.columns if c != "stimulus_id"})
    assembly = NeuroidAssembly(np.repeat(values[:, :, None], len(bins), axis=2),
                               dims=["presentation", "neuroid", "time_bin"], coords={
        **{name: ("presentation", v) for name, v in presentation.items()},
        "neuroid_id": ("neuroid", np.array([f"{s}.{c}" for s in subjects for c in ids], dtype=object)),
        "subject": ("neuroid", np.repeat(np.array(subjects, dtype=object), n)),
        "rdm_column": ("neuroid", np.array(ids * k, dtype=object)),
        "time_bin_start": ("time_bin", bins[:, 0]), "time_bin_end": ("time_bin", bins[:, 1])})
    if len(bins) == 1:  # static data: time_bin kept as a coordinate only, as Brain-Score's RSA expects
        assembly = assembly.squeeze("time_bin")
    assembly.attrs = {k: v for k, v in target.attrs.items() if isinstance(v, (str, int, float))}
    assembly.attrs["stimulus_set"] = stimulus_set
    return assembly


def stimuli_92(folder: str | Path | None = None, data: str | Path | None = None):
    """The 92 images as PNG files (written once under ``folder``, default $BRAINIO_HOME/visrecur-92images)
    and a Brain-Score StimulusSet over them (ids 92img_01 ... 92img_92, as the targets)."""
    from visrecur.recording.stimuli import from_92images
    from .stimuli import to_brainscore

    folder = Path(folder or Path(os.environ.get("BRAINIO_HOME") or Path.home() / ".brainio") / "visrecur-92images")
    return to_brainscore(from_92images(data), folder, identifier="visrecur.92images")


class Cichy2014RSA(RSABenchmark):
    """RSA against the Cichy et al. (2014) fMRI RDMs of ``region`` ("EVC" or "IT"), 15 subjects; the score
    is the mean subject score divided by Brain-Score's RSA ceiling.

    ``visual_degrees``: how large the images were; None (default): as large as the model's field (no
    rescaling, the way visrecur's own 92-image analyses show them); 2.9: as in the experiment, placed
    on a grey screen of the model's visual degrees by Brain-Score's ``place_on_screen``."""

    def __init__(self, region: str = "IT", visual_degrees: float | None = None, data: str | Path | None = None,
                 stimuli_folder: str | Path | None = None, time_bins=FMRI_TIME_BINS):
        from visrecur.neural.targets import cichy2014_fmri

        if region not in CICHY_REGIONS:
            raise InputError(f"Cichy 2014 fMRI region {region!r} does not exist; use one of {list(CICHY_REGIONS)}")
        target = cichy2014_fmri(region, data)  # one clear line, naming the file, where the data are missing
        self.target = target
        stimulus_set = stimuli_92(stimuli_folder, None if data is None else Path(data) / "Kriegeskorte_Neuron2008_"
                                  "supplementalData.mat")
        rdm = PrecomputedRDM()
        self._fill_field = visual_degrees is None
        degrees_tag = "" if visual_degrees is None else f"-{visual_degrees:g}deg"
        super().__init__(identifier=f"visrecur.Cichy2014fmri.{region}{degrees_tag}-rdm", version=1,
                         assembly=rdm_row_assembly(target, stimulus_set, time_bins), region=CICHY_REGIONS[region],
                         visual_degrees=visual_degrees or 8, number_of_trials=1, bibtex=BIBTEX,
                         ceiler=RSACeiling(rdm=rdm), rdm=rdm)

    def preallocate_memory(self, candidate, raise_if_oom: bool = True):
        return None  # 92 stimuli; Brain-Score's probe would run the model once more for nothing

    def __call__(self, candidate):
        if self._fill_field:  # the images fill the model's field: no place_on_screen rescaling
            self._visual_degrees = candidate.visual_degrees()
        return super().__call__(candidate)
