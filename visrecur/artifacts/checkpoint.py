"""Checkpoints: atomic writes, safe loads (weights_only=True), the architecture spec and the preprocessing
inside the file; loading a model (and its preprocessing) by path or by name."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from visrecur.errors import CheckpointError, InputError
from visrecur.artifacts.io import publish, sha256
from visrecur.architecture.modelspec import ModelSpec
from visrecur.recording.preprocess import CIFAR10_MEAN, CIFAR10_STD, Preprocess

FORMAT = "visrecur-checkpoint-1"
PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
# pretrained models shipped with visrecur, by name; the first is the default
PRETRAINED = {"frnn_4state_cifar10": "frnn_4state_shared_cifar10.pt",
              "frnn_4state_adjacent_cifar10": "frnn_4state_adjacent_shared_cifar10.pt",
              "resnet_2state_t13_cifar10": "resnet_2state_shared_t13_cifar10.pt",
              "frnn_3state_t10_cifar10": "frnn_3state_shared_t10_cifar10.pt"}
DEFAULT_CHECKPOINT = PACKAGE_WEIGHTS / PRETRAINED["frnn_4state_cifar10"]


def list_pretrained() -> list[str]:
    """Names of the pretrained models shipped with this installation (``visrecur.load(name)``)."""
    return [name for name, file in PRETRAINED.items() if (PACKAGE_WEIGHTS / file).is_file()]


def resolve_checkpoint(path_or_name: str | Path | None) -> Path:
    """A checkpoint path, the name of a shipped pretrained model, or None (the default)."""
    if path_or_name is None:
        return DEFAULT_CHECKPOINT
    if str(path_or_name) in PRETRAINED:
        path = PACKAGE_WEIGHTS / PRETRAINED[str(path_or_name)]
        if not path.is_file():
            raise CheckpointError(f"the pretrained model {str(path_or_name)!r} is not shipped with this "
                                  f"installation; available: {list_pretrained()}")
        return path
    return Path(path_or_name)


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | Path, map_location="cpu") -> dict:
    """Load a visrecur checkpoint safely (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; give the path of a .pt file written "
                              "by python -m visrecur.train (runs/<name>/checkpoint.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes), e.g. from a copy or download that "
                              "did not finish; copy it again or give another checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupted, truncated or foreign pickle
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}); it is truncated, "
                              "corrupted or not written by visrecur: copy it again or give another "
                              "checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a visrecur checkpoint (no {FORMAT!r} format tag); "
                              "load plain state dicts with model.load_state_dict(torch.load(path, "
                              "weights_only=True))")
    return payload


def load_state(model: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Load weights, with one clear error when they were made for another architecture.

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
        raise CheckpointError(f"the {source} does not fit model {getattr(model, 'spec', None) and model.spec.name!r}: "
                              + "; ".join(details) + ". Load it with visrecur.load(path), which rebuilds the "
                              "architecture stored in the file")
    model.load_state_dict(state)


def _fit_tsbn_steps(model: torch.nn.Module, state: dict) -> None:
    from visrecur.nn.blocks import TimeSpecificBatchNorm

    for name, module in model.named_modules():
        if isinstance(module, TimeSpecificBatchNorm) and module.time_specific:
            prefix = f"{name}.stats."
            steps = [int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix)]
            if steps and max(steps) > module.num_steps:
                module.extend(max(steps), init="fresh")


def load(path: str | Path | None = None, map_location="cpu", with_payload: bool = False):
    """Rebuild the model stored in a checkpoint (architecture from the file itself) in eval mode.
    ``path``: a checkpoint file, the name of a shipped pretrained model (``list_pretrained()``, e.g.
    "frnn_4state_adjacent_cifar10"), or None for the default ("frnn_4state_cifar10")."""
    from visrecur.nn.model import FRNN

    path = resolve_checkpoint(path)
    payload = read(path, map_location)
    spec = ModelSpec.from_dict(payload["spec"])
    model = FRNN(spec)
    load_state(model, payload["model"], f"checkpoint {str(path)!r}")
    model.preprocess = Preprocess.from_checkpoint(payload)  # the weights carry their preprocessing
    model.eval()
    return (model, payload) if with_payload else model


def export_weights(checkpoint_path: str | Path, destination: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write a small inference-only checkpoint (no optimiser state) for shipping with the package; it
    carries the ``preprocess`` entry (built from ``normalization`` for older checkpoints). ``dtype``
    (e.g. ``torch.bfloat16``) stores the floating-point weights smaller; loading casts them back to the
    model's dtype."""
    payload = read(checkpoint_path)
    slim = {k: payload[k] for k in ("format", "visrecur_version", "torch_version", "epoch", "model", "spec",
                                    "metrics", "classes", "normalization", "config") if k in payload}
    if dtype is not None:
        slim["model"] = {k: v.to(dtype) if v.is_floating_point() else v for k, v in slim["model"].items()}
        slim["stored_dtype"] = str(dtype).removeprefix("torch.")
    preprocess = Preprocess.from_checkpoint(payload)
    if preprocess is not None:
        slim["preprocess"] = preprocess.to_dict()
    atomic_save(slim, destination)


# --- a model with what a recording must say about it ---------------------------------------------
UNTRAINED_PREPROCESS = "assumed for an untrained model: the cifar10 recipe's statistics"


@dataclass
class ModelSource:
    """A model, its preprocessing and its provenance. ``preprocess`` defaults to the one the model
    carries (``visrecur.load`` attaches it); a trained model without one is refused, an untrained one
    gets the cifar10 recipe's, and the recording says it was assumed."""

    model: torch.nn.Module
    name: str
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    trained: bool = False
    preprocess: Preprocess | None = None
    classes: tuple = ()
    preprocess_note: str = ""

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
        carried = getattr(model, "preprocess", None)
        preprocess = preprocess or carried
        if preprocess is None:
            raise InputError("this model's preprocessing is unknown: pass preprocess=visrecur.Preprocess("
                             "input_size, mean, std) (what it was trained with), or load it with "
                             "visrecur.load(path), whose model carries it")
        from visrecur.nn.blocks import is_trained

        spec = getattr(model, "spec", None)
        # trained: it came from a checkpoint, or data have shaped its TSBN statistics
        return cls(model, getattr(spec, "name", "model"), preprocess=preprocess,
                   trained=carried is not None or is_trained(model))


def load_model(name_or_path: str | None = None, seed: int = 0, preprocess: Preprocess | None = None) -> ModelSource:
    """A checkpoint path, a zoo name (untrained), or None: the pretrained default shipped with visrecur
    (an untrained default model, flagged loudly, when no checkpoint is shipped)."""
    from visrecur.architecture import zoo

    if name_or_path is None:
        if DEFAULT_CHECKPOINT.is_file():
            return load_model(str(DEFAULT_CHECKPOINT), preprocess=preprocess)
        name_or_path = "frnn_4state_shared"
    if name_or_path in PRETRAINED:
        name_or_path = str(resolve_checkpoint(name_or_path))
    if name_or_path.endswith(".pt") or Path(name_or_path).is_file():
        model, payload = load(name_or_path, with_payload=True)
        return ModelSource(model, model.spec.name, str(name_or_path), sha256(name_or_path), True,
                           preprocess, tuple(payload.get("classes", ())))
    torch.manual_seed(seed)  # the same untrained weights on every run and every rank
    model = zoo.build(name_or_path).eval()
    return ModelSource(model, name_or_path, preprocess=preprocess)
