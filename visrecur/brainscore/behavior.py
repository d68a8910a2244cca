"""Behavioural tasks of ``VisrecurBrainModel``, with Brain-Score's own classes where they fit:

* ``probabilities``: Brain-Score's ``ProbabilitiesMapping`` (standardised features, a multinomial
  logistic regression, C = 1e-3) fitted on *features*: one state at one step (default: the last state
  at the step the readout reads, pooled over space), as ``ProbabilitiesMapping`` fits on a network's
  penultimate layer;
* ``label``: with a list of labels (or ``'imagenet'``), the model's own readout: softmax over its
  classes, pooled within each label by ``aggregation`` ('mean' or 'max') and the largest taken, as
  Brain-Score's ``LabelBehavior`` does (a model reading out the 1000 ImageNet classes is handed to
  ``LabelBehavior`` itself, labels mapped by its ImageNet table); with fitting stimuli, the fitted
  ``ProbabilitiesMapping``'s most probable label;
* ``odd_one_out``: Brain-Score's ``OddOneOut`` on the same features (dot-product similarity; the odd
  one is the stimulus outside the most similar pair), Hebart et al. 2023's triplet task.
"""
from __future__ import annotations

import numpy as np

from visrecur.errors import InputError
from .environment import require

require()
from brainscore_core.supported_data_standards.brainio.assemblies import (  # noqa: E402
    BehavioralAssembly, NeuroidAssembly)
from brainscore_vision.model_helpers.brain_transformation.behavior import (  # noqa: E402
    LabelBehavior, LabelToImagenetIndices, OddOneOut, ProbabilitiesMapping)
from brainscore_vision.model_interface import BrainModel  # noqa: E402

AGGREGATIONS = ("mean", "max")
IMAGENET_CLASSES = 1000


class TaskError(InputError):
    """A Brain-Score task this model cannot do as asked."""


class Features:
    """Brain-Score's activations-model interface (``model(stimuli, layers, number_of_trials=...,
    require_variance=...)`` -> presentation x neuroid) over one state at one step: what
    ``ProbabilitiesMapping`` and ``OddOneOut`` read. ``run(stimuli, trials)`` gives (values, presentation
    coords, neuroid coords, attrs)."""

    def __init__(self, run, state: str, step: int, reduction: str):
        self._run, self.state, self.step, self.reduction = run, state, int(step), reduction

    @property
    def layer(self) -> str:
        return f"{self.state}@{self.step}"

    def describe(self) -> str:
        return f"state {self.state} at step {self.step}, reduction {self.reduction}"

    def __call__(self, stimuli, layers=None, number_of_trials: int = 1, require_variance: bool = False, **_):
        values, presentation, neuroid, attrs = self._run(stimuli, number_of_trials, require_variance)
        out = NeuroidAssembly(values, dims=["presentation", "neuroid"],
                              coords={**{k: ("presentation", v) for k, v in presentation.items()},
                                      **{k: ("neuroid", v) for k, v in neuroid.items()}})
        out.attrs.update(attrs)
        return out


def check_aggregation(aggregation) -> str:
    if aggregation not in AGGREGATIONS:
        raise TaskError(f"aggregation={aggregation!r} is not one of Brain-Score's ({', '.join(AGGREGATIONS)}); "
                        "it pools the probabilities of the classes within a label")
    return aggregation


def _normalise(label: str) -> str:
    return str(label).lower().replace(" ", "")


class ReadoutLabels:
    """The label task over the model's own readout: ``choices`` (labels) -> class indices."""

    def __init__(self, classes, choices, aggregation: str = "mean"):
        self.classes = list(classes)
        self.aggregation = check_aggregation(aggregation)
        if choices is None:
            choices = self.classes
        if isinstance(choices, str):
            raise TaskError(f"label task over {choices!r}: it needs a model that reads out the {IMAGENET_CLASSES} "
                            f"ImageNet classes; this one reads out {len(self.classes)} ({', '.join(self.classes[:10])}"
                            f"{' ...' if len(self.classes) > 10 else ''}); give a list of those labels, or fitting "
                            "stimuli with an 'image_label' column")
        self.choices = [str(c) for c in choices]
        names = [_normalise(c) for c in self.classes]
        self.indices = [[k for k, n in enumerate(names) if n == _normalise(label)] for label in self.choices]
        missing = [label for label, idx in zip(self.choices, self.indices) if not idx]
        if missing:
            raise TaskError(f"label(s) {', '.join(map(repr, missing))} name no class of this model's readout "
                            f"({', '.join(self.classes)}); give labels among them, or fitting stimuli with an "
                            "'image_label' column to fit a readout of the features")

    def __call__(self, logits: np.ndarray) -> list[str]:
        shifted = logits - logits.max(1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        pool = np.mean if self.aggregation == "mean" else np.max
        pooled = np.stack([pool(probabilities[:, idx], axis=1) for idx in self.indices], axis=1)
        return [self.choices[k] for k in pooled.argmax(1)]


def label_assembly(choices, presentation: dict, extra: dict | None = None) -> BehavioralAssembly:
    """Labels as Brain-Score's ``LabelBehavior`` returns them: choice x presentation, a ``label`` coord."""
    coords = {**{k: ("presentation", v) for k, v in presentation.items()},
              "label": ("presentation", np.array(choices, dtype=object)), **(extra or {})}
    return BehavioralAssembly([list(choices)], coords=coords, dims=["choice", "presentation"])


class LogitsModel:
    """Brain-Score's activations-model interface over the post-net's logits (neuroid = class), for
    ``LabelBehavior``."""

    def __init__(self, run):
        self._run = run

    def __call__(self, stimuli, layers=None, number_of_trials: int = 1, require_variance: bool = False, **_):
        logits, presentation = self._run(stimuli, number_of_trials, require_variance)
        return NeuroidAssembly(logits, dims=["presentation", "neuroid"], coords={
            **{k: ("presentation", v) for k, v in presentation.items()},
            "neuroid_id": ("neuroid", np.arange(logits.shape[1]))})


def imagenet_labels(run_logits, identifier: str, choices, aggregation: str) -> LabelBehavior:
    """Brain-Score's LabelBehavior over a model that reads out the 1000 ImageNet classes (in their
    standard order); labels map to classes by Brain-Score's table (``LabelToImagenetIndices``)."""
    if not isinstance(choices, str):
        missing = [c for c in choices if not hasattr(LabelToImagenetIndices, f"{_normalise(c)}_indices")]
        if missing:
            raise TaskError(f"label(s) {', '.join(map(repr, missing))} have no ImageNet classes in Brain-Score's table "
                            "(LabelToImagenetIndices); give labels it lists, or fitting stimuli")
    behavior = LabelBehavior(identifier, LogitsModel(run_logits))
    behavior.start_task(BrainModel.Task.label, choices, aggregation=check_aggregation(aggregation))
    return behavior


def fitted_probabilities(identifier: str, features: Features, fitting_stimuli, number_of_trials: int,
                         require_variance: bool) -> ProbabilitiesMapping:
    """Brain-Score's ProbabilitiesMapping fitted on ``features`` of the fitting stimuli."""
    check_fitting_stimuli(fitting_stimuli)
    mapping = ProbabilitiesMapping(identifier, features, features.layer)
    mapping.start_task(BrainModel.Task.probabilities, fitting_stimuli, number_of_trials=number_of_trials,
                       require_variance=require_variance)
    return mapping


def check_fitting_stimuli(fitting_stimuli) -> None:
    if fitting_stimuli is None or "image_label" not in getattr(fitting_stimuli, "columns", ()):
        raise TaskError("this task needs fitting_stimuli: a Brain-Score StimulusSet with an 'image_label' column "
                        "(the labels to fit a readout of the features to)")
    labels = set(str(v) for v in fitting_stimuli["image_label"])
    if len(labels) < 2:
        raise TaskError(f"the fitting stimuli have one label ({next(iter(labels))!r}); give at least two")


def odd_one_out(identifier: str, features: Features) -> OddOneOut:
    return OddOneOut(identifier, features, features.layer)


def as_triplets(stimuli):
    """A list of image paths (the BrainModel docs' form) as a StimulusSet with the paths as ids."""
    if hasattr(stimuli, "columns"):
        return stimuli
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    paths = [str(p) for p in stimuli]
    triplets = StimulusSet({"stimulus_id": paths})
    triplets.stimulus_paths = {p: p for p in paths}
    triplets.identifier = None
    return triplets
