"""``VisrecurBrainModel``: any visrecur model as a Brain-Score ``BrainModel``, time-resolved.

Regions map to states by name (``regions.py``), Brain-Score's time bins to model steps through
``visrecur.timing.TimeMapping`` (``timebins.py``: zero-length, early and late bins), trials through
Brain-Score's microsaccades (``trials.py``), tasks through Brain-Score's behaviour classes
(``behavior.py``), and the activity comes from ``visrecur.recording.recorder`` (the model's own
preprocessing, batches, a progress bar): this module never unrolls the model itself. The keywords
Brain-Score defines are checked in ``calls.py``; every call form Brain-Score 2.4.2's benchmarks use is
listed, beside the files using it, in tests/test_brainscore_calls.py, which calls the adapter with each.
Importing it imports brainscore_vision (``visrecur.brainscore`` imports it lazily).
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from visrecur.artifacts.models import ModelSource, display_name, load_model
from visrecur.errors import InputError, TimeStepError
from visrecur.timing import TimeMapping, TimeMappingError
from . import behavior
from .behavior import TaskError
from .calls import check_keywords
from .environment import DEFAULT_VISUAL_DEGREES, require
from .model_time import model_time
from .regions import BRAINSCORE_REGIONS, behavior_features, region_states as map_regions, state_for
from .stimuli import from_brainscore
from .timebins import PAST_TRAINED, BinPlan, apply_weights, plan_bins
from .trials import check_trials, microsaccades, shifted

require()
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly  # noqa: E402
from brainscore_vision.model_interface import BrainModel  # noqa: E402

LABEL, PROBABILITIES, PASSIVE = BrainModel.Task.label, BrainModel.Task.probabilities, BrainModel.Task.passive
ODD_ONE_OUT = BrainModel.Task.odd_one_out
IMAGE_FITS = ("stretch", "crop")


class UnreachedStateWarning(UserWarning):
    """Time bins that hold zeros for time before a state responds (before its step 0 or its arrival)."""


class PastTrainedWarning(UserWarning):
    """Time bins that take steps past the model's last trained step."""


# --- which model, which states (the model's resolution) ------------------------------------------
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
    """Brain-Score passes bins as a list of pairs, an (n, 2) array, a MultiIndex's array of tuples or a
    list holding one 0-d array of a tuple (``timebins_from_assembly`` on a squeezed assembly)."""
    def pair(value):
        value = np.asarray(value, dtype=object)
        return tuple(float(v) for v in (value.item() if value.ndim == 0 else value))

    try:
        return [pair(b) for b in time_bins]
    except (TypeError, ValueError):
        return time_bins  # check_bins names what is wrong with it


class VisrecurBrainModel(BrainModel):
    """A visrecur model under Brain-Score's ``BrainModel`` interface.

    ``model_or_checkpoint``: a shipped pretrained name (``visrecur.artifacts.checkpoint.PRETRAINED``), a
    checkpoint path, a zoo name (untrained), a model carrying its preprocessing, or a ``ModelSource``.
    ``region_states``: {Brain-Score region: state name}; default: V1, V2, V4, IT to the states of the same
    names. ``time_mapping``: steps <-> ms (``TimeMapping``, per-state onsets and step durations); default:
    the model's own, else ``TimeMapping()``: 35 ms per step (the midpoint of the paper's 20-50 ms) from
    0 ms, so step t covers [35 t, 35 (t + 1)) ms; ``time_preset="cornet-s"``: Brain-Score's CORnet-S
    table instead (``presets.py``). ``readout_time``: the readout time of the label task
    (default the model's own). ``max_step``: the last step the adapter may run (default: what the model
    can run). ``past_trained``: "answer" (flag them) or "refuse" bins past the last trained step.
    ``image_fit``: "stretch" (default; Brain-Score's default preprocessing: the whole image resized to the
    input size) or "crop" (visrecur's own: shorter side, centre crop). ``behavior_state``,
    ``behavior_step``, ``behavior_reduction``: the features behavioural readouts are fitted on (default:
    the last state at step readout_time - 1, which the readout reads, pooled over space: "mean").
    ``reduction``: what each state's recorded activity becomes (default none: every unit a neuroid).
    """

    def __init__(self, model_or_checkpoint=None, *, identifier: str | None = None,
                 region_states: Mapping[str, str] | None = None, time_mapping: TimeMapping | None = None,
                 visual_degrees: float = DEFAULT_VISUAL_DEGREES, readout_time: int | None = None,
                 time_preset: str | None = None, max_step: int | None = None, reduction: str | None = None,
                 past_trained: str = "answer",
                 image_fit: str = "stretch", behavior_state: str | None = None, behavior_step: int | None = None,
                 behavior_reduction: str = "mean", batch_size: int = 64, device: str = "cpu", progress: bool = True):
        self.source, name = _source(model_or_checkpoint)
        self.model = self.source.model.eval()
        self.time = model_time(self.model)  # an FRNN's or a timed model's (visrecur.timed) answers
        self._identifier = identifier or f"visrecur-{name}"
        self.states = self.time.states
        self.region_states = map_regions(self.states, region_states)
        if time_mapping is not None and not isinstance(time_mapping, TimeMapping):
            raise TimeMappingError("time_mapping must be a visrecur.timing.TimeMapping, e.g. "
                                   "TimeMapping(ms_per_step=(35, 35), onset_ms=0)")
        if time_preset is not None:
            from .presets import preset_mapping

            if time_mapping is not None:
                raise InputError("give time_preset or time_mapping, not both")
            time_mapping = preset_mapping(time_preset, self.region_states,
                                          {name: self._arrival(name) for name in self.states})
        self.time_mapping = TimeMapping.resolve(time_mapping, self.source.time_mapping, "model")
        self.time_mapping.check_states(self.states)
        if not (isinstance(visual_degrees, (int, float)) and 0 < visual_degrees < 9000):
            raise InputError(f"visual_degrees={visual_degrees!r} must be a positive number of degrees, e.g. 8")
        self._visual_degrees = visual_degrees
        self.readout_time = self.time.default_readout_time if readout_time is None else int(readout_time)
        self.time.check_readout_time(self.readout_time)
        self.max_step, self.max_step_reason = self._step_limit(max_step)
        self.last_trained = self.model.last_trained_step()
        if past_trained not in PAST_TRAINED:
            raise InputError(f"past_trained={past_trained!r} must be one of {', '.join(PAST_TRAINED)}")
        if image_fit not in IMAGE_FITS:
            raise InputError(f"image_fit={image_fit!r} must be one of {', '.join(IMAGE_FITS)}")
        self.past_trained, self.image_fit = past_trained, image_fit
        self.preprocess = dataclasses.replace(self.source.preprocess, fit=image_fit)
        # default: the last state at the step the readout reads
        default_step = None if self.readout_time is None else self.time.readout_step(self.readout_time)
        feature_state = behavior_state if behavior_state is not None else self.states[-1]
        limit = self._last_step(feature_state) if feature_state in self.states else self.max_step
        try:
            chosen, self._features_error = behavior_features(
                self.states, self._arrival, behavior_state, default_step if behavior_step is None else behavior_step,
                (default_step or 0) + 1, limit), None
        except InputError as err:  # a chosen state or step is refused now; the default only when a task needs it
            if behavior_state is not None or behavior_step is not None:
                raise
            chosen, self._features_error = behavior_features(self.states, self._arrival, None, default_step,
                                                             (default_step or 0) + 1), err
        self.features = behavior.Features(self._features, *chosen, behavior_reduction)
        self.reduction, self.batch_size, self.device, self.progress = reduction, batch_size, device, progress
        if not self.source.trained:
            warnings.warn(f"{self._identifier} has random weights (untrained): its activity says nothing about "
                          "vision", UserWarning, stacklevel=2)
        self._task, self._behavior = None, None
        self._recording: tuple[str, str, BinPlan] | None = None

    # --- what the adapter asks of the model: its states' arrival, its classes, the steps it can run ----
    def _arrival(self, state: str) -> int:
        """The first step at which ``state`` holds activity."""
        return self.time.arrival(state)

    def _last_step(self, state: str) -> int | None:
        """The last step ``state`` may be recorded at: the model's limit, and a timed model's area's own."""
        own = self.time.last_step(state)
        return own if self.max_step is None else self.max_step if own is None else min(own, self.max_step)

    def _classes(self) -> list[str]:
        """The names of the readout's classes."""
        return list(self.source.classes or [str(k) for k in range(self.time.num_classes or 0)])

    def _step_limit(self, max_step):
        spec = self.time.spec
        limits = []
        # a timed model (no spec): each area's own last step (_last_step), and max_step
        if spec is not None and spec.graph.weight_sharing == "unshared":
            limits.append((spec.time_steps - 1, f"a time-variant model with weights for steps up to "
                                                f"{spec.time_steps - 1}"))
        if spec is not None and spec.beyond_trained == "error" and self.model.last_trained_step() is not None:
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

    def start_task(self, task: str, fitting_stimuli=None, **options) -> None:
        """``passive``; ``label`` (None or a list of labels: the model's own readout, pooled by
        ``aggregation``; ``'imagenet'`` for a 1000-class readout; fitting stimuli: a fitted readout of the
        features); ``probabilities`` (fitting stimuli with ``image_label``: Brain-Score's
        ProbabilitiesMapping on the features); ``odd_one_out`` (Brain-Score's OddOneOut on the features).
        ``number_of_trials`` and ``require_variance`` present the fitting stimuli (``trials.py``)."""
        options = check_keywords("start_task", options)
        if "choice_labels" in options:  # LabelBehavior's name for the second argument
            fitting_stimuli = options.pop("choice_labels")
        trials = check_trials(options.get("number_of_trials", 1), options.get("require_variance", False))
        aggregation = options.get("aggregation", "mean")
        if aggregation != "mean" and task != LABEL:
            raise TaskError(f"aggregation applies to the label task only (it pools class probabilities within a "
                            f"label); task {task!r} takes none")
        if task == PASSIVE:
            self._task, self._behavior = None, None
            return
        if task in (PROBABILITIES, ODD_ONE_OUT) or (task == LABEL and hasattr(fitting_stimuli, "columns")):
            if self._features_error is not None:
                raise self._features_error
        if task == LABEL:
            self._behavior = self._label_task(fitting_stimuli, aggregation, trials)
        elif task == PROBABILITIES:
            self._behavior = behavior.fitted_probabilities(self._identifier, self.features, fitting_stimuli, *trials)
        elif task == ODD_ONE_OUT:
            if fitting_stimuli is not None:
                raise TaskError("the odd_one_out task takes no fitting stimuli; look_at gets the triplets")
            self._behavior = behavior.odd_one_out(self._identifier, self.features)
        else:
            raise TaskError(f"task {task!r} is not one of Brain-Score's (passive, label, probabilities, odd_one_out)")
        self._task = task

    def _label_task(self, choices, aggregation, trials):
        if hasattr(choices, "columns"):  # fitting stimuli: a readout of the features, its best label
            return behavior.fitted_probabilities(self._identifier, self.features, choices, *trials)
        classes = self._classes()
        if len(classes) == behavior.IMAGENET_CLASSES and choices is not None:
            return behavior.imagenet_labels(self._logits, self._identifier, choices, aggregation)
        return behavior.ReadoutLabels(classes, choices, aggregation)

    def start_recording(self, recording_target: str = None, time_bins=None, **options) -> None:
        """Record the state mapped to ``recording_target`` in ``time_bins`` (ms after stimulus onset). The
        bins are checked now; bins holding zeros for time before the state responds warn (naming them),
        and so do bins past the last trained step (once per call; refused with past_trained='refuse')."""
        check_keywords("start_recording", options)
        if recording_target is None or time_bins is None:
            raise InputError("start_recording needs a recording_target (e.g. 'IT') and time_bins, e.g. [(70, 170)]")
        state = state_for(str(recording_target), self.region_states, self.states)
        arrival = self._arrival(state)
        last = self._last_step(state)
        reason = self.max_step_reason if last == self.max_step else f"area {state} of {self.time.name} runs steps " \
            f"{arrival}..{last}"
        plan = plan_bins(_as_pairs(time_bins), self.time_mapping, state, arrival, last, reason,
                         self.last_trained, self.past_trained)
        if plan.unreached:
            warnings.warn(plan.describe_unreached(self.time_mapping), UnreachedStateWarning, stacklevel=2)
        if plan.past_trained.any():
            warnings.warn(plan.describe_past_trained(), PastTrainedWarning, stacklevel=2)
        self._recording = (str(recording_target), state, plan)
        self._task, self._behavior = None, None

    def look_at(self, stimuli, number_of_trials: int = 1, require_variance: bool = False, **options):
        """Recordings (after ``start_recording``) or task output (after ``start_task``); None when passive
        with nothing recorded. Trials: ``trials.py``."""
        check_keywords("look_at", options)
        number_of_trials, require_variance = check_trials(number_of_trials, require_variance)
        if self._task is not None:
            if self._task == ODD_ONE_OUT:
                triplets = behavior.as_triplets(stimuli)
                if len(triplets) % 3:
                    raise TaskError(f"odd_one_out: {len(triplets)} stimuli are not whole triplets; give 3 per trial")
                return self._behavior.look_at(triplets, number_of_trials, require_variance)
            if isinstance(self._behavior, behavior.ReadoutLabels):
                logits, presentation = self._logits(stimuli, number_of_trials, require_variance)
                return behavior.label_assembly(self._behavior(logits), presentation)
            out = self._behavior.look_at(stimuli, number_of_trials=number_of_trials, require_variance=require_variance)
            if self._task == LABEL and "choice" in out.coords:  # a fitted readout: its most probable label
                labels = [str(out["choice"].values[k]) for k in out.values.argmax(1)]
                return behavior.label_assembly(labels, {k: out[k].values for k in out.coords
                                                         if out[k].dims == ("presentation",) and k != "presentation"})
            return out
        if self._recording is None:
            return None
        return self._record(stimuli, number_of_trials, require_variance)

    # --- running the model ---------------------------------------------------------------------------
    def _run(self, stimuli, states, times, reduction, number_of_trials=1, require_variance=False):
        """([recording per trial], presentation coords): one trial without ``require_variance``."""
        from visrecur.recording import record

        stimulus_set, coords = from_brainscore(stimuli)
        trials = microsaccades(number_of_trials, self.preprocess.crop_size, self._visual_degrees) \
            if require_variance else [None]
        recordings = [record(self.source, stimulus_set, states=states, times=times, readout_time=self.readout_time,
                             reduction=reduction, batch_size=self.batch_size, device=self.device,
                             ms_per_step=self.time_mapping, progress=self.progress,
                             preprocess=self.preprocess if trial is None else shifted(self.preprocess, trial))
                      for trial in trials]
        if len(trials) > 1:  # stimulus after stimulus, each repeated once per trial, as Brain-Score lays them out
            coords = {**{k: np.repeat(v, len(trials)) for k, v in coords.items()},
                      **{k: np.tile([t[k] for t in trials], len(stimulus_set)) for k in trials[0]}}
        return recordings, coords

    @staticmethod
    def _interleave(arrays) -> np.ndarray:
        """Per-trial arrays (stimulus, ...) -> (stimulus x trial, ...), stimulus-major."""
        if len(arrays) == 1:
            return arrays[0]
        stacked = np.stack(arrays, axis=1)
        return stacked.reshape((-1,) + stacked.shape[2:])

    def _activity(self, stimuli, state, steps, reduction, number_of_trials, require_variance):
        """(presentation x neuroid x step values, presentation coords, neuroid coords, recording attrs)."""
        from visrecur.artifacts.recordings import to_neuroids

        recordings, coords = self._run(stimuli, [state], list(steps), reduction, number_of_trials, require_variance)
        arrays = []
        for ds in recordings:
            neuroids = to_neuroids(ds, [state], list(steps))
            if "time" not in neuroids.dims:
                neuroids = neuroids.expand_dims("time", axis=-1)
            arrays.append(neuroids.transpose("stimulus", "neuroid", "time").values)
        n = neuroids.sizes["neuroid"]
        neuroid = {"neuroid_id": np.array(neuroids["neuroid_id"].values, dtype=object),
                   "state": np.array([state] * n, dtype=object),
                   **{k: neuroids[k].values for k in ("channel", "y", "x")}}
        if (neuroids["feature"].values >= 0).any():
            neuroid["feature"] = neuroids["feature"].values
        return self._interleave(arrays), coords, neuroid, recordings[0].attrs

    def _features(self, stimuli, number_of_trials=1, require_variance=False):
        """Behaviour's features: (presentation x neuroid values, presentation coords, neuroid coords, attrs)."""
        f = self.features
        values, coords, neuroid, attrs = self._activity(stimuli, f.state, [f.step], f.reduction, number_of_trials,
                                                        require_variance)
        return values[..., 0].astype(np.float64), coords, neuroid, self._provenance(attrs) | {"features": f.describe()}

    def _logits(self, stimuli, number_of_trials=1, require_variance=False):
        """(presentation x class logits at the readout time, presentation coords)."""
        recordings, coords = self._run(stimuli, [self.states[-1]], [self.time.readout_step(self.readout_time)], "mean",
                                       number_of_trials, require_variance)
        logits = [ds["logits"].sel(readout_time=self.readout_time).values.astype(np.float64) for ds in recordings]
        return self._interleave(logits), coords

    def _record(self, stimuli, number_of_trials, require_variance) -> NeuroidAssembly:
        region, state, plan = self._recording
        values, coords, neuroid, attrs = self._activity(stimuli, state, plan.steps, self.reduction, number_of_trials,
                                                        require_variance)
        neuroid["region"] = np.array([region] * len(neuroid["neuroid_id"]), dtype=object)
        assembly = NeuroidAssembly(apply_weights(values, plan), dims=["presentation", "neuroid", "time_bin"], coords={
            **{k: ("presentation", v) for k, v in coords.items()}, **{k: ("neuroid", v) for k, v in neuroid.items()},
            "time_bin_start": ("time_bin", plan.bins[:, 0]), "time_bin_end": ("time_bin", plan.bins[:, 1])})
        # a plain coordinate, not an index level: Brain-Score's time alignment wants exactly (start, end)
        assembly = assembly.assign_coords(past_trained=("time_bin", plan.past_trained))
        assembly.attrs.update(self._provenance(attrs) | {
            "time_bin_steps": plan.describe_steps(),
            "unreached": "none" if not plan.unreached else plan.describe_unreached(self.time_mapping),
            "past_trained": "none" if not plan.past_trained.any() else plan.describe_past_trained(),
            "trials": (f"{number_of_trials} per stimulus, microsaccades" if require_variance and number_of_trials > 1
                       else "one pass per stimulus (a deterministic model's trials are identical)")})
        return assembly

    def _provenance(self, attrs) -> dict:
        return {"model": self._identifier, "time_mapping": self.time_mapping.describe(),
                "time_mapping_json": json.dumps(self.time_mapping.to_dict()),
                "unreached_value": "0 (a bin wholly before the state's step 0; steps before its arrival)",
                "last_trained_step": -1 if self.last_trained is None else int(self.last_trained),
                "readout_time": int(self.readout_time), "preprocessing": attrs.get("preprocessing", ""),
                "checkpoint_sha256": attrs.get("checkpoint_sha256", "")}


__all__ = ["VisrecurBrainModel", "DEFAULT_VISUAL_DEGREES", "UnreachedStateWarning", "PastTrainedWarning", "TaskError",
           "BRAINSCORE_REGIONS"]
