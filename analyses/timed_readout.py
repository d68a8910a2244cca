"""What the timing analyses (latency, masking) share: the models they read, the test images they are
evaluated on, which readout times a model can give, and writing their tables atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from visrecur.training import data

from visrecur.artifacts.checkpoint import PRETRAINED, load
from visrecur.errors import CheckpointError, InputError
from visrecur.artifacts.io import publish, writable_ancestor

DEFAULT_MODEL = next(iter(PRETRAINED))  # visrecur.load()'s default


def load_models(names: Sequence[str]) -> dict:
    """{name: model} for shipped model names or checkpoint paths; each must say its preprocessing."""
    models = {}
    for name in names:
        model = load(name)
        if model.preprocess is None:
            raise CheckpointError(f"checkpoint {name!r} does not say its preprocessing (no 'preprocess' or "
                                  "'normalization' entry); give a checkpoint written by python -m visrecur.train")
        models[name] = model
    return models


def load_test_split(data_root, limit: int | None, seed: int = 0):
    """(uint8 images, labels, class names) of the test split: all of it, or the fixed class-balanced subset
    of ``limit`` images drawn from ``seed`` (the one visrecur.training.evaluate and the shipped measurements use)."""
    return data.decode_folder(data.find_split(data_root, "val"), limit, seed=seed)


def check_input_size(model, images: torch.Tensor, name: str) -> None:
    size = tuple(images.shape[-2:])
    if size != tuple(model.preprocess.crop_size):
        raise InputError(f"the test images are {size[0]}x{size[1]} but model {name!r} takes "
                         f"{model.preprocess.crop_size[0]}x{model.preprocess.crop_size[1]}; give a --data-root "
                         "whose images have the model's input size (e.g. CIFAR-10 for the shipped models)")


def check_counts(parser, args, names: Sequence[str]) -> None:
    """``parser.error`` for any of these options given below 1 (unset ones are left alone)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} {value} must be at least 1")


def check_readout_times(model, times: Sequence[int], name: str, recalibrating: bool = False) -> None:
    """One clear error when ``model`` cannot give a readout at every time in ``times``: too early for its
    graph, past the steps a time-variant model has weights for, or (unless the statistics are going to be
    recalibrated) needing TSBN statistics that were never estimated and that it cannot borrow."""
    spec = model.spec
    earliest = spec.graph.earliest_readout
    if min(times) < earliest:
        raise InputError(f"model {name!r} cannot be read out at t={min(times)}: its last state "
                         f"{spec.graph.last.name!r} first holds data at t={earliest - 1}, so its readout times "
                         f"start at {earliest}; give readout times >= {earliest}")
    if spec.graph.weight_sharing == "unshared" and max(times) > spec.time_steps:
        raise InputError(f"model {name!r} is time-variant (unshared weights) with weights for readout times up to "
                         f"{spec.time_steps}, not t={max(times)}; give readout times <= {spec.time_steps}")
    if recalibrating:
        return
    for t in sorted(times):
        sources = set().union(set(), *model.borrowed_statistics(t).values())
        bad = sorted(str(s) for s in sources if not isinstance(s, int))
        if bad:
            why = ("its checkpoint refuses steps without trained statistics (beyond_trained='error')"
                   if "refused" in bad else "a transition it uses never ran in training (initial statistics)")
            raise InputError(f"model {name!r} has no usable time-specific batch-norm statistics for a readout at "
                             f"t={t}: {why}; give --recalibrate N to estimate them from N training images, or "
                             f"readout times up to {model.last_trained_readout()}")


def tsbn_columns(model, times: Sequence[int], trained: int, policy: str) -> pd.DataFrame:
    """Per readout time: whether it lies past the trained readout times, which steps borrow another step's
    statistics, and the policy that says what they use."""
    return pd.DataFrame({
        "readout_time": list(times),
        "beyond_trained_steps": [t > trained for t in times],
        "steps_with_borrowed_statistics": [" ".join(str(s) for s in sorted(model.borrowed_statistics(t), key=str))
                                           or "none" for t in times],
        "tsbn_past_trained": policy})


AUGMENT_HELP = ("draw the recalibration images cropped (pad 4) and flipped, as training drew the batches the "
                "trained statistics were estimated on (default: the images as they are)")


def calibration_batches(data_root, n_images: int, preprocess, augment: bool = False,
                        seed: int = 0) -> tuple[list, str]:
    """``n_images`` class-balanced training images as normalised batches of 128 in one seeded random order,
    the same batches at every recalibration pass (``augment``: also cropped and flipped as in training,
    drawn once), and how tables name them ("2560 augmented training images"). The order matters:
    recalibration averages each batch's variance, so batches of one class each (the order the folder
    gives) would leave out the variance between classes."""
    train_x, _, _ = data.decode_folder(data.find_split(data_root, "train"), n_images)
    if not augment:  # augmented batches are shuffled by TensorBatches itself, with the crops, as in training
        train_x = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))]
    source = data.TensorBatches(train_x, torch.zeros(len(train_x)), 128, preprocess.mean, preprocess.std,
                                train=augment, seed=seed)
    return [x for x, _ in source.batches(0)], f"{len(train_x)}{' augmented' if augment else ''} training images"


def requires(parser, args, option: str, needs: str, says: str) -> None:
    """``parser.error`` when ``option`` is given without ``needs`` (attribute names), in the words
    "--OPTION says SAYS; give --NEEDS N too"."""
    if getattr(args, option) not in (None, False) and getattr(args, needs) is None:
        flag = f"--{needs.replace('_', '-')}"
        parser.error(f"--{option.replace('_', '-')} says {says}; give {flag} N too")


def check_augment(parser, args) -> None:
    """--augment-calibration only says how --recalibrate draws its images: refuse it alone."""
    requires(parser, args, "augment_calibration", "recalibrate", "how recalibration draws its images")


def recalibrate(model, data_root, n_images: int, readout_time: int, augment: bool = False) -> str:
    """Estimate every missing TSBN statistic up to ``readout_time`` from ``n_images`` training images;
    returns the policy's description for the tables."""
    

    batches, described = calibration_batches(data_root, n_images, model.preprocess, augment)
    model.recalibrate(batches, readout_time, progress=True)
    return f"recalibrated on {described}"


def check_output_folder(folder) -> Path:
    folder = Path(folder)
    existing, writable = writable_ancestor(folder)
    if not writable or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{str(folder)!r} is not a writable folder ({str(existing)!r} refuses new files); "
                         "give --out-dir a folder you can write to")
    return folder


def write_tables(tables: Mapping[str, pd.DataFrame], folder) -> list[Path]:
    """Write every table as ``folder/NAME.csv``: all to temporary files first, then each renamed into place,
    so an interrupted run leaves the previous results, never half a table."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pending = []
    try:
        for name, table in tables.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".csv.tmp", dir=folder)
            pending.append((tmp, folder / f"{name}.csv"))
            with os.fdopen(fd, "w", newline="") as f:
                table.to_csv(f, index=False)
    except BaseException:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, dest in pending:
        publish(tmp, dest)
    return [dest for _, dest in pending]
