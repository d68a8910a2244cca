"""Model lookup: "a shipped pretrained name, a checkpoint path or a zoo name" -> the model with what
every consumer must say about it (``ModelSource``: preprocessing, provenance, a display name, the time
mapping it states). The one resolver that recording, the analyses and Brain-Score use."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from visrecur.artifacts.checkpoint import DEFAULT_PRETRAINED, PRETRAINED, Checkpoint, checkpoint_path
from visrecur.artifacts.io import sha256
from visrecur.errors import CheckpointError, InputError
from visrecur.recording.preprocess import CIFAR10_MEAN, CIFAR10_STD, Preprocess

UNTRAINED_PREPROCESS = "assumed for an untrained model: the cifar10 recipe's statistics"


def display_name(name_or_path: str | Path | None) -> str:
    """How a model is named in file names, recordings and Brain-Score identifiers: a shipped model by its
    name (``frnn_4state_cifar10``; None is the default one), a checkpoint by its file name without
    ``.pt`` (``runs/x/checkpoint.pt`` by its folder, ``x``), a zoo model by its name (untrained)."""
    if name_or_path is None:
        return DEFAULT_PRETRAINED
    text = str(name_or_path)
    if text in PRETRAINED:
        return text
    path = Path(text)
    if path.suffix == ".pt" or path.is_file():
        return path.parent.name if path.stem == "checkpoint" and path.parent.name else path.stem
    return text


@dataclass
class ModelSource:
    """A model, its preprocessing and its provenance. ``preprocess`` defaults to the one the model
    carries (``visrecur.load`` attaches it); a trained model without one is refused, an untrained one
    gets the cifar10 recipe's, and the recording says it was assumed. ``time_mapping``: the
    ``TimeMapping`` the checkpoint states, if any (None: the analyses' default or the user's)."""

    model: torch.nn.Module
    name: str
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    trained: bool = False
    preprocess: Preprocess | None = None
    classes: tuple = ()
    preprocess_note: str = ""
    time_mapping: object | None = None

    def __post_init__(self):
        if self.preprocess is None:
            self.preprocess = getattr(self.model, "preprocess", None)
        if self.preprocess is None:
            if self.trained:
                raise CheckpointError(f"the preprocessing of {self.name!r} is unknown (its checkpoint has no "
                                      "'preprocess' or 'normalization' entry); pass preprocess=visrecur.Preprocess"
                                      "(input_size, mean, std) with the statistics it was trained with")
            self.preprocess = Preprocess(tuple(self.model.spec.input_size), CIFAR10_MEAN, CIFAR10_STD)
            self.preprocess_note = self.preprocess_note or UNTRAINED_PREPROCESS

    @property
    def mean(self) -> tuple:
        return self.preprocess.mean

    @property
    def std(self) -> tuple:
        return self.preprocess.std

    @classmethod
    def wrap(cls, model: torch.nn.Module, preprocess: Preprocess | None = None) -> "ModelSource":
        """A bare model, whose preprocessing must be known: given, or carried by the model."""
        if isinstance(model, ModelSource):
            return model if preprocess is None else replace(model, preprocess=preprocess, preprocess_note="")
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"a model must be a visrecur model (visrecur.load, visrecur.build) or a ModelSource, "
                             f"not {type(model).__name__}")
        carried = getattr(model, "preprocess", None)
        preprocess = preprocess or carried
        if preprocess is None:
            raise InputError("this model's preprocessing is unknown: pass preprocess=visrecur.Preprocess("
                             "input_size, mean, std) (what it was trained with), or load it with "
                             "visrecur.load(path), whose model carries it")
        from visrecur.timed.protocol import is_timed

        if is_timed(model):  # a visrecur.timed model (CORnet, BL-net, an adapted module) says it itself
            return cls(model, model.name, preprocess=preprocess, trained=model.trained, classes=model.classes,
                       time_mapping=model.time_mapping)
        spec = getattr(model, "spec", None)
        is_trained = getattr(model, "is_trained", None)
        # trained: it came from a checkpoint, or data have shaped its TSBN statistics
        return cls(model, getattr(spec, "name", "model"), preprocess=preprocess,
                   trained=carried is not None or bool(is_trained and is_trained()),
                   time_mapping=getattr(model, "time_mapping", None))


def load_model(name_or_path: str | Path | None = None, seed: int = 0,
               preprocess: Preprocess | None = None) -> ModelSource:
    """A shipped pretrained name, a checkpoint path, a zoo name (untrained, its weights drawn from ``seed``
    without touching torch's global random state), a reference timed architecture's name
    (``visrecur.timed.reference``: cornet_z, cornet_rt, cornet_s, blnet, resnet18_time; untrained, a
    ``TimedModel``), or None: the pretrained default."""
    from visrecur.architecture import zoo

    name = display_name(name_or_path)
    text = None if name_or_path is None else str(name_or_path)
    if text is None or text in PRETRAINED or text.endswith(".pt") or Path(text).is_file():
        path = checkpoint_path(text)
        checkpoint = Checkpoint.read(path)
        model = checkpoint.build(f"checkpoint {str(path)!r}")
        return ModelSource(model, name, str(path), sha256(path), True, preprocess, tuple(checkpoint.classes),
                           time_mapping=model.time_mapping)
    from visrecur.timed import reference

    if text in reference.REFERENCE:  # a reference architecture (CORnet, BL-net, ResNet-18): a timed model
        model = reference.build(text, seed)
        return ModelSource(model, name, preprocess=preprocess, time_mapping=model.time_mapping,
                           preprocess_note="the architecture's usual input; untrained weights")
    with torch.random.fork_rng(devices=[]):  # the same untrained weights on every run and every rank
        torch.manual_seed(seed)
        model = zoo.build(text).eval()
    return ModelSource(model, name, preprocess=preprocess)
