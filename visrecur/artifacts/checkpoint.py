"""The checkpoint: one payload schema (``Checkpoint``: written by training, read by loading and export), the
shipped pretrained weights (``PRETRAINED``: each entry carries its file, preprocessing and measured
metrics, as torchvision's weights carry their transforms and meta), and loading a model from either.

Files are read with ``torch.load(..., weights_only=True)`` (nothing but tensors and plain values is ever
unpickled) and written atomically (``visrecur.artifacts.io``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from visrecur.architecture.modelspec import ModelSpec
from visrecur.artifacts.io import atomic_path
from visrecur.errors import CheckpointError
from visrecur.recording.preprocess import Preprocess

FORMAT = "visrecur-checkpoint-1"
PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds; the keys are these fields (plus ``format``), listed here once.

    ``model``: the state dict. ``spec``: ``ModelSpec.to_dict()``. ``preprocess``: ``Preprocess.to_dict()``
    (what the weights expect). ``time_mapping``: a ``TimeMapping.to_dict()`` the model states for itself
    (None: none stated; analyses then use their default or the user's). ``config``: the ``TrainConfig``
    as plain values; ``metrics``: one row per epoch; ``optimizer`` and ``rng``: what ``--resume`` needs
    (dropped by ``inference_only``). ``stored_dtype``: set when floating-point weights were stored smaller."""

    model: dict
    spec: dict
    preprocess: dict | None = None
    classes: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    config: dict | None = None
    epoch: int = 0
    time_mapping: dict | None = None
    optimizer: dict | None = None
    rng: dict | None = None
    visrecur_version: str = ""
    torch_version: str = ""
    stored_dtype: str | None = None

    TRAINING_ONLY = ("optimizer", "rng")  # what export leaves out

    def __post_init__(self):
        if not self.visrecur_version:
            from visrecur import __version__

            self.visrecur_version = __version__
        self.torch_version = self.torch_version or str(torch.__version__)

    # --- what the file says ---------------------------------------------------------------------
    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.spec)

    @property
    def preprocessing(self) -> Preprocess | None:
        return None if not self.preprocess else Preprocess.from_dict(self.preprocess)

    @property
    def stated_time_mapping(self):
        from visrecur.timing import TimeMapping

        return None if not self.time_mapping else TimeMapping.from_dict(self.time_mapping)

    # --- payload <-> file -----------------------------------------------------------------------
    def to_payload(self) -> dict:
        payload = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                payload[f.name] = value
        if self.preprocess:  # readers before the preprocess entry read normalization
            payload["normalization"] = {"mean": list(self.preprocess["mean"]), "std": list(self.preprocess["std"])}
        return payload

    @classmethod
    def from_payload(cls, payload: dict, where: str = "checkpoint") -> "Checkpoint":
        """A checkpoint from a loaded payload, older files included: ``normalization`` without
        ``preprocess`` (visrecur 0.1), a ``scheduler`` entry, ``readout_times`` in their config."""
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{where} is not a visrecur checkpoint (no {FORMAT!r} format tag); load plain "
                                  "state dicts with model.load_state_dict(torch.load(path, weights_only=True))")
        missing = [k for k in ("model", "spec") if k not in payload]
        if missing:
            raise CheckpointError(f"{where} has no {' or '.join(missing)} entry: it is not a complete visrecur "
                                  "checkpoint; give a file written by python -m visrecur.train")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        if not values.get("preprocess"):
            legacy = Preprocess.from_checkpoint(payload)
            values["preprocess"] = legacy.to_dict() if legacy is not None else None
        config = values.get("config")
        if config is not None and "loss_readout_times" not in config:  # configs before the rename
            values["config"] = {**config, "loss_readout_times": config.get("readout_times", [])}
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path, map_location="cpu") -> "Checkpoint":
        """Load a visrecur checkpoint safely (no arbitrary unpickling), or one clear error."""
        path = Path(path)
        if not path.is_file():
            from visrecur.architecture.zoo import list_models

            if str(path) in list_models():
                raise CheckpointError(f"{str(path)!r} is a zoo architecture, not trained weights: build it untrained "
                                      f"with visrecur.build({str(path)!r}), or load a shipped model "
                                      f"({', '.join(list_pretrained())})")
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist; give the path of a .pt file written "
                                  "by python -m visrecur.train (runs/<name>/checkpoint.pt) or a shipped model "
                                  f"({', '.join(list_pretrained())})")
        if isinstance(map_location, str):
            try:
                torch.device(map_location)
            except RuntimeError:
                raise CheckpointError(f"map_location={map_location!r} is not a torch device; give e.g. 'cpu' or "
                                      "'cuda:0'") from None
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes), e.g. from a copy or download that "
                                  "did not finish; copy it again or give another checkpoint")
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # corrupted, truncated or foreign pickle
            raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}); it is "
                                  "truncated, corrupted or not written by visrecur: copy it again or give another "
                                  "checkpoint") from None
        return cls.from_payload(payload, repr(str(path)))

    def write(self, path: str | Path) -> Path:
        """torch.save atomically: a crash never leaves half a file, and no other run's file is touched."""
        with atomic_path(path) as tmp:
            torch.save(self.to_payload(), tmp)
        return Path(path)

    def inference_only(self, dtype: torch.dtype | None = None) -> "Checkpoint":
        """The same checkpoint without what only resuming needs; ``dtype`` (e.g. ``torch.bfloat16``) stores
        the floating-point weights smaller (loading casts them back to the model's dtype)."""
        slim = dataclasses.replace(self, **{k: None for k in self.TRAINING_ONLY})
        if dtype is not None:
            slim.model = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.model.items()}
            slim.stored_dtype = str(dtype).removeprefix("torch.")
        return slim

    # --- the model ------------------------------------------------------------------------------
    def build(self, where: str = "checkpoint"):
        """The model, weights loaded, in evaluation mode, carrying its preprocessing (``model.preprocess``) and
        the time mapping the checkpoint states (``model.time_mapping``, None when it states none)."""
        from visrecur.nn.model import FRNN

        model = FRNN(self.model_spec)
        load_state(model, self.model, where)
        model.preprocess = self.preprocessing
        model.time_mapping = self.stated_time_mapping
        return model.eval()


def load_state(model: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Load weights, with one clear error naming the first missing and the first unexpected key when they
    were made for another architecture.

    A time-specific batch norm with more steps in the file than in the model (visrecur 0.1 kept an
    untrained step past every transition's last; ``extend_time`` adds steps) is extended to fit first:
    untrained steps are never used for normalisation, so the model behaves as its statistics say."""
    _fit_tsbn_steps(model, state)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            details.append(f"{len(mismatched)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs "
                           f"{tuple(own[k].shape)})")
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise CheckpointError(f"the {source} does not fit model {name!r}: " + "; ".join(details)
                              + ". Load it with visrecur.load(path), which rebuilds the architecture stored in "
                              "the file")
    model.load_state_dict(state)


def _fit_tsbn_steps(model: torch.nn.Module, state: dict) -> None:
    from visrecur.nn.tsbn import TimeSpecificBatchNorm

    for name, module in model.named_modules():
        if isinstance(module, TimeSpecificBatchNorm) and module.time_specific:
            prefix = f"{name}.stats."
            steps = [int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix)]
            if steps and max(steps) > module.num_steps:
                module.extend(max(steps), init="fresh")


# --- shipped pretrained weights ------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainedWeights:
    """A model shipped with visrecur: its file, what it is, and what it was measured to do.

    ``metrics``: the measurement kept beside the file (``<file>.json``, written by ``python -m
    visrecur.evaluate --json``: top-1 error per readout time on a fixed class-balanced test subset).
    ``preprocess``: the preprocessing stored in the file (what the weights expect)."""

    name: str
    file: str
    description: str

    @property
    def path(self) -> Path:
        return PACKAGE_WEIGHTS / self.file

    @property
    def available(self) -> bool:
        return self.path.is_file()

    @cached_property
    def metrics(self) -> dict:
        sidecar = self.path.with_suffix(".json")
        return json.loads(sidecar.read_text()) if sidecar.is_file() else {}

    @property
    def preprocess(self) -> Preprocess | None:
        return self.checkpoint().preprocessing

    def checkpoint(self) -> Checkpoint:
        if not self.available:
            raise CheckpointError(f"the pretrained model {self.name!r} is not shipped with this installation; "
                                  f"available: {list_pretrained()}")
        return Checkpoint.read(self.path)

    def load(self):
        return self.checkpoint().build(f"pretrained model {self.name!r}")


PRETRAINED = {w.name: w for w in (  # the first is the default
    PretrainedWeights("frnn_4state_cifar10", "frnn_4state_shared_cifar10.pt",
                      "the paper's 4-state FRNN of Fig. 3 (V1, V2, V4, IT), shared weights, TSBN, CIFAR-10"),
    PretrainedWeights("frnn_4state_adjacent_cifar10", "frnn_4state_adjacent_shared_cifar10.pt",
                      "the adjacent-only 4-state FRNN (self and adjacent transitions), CIFAR-10"),
    PretrainedWeights("resnet_2state_t13_cifar10", "resnet_2state_shared_t13_cifar10.pt",
                      "the 2-state ResNet of Fig. 5A, trained at readout time 13, CIFAR-10"),
    PretrainedWeights("frnn_3state_t10_cifar10", "frnn_3state_shared_t10_cifar10.pt",
                      "the Table 1 3-state FRNN at readout time 10, CIFAR-10"),
)}
DEFAULT_PRETRAINED = next(iter(PRETRAINED))


def list_pretrained() -> list[str]:
    """Names of the pretrained models shipped with this installation (``visrecur.load(name)``)."""
    return [name for name, weights in PRETRAINED.items() if weights.available]


def checkpoint_path(path_or_name: str | Path | None) -> Path:
    """A checkpoint path, the name of a shipped pretrained model, or None (the default)."""
    if path_or_name is not None:
        from visrecur.checks import path_arg

        path_arg(path_or_name, "a checkpoint", CheckpointError)
    name = DEFAULT_PRETRAINED if path_or_name is None else str(path_or_name)
    if name in PRETRAINED:
        weights = PRETRAINED[name]
        if not weights.available:
            raise CheckpointError(f"the pretrained model {name!r} is not shipped with this installation; "
                                  f"available: {list_pretrained()}")
        return weights.path
    return Path(path_or_name)


def read(path: str | Path, map_location="cpu") -> Checkpoint:
    return Checkpoint.read(checkpoint_path(path), map_location)


def load(path: str | Path | None = None, map_location="cpu", with_checkpoint: bool = False):
    """Rebuild the model stored in a checkpoint (architecture from the file itself) in eval mode, carrying
    its preprocessing. ``path``: a checkpoint file, the name of a shipped pretrained model
    (``list_pretrained()``, e.g. "frnn_4state_adjacent_cifar10"), or None for the default
    ("frnn_4state_cifar10")."""
    path = checkpoint_path(path)
    checkpoint = Checkpoint.read(path, map_location)
    model = checkpoint.build(f"checkpoint {str(path)!r}")
    return (model, checkpoint) if with_checkpoint else model


def export_weights(checkpoint_path_: str | Path, destination: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write a small inference-only checkpoint (no optimiser or RNG state) for shipping with the package;
    ``dtype`` (e.g. ``torch.bfloat16``) stores the floating-point weights smaller."""
    read(checkpoint_path_).inference_only(dtype).write(destination)
