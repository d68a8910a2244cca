"""``VisrecurBrainModel``: any visrecur model as a Brain-Score ``BrainModel``, time-resolved.

Regions map to states by name (``regions.py``), Brain-Score's time bins to model steps through
``visrecur.timing.TimeMapping`` (``timebins.py``), and the activity comes from ``visrecur.recording.recorder`` (the
model's own preprocessing, batches, a progress bar): this module never unrolls the model itself.
Importing it imports brainscore_vision (``visrecur.brainscore`` imports it lazily).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from visrecur.artifacts.models import ModelSource, display_name, load_model
from visrecur.errors import InputError, TimeStepError
from visrecur.timing import TimeMapping, TimeMappingError
from .environment import DEFAULT_VISUAL_DEGREES, require
from .regions import BRAINSCORE_REGIONS, region_states as map_regions, state_for
from .stimuli import from_brainscore
from .timebins import BinPlan, apply_weights, plan_bins

require()
from brainscore_core.supported_data_standards.brainio.assemblies import (  # noqa: E402
    BehavioralAssembly, NeuroidAssembly)
from brainscore_vision.model_interface import BrainModel  # noqa: E402

LABEL, PROBABILITIES, PASSIVE = BrainModel.Task.label, BrainModel.Task.probabilities, BrainModel.Task.passive


class UnreachedStateWarning(UserWarning):
    """Time bins that take steps before a state's arrival (those steps count as zeros)."""


class TaskError(InputError):
    """A Brain-Score task this model cannot do as asked."""


def _source(model_or_checkpoint) -> tuple[ModelSource, str]:
    """(ModelSource, name for the identifier)."""
    if isinstance(model_or_checkpoint, ModelSource):
        return model_or_checkpoint, model_or_checkpoint.name
    if model_or_checkpoint is None or isinstance(model_or_checkpoint, (str, Path)):
        source = load_model(model_or_checkpoint)
        return source, display_name(model_or_checkpoint)
    source = ModelSource.wrap(model_or_checkpoint)
    return source, source.name


def _as_pairs(time_bins):
    """Brain-Score passes bins as a list of pairs, an (n, 2) array or a MultiIndex's array of tuples."""
    def pair(value):
        value = np.asarray(value, dtype=object)
        return tuple(float(v) for v in (value.item() if value.ndim == 0 else value))

    try:
        return [pair(b) for b in time_bins]
    except (TypeError, ValueError):
        return time_bins  # check_bins names what is wrong with it


class VisrecurBrainModel(BrainModel):
    """A visrecur model under Brain-Score's ``BrainModel`` interface.

    ``model_or_checkpoint``: a shipped pretrained name (``visrecur.artifacts.checkpoint.PRETRAINED``), a checkpoint
    path, a zoo name (untrained), a model carrying its preprocessing, or a ``ModelSource``.
    ``region_states``: {Brain-Score region: state name}; default: V1, V2, V4, IT to the states of the same
    names. ``time_mapping``: steps <-> ms; default ``TimeMapping()``: 35 ms per step (the midpoint of the
    paper's 20-50 ms), step 0 at stimulus onset, so step t covers [35 t, 35 (t + 1)) ms.
    ``readout_time``: the readout time of the label and probability tasks (default the model's own).
    ``max_step``: the last step the adapter may run (default: what the model can run: the last step
    with weights of a time-variant model, the last trained step under ``beyond_trained="error"``,
    otherwise no limit). ``reduction``: what each state's activity becomes (visrecur.recording.reductions;
    default none: every unit is a neuroid).
    """

    def __init__(self, model_or_checkpoint=None, *, identifier: str | None = None,
                 region_states: Mapping[str, str] | None = None, time_mapping: TimeMapping | None = None,
                 visual_degrees: float = DEFAULT_VISUAL_DEGREES, readout_time: int | None = None,
                 max_step: int | None = None, reduction: str | None = None, batch_size: int = 64,
                 device: str = "cpu", progress: bool = True):
        self.source, name = _source(model_or_checkpoint)
        self.model = self.source.model.eval()
        spec = self.model.spec
        self._identifier = identifier or f"visrecur-{name}"
        self.states = [s.name for s in spec.graph.states]
        self.region_states = map_regions(self.states, region_states)
        self.time_mapping = time_mapping if time_mapping is not None else TimeMapping()
        if not isinstance(self.time_mapping, TimeMapping):
            raise TimeMappingError("time_mapping must be a visrecur.timing.TimeMapping, e.g. "
                                   "TimeMapping(ms_per_step=(35, 35), onset_ms=0)")
        if not (isinstance(visual_degrees, (int, float)) and 0 < visual_degrees < 9000):
            raise InputError(f"visual_degrees={visual_degrees!r} must be a positive number of degrees, e.g. 8")
        self._visual_degrees = visual_degrees
        self.readout_time = spec.readout_time if readout_time is None else int(readout_time)
        spec.check_readout_time(self.readout_time)
        self.max_step, self.max_step_reason = self._step_limit(max_step)
        self.reduction, self.batch_size, self.device, self.progress = reduction, batch_size, device, progress
        if not self.source.trained:
            warnings.warn(f"{self._identifier} has random weights (untrained): its activity says nothing about "
                          "vision", UserWarning, stacklevel=2)
        self._task, self._choices, self._fit = None, None, None
        self._recording: tuple[str, str, BinPlan] | None = None

    def _step_limit(self, max_step):
        

        spec = self.model.spec
        limits = []
        if spec.graph.weight_sharing == "unshared":
            limits.append((spec.time_steps - 1, f"a time-variant model with weights for steps up to "
                                                f"{spec.time_steps - 1}"))
        if spec.beyond_trained == "error" and self.model.last_trained_step() is not None:
            limits.append((self.model.last_trained_step(), "beyond_trained='error' past the last trained step"))
        if max_step is not None:
            if int(max_step) < 0:
                raise TimeStepError(f"max_step={max_step} must be a step >= 0")
            limits.append((int(max_step), f"max_step={int(max_step)}"))
        return min(limits) if limits else (None, "")

    # --- BrainModel -------------------------------------------------------------------------------
    @property
    def identifier(self) -> str:
        return self._identifier

    def visual_degrees(self) -> float:
        """The visual angle the model's input covers (a stated default of 8 degrees; Brain-Score rescales
        every stimulus to it before ``look_at``)."""
        return self._visual_degrees

    def start_task(self, task: str, fitting_stimuli=None) -> None:
        """``passive`` (record, if a recording was started), ``label`` (the model's own classes, or a
        list of them as ``fitting_stimuli``) or ``probabilities`` (the model's softmax at the readout
        time where the fitting labels are its classes; otherwise a logistic regression fitted from the
        logits at the readout time to the fitting stimuli's ``image_label``)."""
        classes = list(self.source.classes or [str(k) for k in range(self.model.spec.num_classes)])
        if task == PASSIVE:
            self._task = None
            return
        if task == LABEL:
            if fitting_stimuli is None:
                choices = classes
            elif isinstance(fitting_stimuli, (list, tuple)) and all(isinstance(c, str) for c in fitting_stimuli):
                choices = list(fitting_stimuli)
                missing = [c for c in choices if c not in classes]
                if missing:
                    raise TaskError(f"label {missing[0]!r} is not a class of this model's readout {classes}; "
                                    "give labels among them (or none for all)")
            else:
                raise TaskError(f"label task over {fitting_stimuli!r}: this model reads out {classes}; give "
                                "a list of those labels or None")
            self._task, self._choices, self._fit = LABEL, choices, None
            return
        if task == PROBABILITIES:
            if fitting_stimuli is None or "image_label" not in getattr(fitting_stimuli, "columns", ()):
                raise TaskError("the probabilities task needs fitting_stimuli: a StimulusSet with an "
                                "'image_label' column")
            labels = [str(v) for v in fitting_stimuli["image_label"]]
            choices = sorted(set(labels))
            fit = None
            if not set(choices) <= set(classes):
                from sklearn.linear_model import LogisticRegression

                logits = self._logits(fitting_stimuli)
                if len(choices) < 2:
                    raise TaskError(f"the fitting stimuli have one label ({choices[0]!r}); give at least two")
                fit = LogisticRegression(max_iter=1000).fit(logits, labels)
                choices = [str(c) for c in fit.classes_]
            self._task, self._choices, self._fit = PROBABILITIES, choices, fit
            return
        raise TaskError(f"task {task!r} is not supported; use passive, label or probabilities")

    def start_recording(self, recording_target: str, time_bins: Sequence[Sequence[float]]) -> None:
        """Record the state mapped to ``recording_target`` in ``time_bins`` (ms after stimulus onset). The
        bins are checked now; bins taking steps before the state's arrival warn, naming them."""
        state = state_for(str(recording_target), self.region_states, self.states)
        arrival = self.model.spec.graph.arrival_time(state)
        plan = plan_bins(_as_pairs(time_bins), self.time_mapping, state, arrival, self.max_step, self.max_step_reason)
        if plan.unreached:
            warnings.warn(plan.describe_unreached(self.time_mapping), UnreachedStateWarning, stacklevel=2)
        self._recording = (str(recording_target), state, plan)
        self._task = None

    def look_at(self, stimuli, number_of_trials: int = 1, require_variance: bool = False):
        """Recordings (after ``start_recording``) or task output (after ``start_task``); None when passive
        with nothing recorded. The model is deterministic: ``number_of_trials`` repeats would be equal."""
        if self._task is not None:
            return self._behave(stimuli)
        if self._recording is None:
            return None
        return self._record(stimuli)

    # --- recording ---------------------------------------------------------------------------------
    def _run(self, stimuli, states, times, reduction):
        from visrecur.recording import record

        stimulus_set, coords = from_brainscore(stimuli)
        ds = record(self.source, stimulus_set, states=states, times=times, readout_time=self.readout_time,
                    reduction=reduction, batch_size=self.batch_size, device=self.device,
                    ms_per_step=self.time_mapping, progress=self.progress)
        return ds, coords

    def _record(self, stimuli) -> NeuroidAssembly:
        from visrecur.artifacts.recordings import to_neuroids

        region, state, plan = self._recording
        ds, coords = self._run(stimuli, [state], list(plan.steps), self.reduction)
        neuroids = to_neuroids(ds, [state], list(plan.steps))
        if "time" not in neuroids.dims:
            neuroids = neuroids.expand_dims("time", axis=-1)
        values = apply_weights(neuroids.transpose("stimulus", "neuroid", "time").values, plan)
        n = neuroids.sizes["neuroid"]
        neuroid = {"neuroid_id": np.array(neuroids["neuroid_id"].values, dtype=object),
                   "region": np.array([region] * n, dtype=object), "state": np.array([state] * n, dtype=object),
                   **{k: neuroids[k].values for k in ("channel", "y", "x")}}
        if (neuroids["feature"].values >= 0).any():
            neuroid["feature"] = neuroids["feature"].values
        assembly = NeuroidAssembly(values, dims=["presentation", "neuroid", "time_bin"], coords={
            **{k: ("presentation", v) for k, v in coords.items()},
            **{k: ("neuroid", v) for k, v in neuroid.items()},
            "time_bin_start": ("time_bin", plan.bins[:, 0]), "time_bin_end": ("time_bin", plan.bins[:, 1])})
        assembly.attrs.update(self._provenance(ds) | {
            "time_bin_steps": "; ".join(f"({a:g}, {b:g}) ms <- " + ", ".join(
                f"step {t} x {w:.3g}" for t, w in zip(plan.steps, row) if w > 0) for (a, b), row in
                zip(plan.bins, plan.weights)),
            "unreached": "none" if not plan.unreached else plan.describe_unreached(self.time_mapping)})
        return assembly

    def _provenance(self, ds) -> dict:
        return {"model": self._identifier, "time_mapping": self.time_mapping.describe()
                + f"; step t covers [{self.time_mapping.onset_ms:g} + {self.time_mapping.step_ms:g} t, "
                  f"{self.time_mapping.onset_ms:g} + {self.time_mapping.step_ms:g} (t + 1)) ms",
                "unreached_value": "0 (a state not yet reached counts as zero activity)",
                "readout_time": int(self.readout_time), "preprocessing": ds.attrs.get("preprocessing", ""),
                "checkpoint_sha256": ds.attrs.get("checkpoint_sha256", "")}

    # --- behaviour ---------------------------------------------------------------------------------
    def _logits(self, stimuli, with_coords: bool = False):
        last = self.states[-1]
        ds, coords = self._run(stimuli, [last], [self.readout_time - 1], "mean")
        logits = ds["logits"].sel(readout_time=self.readout_time).values.astype(np.float64)
        return (logits, coords, ds) if with_coords else logits

    def _behave(self, stimuli) -> BehavioralAssembly:
        logits, coords, ds = self._logits(stimuli, with_coords=True)
        classes = list(self.source.classes or [str(k) for k in range(self.model.spec.num_classes)])
        presentation = {k: ("presentation", v) for k, v in coords.items()}
        if self._fit is not None:
            probabilities = self._fit.predict_proba(logits)
        else:
            columns = [classes.index(c) for c in self._choices]
            chosen = logits[:, columns]
            probabilities = np.exp(chosen - chosen.max(1, keepdims=True))
            probabilities /= probabilities.sum(1, keepdims=True)
        if self._task == LABEL:
            labels = np.array([[self._choices[k]] for k in probabilities.argmax(1)], dtype=object)
            out = BehavioralAssembly(labels, dims=["presentation", "choice"], coords=presentation)
        else:
            out = BehavioralAssembly(probabilities, dims=["presentation", "choice"],
                                     coords={**presentation, "choice": ("choice", np.array(self._choices, dtype=object))})
        out.attrs.update(self._provenance(ds) | {"readout": f"post-net at readout time {self.readout_time} "
                         f"({self.time_mapping.latency(self.readout_time)[0]:g}-"
                         f"{self.time_mapping.latency(self.readout_time)[1]:g} ms)"
                         + (", logistic regression from its logits to the fitting labels" if self._fit else "")})
        return out


__all__ = ["VisrecurBrainModel", "DEFAULT_VISUAL_DEGREES", "UnreachedStateWarning", "TaskError",
           "BRAINSCORE_REGIONS"]
