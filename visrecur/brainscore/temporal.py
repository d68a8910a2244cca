"""A temporal benchmark on synthetic data with a planted latency, in Brain-Score's terms.

The data: a presentation x neuroid x time_bin assembly built from a source model's recording
(``visrecur.recording.recorder``, not the adapter), in which the activity of step t is placed in the bin
[latency + t w, latency + (t + 1) w) ms, plus Gaussian noise. A candidate is recorded in the same bins
through its own time mapping and scored per bin with Brain-Score's ``RDMMetric`` (Spearman between
correlation RDMs), averaged over bins; a bin where the candidate's activity does not vary over stimuli
(a state not yet reached) scores 0. A candidate whose mapping puts step 0 at the planted latency
recovers the source's alignment and scores highest.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from visrecur.errors import InputError
from .environment import require

require()
from brainscore_core.metrics import Score  # noqa: E402
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly  # noqa: E402
from brainscore_vision.benchmarks import BenchmarkBase  # noqa: E402
from brainscore_vision.metrics.rdm.metric import RDMMetric  # noqa: E402

DEFAULT_LATENCY_MS = 70.0


def planted_latency_assembly(source, stimuli, stimulus_set, state: str, steps, latency_ms: float = DEFAULT_LATENCY_MS,
                             step_ms: float = 35.0, noise: float = 0.1, region: str | None = None, seed: int = 0,
                             batch_size: int = 64) -> NeuroidAssembly:
    """``source``: a ModelSource or a model carrying its preprocessing; ``stimuli``: the visrecur stimulus set
    that ``stimulus_set`` (Brain-Score's, same order) was written from; ``steps``: consecutive source steps,
    one bin each; ``noise``: the noise's standard deviation as a fraction of the activity's."""
    from visrecur.recording import record
    from visrecur.artifacts.recordings import to_neuroids

    steps = [int(t) for t in steps]
    if steps != list(range(steps[0], steps[0] + len(steps))):
        raise InputError(f"steps {steps} must be consecutive: one contiguous bin each")
    ds = record(source, stimuli, states=[state], times=steps, batch_size=batch_size, progress=False)
    activity = to_neuroids(ds, [state], steps)
    values = np.asarray(activity.transpose("stimulus", "neuroid", *(("time",) if "time" in activity.dims else ())).values,
                        dtype=np.float64).reshape(activity.sizes["stimulus"], activity.sizes["neuroid"], len(steps))
    if np.isnan(values).any():
        raise InputError(f"state {state} is not reached at every step of {steps}; plant bins from step "
                         f"{ds[state].attrs['arrival_time']} on")
    rng = np.random.default_rng(seed)
    values = values + noise * values.std() * rng.standard_normal(values.shape)
    starts = latency_ms + np.asarray(steps, dtype=float) * step_ms
    ids = [str(i) for i in stimulus_set["stimulus_id"]]
    assert ids == list(stimuli.ids), "stimulus_set must list the same stimuli in the same order"
    presentation = {c: stimulus_set[c].to_numpy() for c in stimulus_set.columns}
    assembly = NeuroidAssembly(values.astype(np.float32), dims=["presentation", "neuroid", "time_bin"], coords={
        **{c: ("presentation", v) for c, v in presentation.items()},
        "neuroid_id": ("neuroid", activity["neuroid_id"].values),
        "region": ("neuroid", np.array([region or state] * activity.sizes["neuroid"], dtype=object)),
        "time_bin_start": ("time_bin", starts), "time_bin_end": ("time_bin", starts + step_ms)})
    assembly.attrs.update({"planted_latency_ms": float(latency_ms), "step_ms": float(step_ms),
                           "source_steps": " ".join(map(str, steps)), "noise_sd_fraction": float(noise),
                           "source_model": ds.attrs.get("model", ""), "stimulus_set": stimulus_set})
    return assembly


class PlantedLatencyBenchmark(BenchmarkBase):
    """Brain-Score benchmark over a planted-latency assembly: mean per-bin ``RDMMetric``. The data are
    synthetic with a known source, so the ceiling is stated as 1 (the source itself, without noise)."""

    def __init__(self, assembly: NeuroidAssembly, region: str = "IT", identifier: str | None = None):
        self._assembly = assembly
        self.region = region
        self._metric = RDMMetric()
        latency = assembly.attrs.get("planted_latency_ms")
        super().__init__(identifier=identifier or f"visrecur.PlantedLatency{latency:g}ms.{region}-rdm",
                         ceiling_func=lambda: Score(1.0), version=1, parent=region)

    def __call__(self, candidate) -> Score:
        bins = [(float(a), float(b)) for a, b in zip(self._assembly["time_bin_start"].values,
                                                      self._assembly["time_bin_end"].values)]
        candidate.start_recording(self.region, time_bins=bins)
        model = candidate.look_at(self._assembly.attrs["stimulus_set"])
        per_bin = []
        for k in range(len(bins)):
            with np.errstate(invalid="ignore", divide="ignore"):
                value = float(self._metric(model.isel(time_bin=k), self._assembly.isel(time_bin=k)))
            per_bin.append(0.0 if np.isnan(value) else value)
        score = Score(float(np.mean(per_bin)))
        score.attrs.update({"per_bin": per_bin, "time_bins": bins, "ceiling": self.ceiling,
                            "model_time_mapping": model.attrs.get("time_mapping", "")})
        return score


def builtin_stimuli(folder: str | Path | None = None):
    """visrecur's built-in stimuli (no download) and a Brain-Score StimulusSet over them as PNG files."""
    from visrecur.recording.stimuli import builtin
    from .stimuli import to_brainscore

    stimuli = builtin()
    folder = Path(folder or Path(os.environ.get("BRAINIO_HOME") or Path.home() / ".brainio") / "visrecur-builtin")
    return stimuli, to_brainscore(stimuli, folder, identifier="visrecur.builtin")


def default_benchmark(source=None, latency_ms: float = DEFAULT_LATENCY_MS, region: str = "IT",
                      steps=(3, 4, 5, 6, 7), step_ms: float = 35.0) -> PlantedLatencyBenchmark:
    """The planted-latency benchmark of the command line: the default pretrained model's IT at steps 3-7
    (IT has arrived in both shipped models by step 3), planted at 70 ms, 35 ms per bin, built-in stimuli."""
    from visrecur.artifacts.models import load_model

    source = source if source is not None else load_model(None)
    stimuli, stimulus_set = builtin_stimuli()
    return PlantedLatencyBenchmark(planted_latency_assembly(source, stimuli, stimulus_set, region, steps,
                                                            latency_ms, step_ms, region=region), region)
