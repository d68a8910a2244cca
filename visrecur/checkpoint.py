"""Checkpoints: atomic writes, safe loads (weights_only=True), the architecture spec inside the file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .files import publish
from .graph import ModelSpec

FORMAT = "visrecur-checkpoint-1"
PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_CHECKPOINT = PACKAGE_WEIGHTS / "frnn_4state_shared_cifar10.pt"


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
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupted, truncated or foreign pickle
        raise CheckpointError(f"{str(path)!r} cannot be read as a checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}); was it written by visrecur?") from None
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
    from .blocks import TimeSpecificBatchNorm

    for name, module in model.named_modules():
        if isinstance(module, TimeSpecificBatchNorm) and module.time_specific:
            prefix = f"{name}.stats."
            steps = [int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix)]
            if steps and max(steps) > module.num_steps:
                module.extend(max(steps), init="fresh")


def load(path: str | Path | None = None, map_location="cpu", with_payload: bool = False):
    """Rebuild the model stored in a checkpoint (architecture from the file itself) in eval mode.
    ``path=None`` loads the pretrained default model shipped with visrecur."""
    from .model import FRNN

    payload = read(path or DEFAULT_CHECKPOINT, map_location)
    spec = ModelSpec.from_dict(payload["spec"])
    model = FRNN(spec)
    load_state(model, payload["model"], f"checkpoint {str(path or DEFAULT_CHECKPOINT)!r}")
    model.eval()
    return (model, payload) if with_payload else model
