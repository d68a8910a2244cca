"""What the analyses share: their common options (model, data root, limit, recalibration, time mapping,
output), the models they read, the test and calibration images, which readout times a model can give, the
TSBN policy columns, and writing their tables (through ``visrecur.artifacts.results``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from visrecur.artifacts.checkpoint import DEFAULT_PRETRAINED, list_pretrained, load
from visrecur.artifacts.io import data_root, writable_ancestor
from visrecur.artifacts.results import CALIBRATION, NO_CALIBRATION, TSBN_POLICY, write_tables
from visrecur.cli import ArgumentParser, add_time_mapping, given_time_mapping
from visrecur.errors import CheckpointError, InputError
from visrecur.nn.statistics import POLICIES
from visrecur.timing import TimeMapping
from visrecur.training import data

AUGMENT_HELP = ("draw the recalibration images cropped (pad 4) and flipped, as training drew the batches the "
                "trained statistics were estimated on (default: the images as they are)")


# --- the common options -------------------------------------------------------------------------------
def parser(module_doc: str, name: str) -> ArgumentParser:
    """The parser of ``python -m analyses.NAME``: its docstring's first line as description, the rest as
    epilog."""
    lines = module_doc.strip().splitlines()
    return ArgumentParser(prog=f"python -m analyses.{name}", description=lines[0],
                          epilog="\n".join(lines[1:]).strip() or None)


def add_model(p: argparse.ArgumentParser, *, several: bool = False, default=None, zoo: bool = False) -> None:
    what = "shipped model names, checkpoint paths" + (" or zoo names" if zoo else "")
    default = default if default is not None else ([DEFAULT_PRETRAINED] if several else DEFAULT_PRETRAINED)
    shown = " ".join(default) if isinstance(default, (list, tuple)) else default
    p.add_argument("--model", "--models", "--checkpoint", dest="model", nargs="+" if several else None,
                   default=default, metavar="NAME_OR_PATH",
                   help=f"{what} (shipped: {', '.join(list_pretrained())}; default: {shown})")


def add_data(p: argparse.ArgumentParser, limit: bool = True) -> None:
    p.add_argument("--data-root", default=str(data_root() / "cifar10-jpeg"),
                   help="image folder with train/ and test/ (or val/) class folders; default $VISRECUR_DATA or "
                        "../shared/data, then cifar10-jpeg")
    if limit:
        p.add_argument("--limit", type=int, help="a fixed class-balanced subset of the test split (seed 0) of this "
                                                 "many images (default: all of it)")


def add_recalibration(p: argparse.ArgumentParser, *, help: str, steps: bool = False) -> None:
    p.add_argument("--recalibrate", type=int, metavar="N", help=help)
    if steps:
        p.add_argument("--recalibrate-steps", nargs="+", choices=[k for k in POLICIES if k != "trained"],
                       metavar="POLICY", help="with --recalibrate, one evaluation for each: " + "; ".join(
                           f"{k}: {v.description}" for k, v in POLICIES.items() if k != "trained")
                       + " (default: past)")
    p.add_argument("--augment-calibration", action="store_true", help=AUGMENT_HELP)


def add_time_mapping_options(p: argparse.ArgumentParser, stated_by: str = "model") -> None:
    add_time_mapping(p, stated_by)


def add_output(p: argparse.ArgumentParser, default: str = "results", file: bool = False) -> None:
    if file:
        p.add_argument("--out", default=default, type=csv_file, help="the result table (.csv)")
    else:
        p.add_argument("--out-dir", default=default, type=folder_arg, help="folder of the result tables")


def csv_file(text: str) -> str:
    """--out: a .csv path whose folder can be written (checked before any work: argparse's one line)."""
    path = Path(text)
    if path.suffix.lower() != ".csv" or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a .csv file name; result tables are CSV: give a name "
                                         "ending in .csv, e.g. results/NAME.csv")
    existing, writable = writable_ancestor(path.parent)
    if not writable:
        raise argparse.ArgumentTypeError(f"{text!r}: {str(existing)!r} refuses new files; give a folder you can "
                                         "write to")
    return text


def folder_arg(text: str) -> str:
    """--out-dir: a folder (existing or to be made) that can be written."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty folder name; give e.g. results")
    try:
        output_folder(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def check_counts(p: argparse.ArgumentParser, args, names: Sequence[str]) -> None:
    """``parser.error`` for any of these options given below 1 (unset ones are left alone)."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} {value} must be at least 1")


def requires(p: argparse.ArgumentParser, args, option: str, needs: str, says: str) -> None:
    """``parser.error`` when ``option`` is given without ``needs``: "--OPTION says SAYS; give --NEEDS N too"."""
    if getattr(args, option) not in (None, False) and getattr(args, needs) is None:
        flag = f"--{needs.replace('_', '-')}"
        p.error(f"--{option.replace('_', '-')} says {says}; give {flag} N too")


def check_recalibration(p: argparse.ArgumentParser, args) -> None:
    check_counts(p, args, ("recalibrate",))
    requires(p, args, "augment_calibration", "recalibrate", "how recalibration draws its images")
    if hasattr(args, "recalibrate_steps"):
        requires(p, args, "recalibrate_steps", "recalibrate", "which statistics --recalibrate re-estimates")


def check_readout_time_options(p: argparse.ArgumentParser, times: Sequence[int] | None) -> None:
    if times and min(times) < 1:
        p.error(f"--readout-times {' '.join(map(str, times))}: readout times start at 1")


def time_mapping(args, p: argparse.ArgumentParser | None = None, stated: TimeMapping | None = None,
                 what: str = "model") -> TimeMapping:
    """The mapping an analysis uses: a recording's or model's own (``stated``), the options' if given and
    not in conflict with it (``TimeMapping.resolve``), else the default."""
    return TimeMapping.resolve(given_time_mapping(args, p), stated, what)


def command_line(name: str, argv) -> str:
    """How the analysis was run, for its tables' metadata."""
    import shlex
    import sys

    return " ".join(["python", "-m", f"analyses.{name}", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


def output_folder(folder) -> Path:
    folder = Path(folder)
    existing, writable = writable_ancestor(folder)
    if not writable or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{str(folder)!r} is not a writable folder ({str(existing)!r} refuses new files); "
                         "give --out-dir a folder you can write to")
    return folder


def write(tables: Mapping[str, pd.DataFrame], folder, command: str, description: Mapping[str, str] | str = "",
          provenance: Mapping | None = None) -> list[Path]:
    """``folder/NAME.csv`` for every table, with its metadata (``visrecur.artifacts.results``)."""
    folder = Path(folder)
    paths = {folder / f"{name}.csv": table for name, table in tables.items()}
    return write_tables(paths, description=description, command=command, provenance=provenance)


# --- models and images --------------------------------------------------------------------------------
# why an analysis cannot apply to a timed model (visrecur.timed: CORnet, BL-net, ResNet-18 with time =
# depth, an adapted module): the one place analyses refuse them, each in one line
READOUT_SWEEP = ("it varies an FRNN's readout time, and this model reads out at fixed steps (record it, or use "
                 "analyses.latency for its readouts)")
TIMED_REFUSALS = {
    "tsbn_decay": "it has no time-specific batch norm (TSBN), whose statistics this analysis fits; only FRNNs "
                  "have them",
    "readout_time": READOUT_SWEEP,
    "readout_generalization": READOUT_SWEEP,
    "transition_matrix": "it draws an FRNN's transition graph (which transition runs at which step), and this "
                         "model has none (its areas' steps: python -m visrecur.record)",
    "parameters": "it counts a zoo FRNN's effective parameters and depth per readout time, and this model's do "
                  "not depend on one",
}  # analyses.masking asks the model itself (takes_frames): BL-net takes a frame per step, the others refused


def is_timed_name(name) -> bool:
    """Whether ``name`` names a timed reference architecture (``visrecur.timed.reference``)."""
    from visrecur.timed import reference

    return str(name) in reference.REFERENCE


def refuse_timed(name: str, analysis: str, why: str | None = None) -> None:
    """One line when ``name`` is a timed reference model that ``analysis`` cannot take: ``why`` (default
    ``TIMED_REFUSALS[analysis]``)."""
    if is_timed_name(name):
        why = why or TIMED_REFUSALS.get(analysis, "it is a timed model (visrecur.timed); give FRNNs (shipped "
                                                  "names or checkpoints)")
        raise InputError(f"analyses.{analysis} does not apply to {name}: {why}")


def check_applies(names: Sequence[str], analysis: str, why: str | None = None) -> None:
    """``refuse_timed`` for each of ``names``, before any work."""
    for name in names:
        refuse_timed(name, analysis, why)


def load_models(names: Sequence[str], analysis: str = "this analysis", *, timed: bool = False,
                why: str | None = None) -> dict:
    """{name: model} for shipped model names or checkpoint paths; each must say its preprocessing. With
    ``timed``, reference timed models by name too (``visrecur.timed``, untrained); without, they are
    refused in one line (``refuse_timed``: ``why``, default the analysis's entry in ``TIMED_REFUSALS``)."""
    if not timed:
        check_applies(names, analysis, why)
    models = {}
    for name in names:
        if timed and is_timed_name(name):
            from visrecur.artifacts.models import load_model

            models[name] = load_model(name).model
            continue
        model = load(name)
        if model.preprocess is None:
            raise CheckpointError(f"checkpoint {name!r} does not say its preprocessing (no 'preprocess' or "
                                  "'normalization' entry); give a checkpoint written by python -m visrecur.train")
        models[name] = model
    return models


def load_test_split(data_root, limit: int | None, seed: int = 0):
    """(uint8 images, labels, class names) of the test split: all of it, or the fixed class-balanced subset
    of ``limit`` images drawn from ``seed`` (the one python -m visrecur.evaluate and the shipped
    measurements use)."""
    return data.decode_folder(data.find_split(data_root, "val"), limit, seed=seed)


def test_batches(model, images, labels, batch_size: int = 500):
    """Normalised test batches for ``model`` (CIFAR-size images: no resize or crop)."""
    check_input_size(model, images)
    return data.TensorBatches(images, labels, batch_size, model.preprocess.mean, model.preprocess.std, train=False)


def check_input_size(model, images: torch.Tensor, name: str | None = None) -> None:
    size = tuple(images.shape[-2:])
    if size != tuple(model.preprocess.crop_size):
        name = name or getattr(getattr(model, "spec", None), "name", None) or model.name
        raise InputError(f"the test images are {size[0]}x{size[1]} but model {name!r} takes "
                         f"{model.preprocess.crop_size[0]}x{model.preprocess.crop_size[1]}; give a --data-root "
                         "whose images have the model's input size (e.g. CIFAR-10 for the shipped models)")


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


# --- TSBN statistics: which were used, and re-estimating them -------------------------------------------
def tsbn_columns(model, times: Sequence[int], trained: int, policy: str = "trained",
                 calibration: str = NO_CALIBRATION) -> pd.DataFrame:
    """Per readout time: whether it lies past the trained readout times, which steps borrow another step's
    statistics, and the policy (the results vocabulary: ``tsbn_policy``, ``calibration``)."""
    return pd.DataFrame({
        "readout_time": list(times),
        "beyond_trained_steps": [t > trained for t in times],
        "steps_with_borrowed_statistics": [" ".join(str(s) for s in sorted(model.borrowed_statistics(t), key=str))
                                           or "none" for t in times],
        TSBN_POLICY: policy, CALIBRATION: calibration})


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


def recalibrate(model, data_root, n_images: int, readout_time: int, augment: bool = False) -> str:
    """Estimate every missing TSBN statistic up to ``readout_time`` from ``n_images`` training images (the
    "past" policy); returns what estimated them, for the ``calibration`` column."""
    batches, described = calibration_batches(data_root, n_images, model.preprocess, augment)
    model.recalibrate(batches, readout_time, progress=True)
    return described
