"""Training configuration, in one place: the ``TrainConfig`` dataclass (defaults = the paper's CIFAR-10
recipe, help strings in field metadata), ``PRESETS`` (only what another recipe changes), the learning-rate
schedule ``lr_at``, and the command line of ``python -m visrecur.train``, derived from the fields."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np

from visrecur.cli import ArgumentParser
from visrecur.checks import seed_arg
from visrecur.errors import VisrecurError
from visrecur.recording.preprocess import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD


class TrainingError(VisrecurError):
    """Training cannot go on (non-finite loss, unwritable output, incompatible resume)."""


def option(default=None, help="", factory=None, **cli):
    """A config field with its command-line help (and argparse settings: nargs, type, choices, cli=False)."""
    metadata = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every training option; the defaults are the paper's CIFAR-10 recipe (Section 5)."""

    model: str = option("frnn_4state_shared", "zoo model (visrecur.list_models())")
    preset: str = option("cifar10", "training recipe (cifar10, imagenet); its values are the defaults of the "
                         "options below")
    data_root: str = option("", "ImageFolder root with train/ and test/ (or val/), or a torchvision CIFAR-10 root "
                            "(default: cifar10-jpeg under $VISRECUR_DATA, else ../shared/data)")
    dataset: str = option("folder", "folder: ImageFolder train/ + test/ (or val/); cifar10: torchvision pickles",
                          choices=["folder", "cifar10"])
    download: bool = option(False, "download CIFAR-10 (needs a network)")
    out: str = option("", "output folder (default runs/<model>)")
    epochs: int = option(60, "number of epochs")
    batch_size: int = option(64, "images per batch (over all processes)")
    lr: float = option(0.01, "learning rate of the first epoch")
    lr_schedule: str = option("steps", "steps: lr / 10 after each of --lr-steps; logspace: lr .. lr-final",
                              choices=["steps", "logspace"])
    lr_steps: tuple = option((40, 50), "epochs after which the lr is divided by 10", nargs="*", type=int)
    lr_final: float = option(1e-4, "last epoch's lr of the logspace schedule")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(0.0, "L2 weight decay (the paper states none)")
    augment: str = option("cifar", "cifar: pad 4 + random crop + flip; imagenet: random resized crop + flip",
                          choices=["cifar", "imagenet"])
    mean: tuple = option(CIFAR10_MEAN, "normalisation mean per channel", nargs=3, type=float)
    std: tuple = option(CIFAR10_STD, "normalisation std per channel", nargs=3, type=float)
    loss_readout_times: tuple = option((), "sum the loss over these readout times (default: the model's)",
                                       nargs="*", type=int)
    eval_readout_times: tuple = option((), "validation readout times (default: every one up to the trained "
                                       "steps)", nargs="*", type=int)
    model_overrides: dict = option(help="zoo builder arguments", factory=dict, cli=False)
    limit_train: int | None = option(None, "train on a class-balanced subset of this many images (equal per "
                                     "class, the remainder to the first classes, drawn from --seed)", type=int)
    limit_val: int | None = option(None, "validate on a class-balanced subset of this many images", type=int)
    device: str = option("auto", "auto (CUDA if visible), cpu, cuda, cuda:1, ...")
    bf16: bool | None = option(None, "bf16 autocast (default: on for CUDA, off on CPU)")
    channels_last: bool = option(False, "channels-last memory format")
    compile: bool = option(False, "torch.compile the whole model (forward and backward of every step)")
    compile_regions: bool = option(False, "torch.compile each transition block once, reused at every time step "
                                   "(visrecur.nn.blocks.compile_regions): a much shorter compile than --compile")
    data_on_device: bool | None = option(None, "keep the decoded training and validation images on the training "
                                         "device and crop, flip and normalise each batch there (the same values "
                                         "as on the CPU); default: on for CUDA with in-memory data (the cifar "
                                         "augmentation), off otherwise")
    cuda_graphs: bool = option(False, "capture one training step in a CUDA graph and replay it for every batch "
                               "of the first batch's size (one process on CUDA; the first 3 steps run eagerly "
                               "to warm up; a new learning rate is captured anew; same arithmetic as eager)")
    deterministic: bool = option(False, "deterministic algorithms (slower)")
    seed: int = option(0, "seed of weights, data order and augmentation")
    workers: int = option(4, "DataLoader workers (ImageNet-style data)")
    threads: int | None = option(None, "CPU threads for torch (default: torch's)", type=int)
    resume: bool = option(False, "continue from OUT/checkpoint.pt (same options; a larger --epochs extends "
                          "the run)")
    overwrite: bool = option(False, "start again even if OUT has a checkpoint")
    progress: bool = option(True, "progress bars")
    stop_after_batches: int | None = option(None, "testing aid: exit abruptly after this many batches, as if "
                                            "killed", type=int, hidden=True)

    def __post_init__(self):
        """Checked here, so that Python callers get the command line's one-line errors."""
        if self.preset not in PRESETS:
            raise TrainingError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if not self.data_root:
            from visrecur.artifacts.io import data_root

            self.data_root = str(data_root() / "cifar10-jpeg")
        for f in dataclasses.fields(self):
            if "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]:
                raise TrainingError(f"{_flag(f.name)} {getattr(self, f.name)!r} is not one of "
                                    f"{', '.join(f.metadata['choices'])}")
        for name, least in COUNTS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TrainingError(f"{_flag(name)} {value!r} must be a whole number of at least {least}")
            if value < least:
                raise TrainingError(f"{_flag(name)} {value} must be at least {least}")
        for name in ("lr", "lr_final"):
            if not _number(getattr(self, name)) or not getattr(self, name) > 0:
                raise TrainingError(f"{_flag(name)} {getattr(self, name)!r} must be greater than 0")
        for name in ("momentum", "weight_decay"):
            if not _number(getattr(self, name)) or not getattr(self, name) >= 0:
                raise TrainingError(f"{_flag(name)} {getattr(self, name)!r} must be at least 0")
        if not self.momentum < 1:
            raise TrainingError(f"--momentum {self.momentum!r} must be below 1 (SGD with momentum >= 1 diverges); "
                                "e.g. 0.9")
        seed_arg(self.seed, "--seed", TrainingError)
        for name in ("loss_readout_times", "eval_readout_times", "lr_steps"):
            values = tuple(getattr(self, name))
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
                raise TrainingError(f"{_flag(name)} {' '.join(map(str, values))}: give whole numbers")
            setattr(self, name, values)
        for name in ("loss_readout_times", "eval_readout_times"):
            if getattr(self, name) and min(getattr(self, name)) < 1:
                raise TrainingError(f"{_flag(name)} {' '.join(map(str, getattr(self, name)))}: readout times start at 1")
        for name in ("mean", "std"):
            values = tuple(getattr(self, name))
            if len(values) != 3 or not all(_number(v) for v in values) or (name == "std" and min(values) <= 0):
                raise TrainingError(f"{_flag(name)} {values}: give 3 numbers, one per colour channel"
                                    + (", each greater than 0" if name == "std" else ""))
            setattr(self, name, values)
        if not isinstance(self.model_overrides, dict):
            raise TrainingError(f"model_overrides {self.model_overrides!r} must be a dict of zoo builder arguments")


# counts: option -> its least value
COUNTS = {"epochs": 1, "batch_size": 1, "limit_train": 1, "limit_val": 1, "workers": 0, "threads": 1,
          "stop_after_batches": 0}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


# The paper's recipes (Section 5, Fig. 6): what each changes from TrainConfig's defaults (cifar10).
PRESETS = {
    "cifar10": {},
    "imagenet": dict(epochs=12, batch_size=256, lr=0.1, lr_schedule="logspace", lr_final=1e-4,
                     augment="imagenet", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     model_overrides={"bn_affine": True}),
}
# must equal the checkpoint's on --resume (epochs may grow)
RESUME_MUST_MATCH = ("model", "model_overrides", "loss_readout_times", "lr", "lr_schedule", "lr_steps", "lr_final",
                     "momentum", "weight_decay", "batch_size", "limit_train", "limit_val", "augment", "mean",
                     "std", "dataset", "seed")


def build_config(preset: str = "cifar10", **overrides) -> TrainConfig:
    if preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("model_overrides") and "model_overrides" in PRESETS[preset]:
        values["model_overrides"] = {**PRESETS[preset]["model_overrides"], **overrides["model_overrides"]}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"unknown training option(s) {unknown}")
    return TrainConfig(preset=preset, **values)


def paper_lr_steps(epochs: int) -> tuple[int, ...]:
    """The paper's CIFAR-10 schedule (40 epochs at lr, 10 at lr / 10, 10 at lr / 100: 4:1:1) in a run of
    ``epochs``: the last two phases equal, a sixth of the run each (at least one epoch), the first phase
    the rest; the ``lr_steps`` of that run (none below 3 epochs)."""
    if epochs < 3:
        return ()
    tail = max(1, round(epochs / 6))
    return (epochs - 2 * tail, epochs - tail)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``."""
    if cfg.lr_schedule == "logspace":  # Matlab's logspace(log10(lr), log10(lr_final), epochs)
        if cfg.epochs == 1:
            return cfg.lr
        return float(np.logspace(math.log10(cfg.lr), math.log10(cfg.lr_final), cfg.epochs)[epoch])
    return cfg.lr * 0.1 ** sum(epoch >= step for step in cfg.lr_steps)


# --- the command line, derived from TrainConfig ----------------------------------------------------
def _preset_defaults(name: str) -> str:
    values = [f"{preset} preset: {_shown(PRESETS[preset][name])}" for preset in sorted(PRESETS)
              if name in PRESETS[preset]]
    default = next(f for f in dataclasses.fields(TrainConfig) if f.name == name).default
    shown = "" if default in (None, "", ()) or isinstance(default, bool) else f"default: {_shown(default)}"
    return "; ".join(([shown] if shown else []) + values)


def _shown(value) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


def build_parser() -> ArgumentParser:
    """The command line, derived from TrainConfig's fields (plus the model shortcuts)."""
    p = ArgumentParser(
        prog="python -m visrecur.train",
        description="Train a visrecur model with one of the paper's recipes (presets). Every preset "
                    "option can be overridden. Launch with torchrun for several GPUs.",
        epilog="examples:\n"
               "  python -m visrecur.train --model frnn_4state_shared --limit-train 2000 --limit-val 500 "
               "--epochs 2   # minutes on a CPU\n"
               "  python -m visrecur.train --model frnn_3state_shared --data-root ../shared/data/cifar10-jpeg")
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        if meta.pop("cli", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = meta.pop("help")
        if meta.pop("hidden", False):
            help_text = argparse.SUPPRESS
        elif _preset_defaults(f.name):
            help_text = f"{help_text} ({_preset_defaults(f.name)})"
        if f.type == "bool | None" or f.default is True:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.default is False:
            p.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            meta.setdefault("type", type(f.default) if f.default not in (None, ()) else str)
            choices = meta.pop("choices", None)  # checked by TrainConfig, in the same words as from Python
            if choices:
                meta["metavar"] = "{" + ",".join(choices) + "}"
            p.add_argument(flag, default=None, help=help_text, **meta)
    p.add_argument("--readout-time", type=int, help="the model's readout time (default: the zoo model's)")
    p.add_argument("--time-steps", type=int, help="steps to build TSBN/weights for (>= readout time)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other zoo builder argument, VALUE as JSON, e.g. --model-arg 'channels=[8,16,32,64]'")
    return p


def check_inert_options(p, given: dict) -> None:
    """``parser.error`` for an option given where it has no effect: the schedule's own options with the other
    schedule, --download without --dataset cifar10, a negative learning-rate step. (Steps past --epochs are
    kept: a --resume with more epochs reaches them.)"""
    preset = PRESETS.get(given.get("preset") or "cifar10", {})  # an unknown preset is refused by build_config
    schedule = given.get("lr_schedule") or preset.get("lr_schedule", "steps")
    if given.get("lr_final") is not None and schedule != "logspace":
        p.error(f"--lr-final applies to --lr-schedule logspace; with {schedule} the lr is divided by 10 at "
                "--lr-steps: drop --lr-final or give --lr-schedule logspace")
    if given.get("lr_steps") and schedule != "steps":
        p.error(f"--lr-steps applies to --lr-schedule steps; {schedule} goes from --lr to --lr-final: drop "
                "--lr-steps or give --lr-schedule steps")
    if given.get("download") and (given.get("dataset") or "folder") != "cifar10":
        p.error("--download fetches torchvision's CIFAR-10 pickles and applies to --dataset cifar10 only; an image "
                "folder is not downloaded")
    negative = [s for s in given.get("lr_steps") or () if s < 0]
    if negative:
        p.error(f"--lr-steps {negative[0]} is not an epoch; give epochs after which the lr is divided by 10, "
                "e.g. --lr-steps 40 50")


def parse_args(argv=None) -> TrainConfig:
    p = build_parser()
    a = vars(p.parse_args(argv))
    model_overrides = {k: v for k, v in (("readout_time", a.pop("readout_time")),
                                         ("time_steps", a.pop("time_steps"))) if v is not None}
    flagged = set(model_overrides)  # --readout-time / --time-steps; a later --model-arg KEY overrides an earlier one
    for item in a.pop("model_arg"):
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--model-arg {item!r} must be KEY=VALUE")
        if key in flagged:
            p.error(f"--model-arg {item!r} repeats --{key.replace('_', '-')}; give it once")
        try:
            model_overrides[key] = json.loads(value)
        except json.JSONDecodeError as err:
            if value.strip()[:1] in '[{"' or value.strip()[:1].isdigit() or value.strip()[:1] == "-":
                p.error(f"--model-arg {item!r}: VALUE is not valid JSON ({err.msg}); e.g. 'channels=[8,16]'")
            model_overrides[key] = value
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in a.items()}
    check_inert_options(p, values)
    return build_config(values.pop("preset") or "cifar10", model_overrides=model_overrides or None, **values)
