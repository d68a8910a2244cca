"""Train at one readout time, test at others (the paper's Fig. 5A).

    python -m analyses.readout_generalization [--model NAME_OR_CHECKPOINT] [--readout-times 7 8 ... 23]
        [--limit N] [--recalibrate N [--recalibrate-steps past every after-first-state] [--augment-calibration]]
        [--out results/readout_generalization.csv]

The paper trains a 2-state ResNet with shared weights at readout time t = 13 (first state unrolled
N = t - 3 = 10 times) and tests it at t = 7..23. A multi-state ResNet is re-unrolled for each test time
(``visrecur.nn.retime``: same weights, TSBN statistics matched run by run); a fully recurrent model reads
out at every t from one unrolling. Runs past those seen in training use the last trained run's
statistics. With --recalibrate N the same readout times are evaluated again with statistics estimated
from N training images, for each of --recalibrate-steps: ``past`` (the default) those past the trained
runs; ``every`` every step's, anew for each tested readout time on the model as it runs there (the
paper computes TSBN statistics "for every t (using training set)"), so that no step normalises with
statistics fitted to another unrolling; ``after-first-state`` (multi-state ResNets) those of the steps
after the first state's last run (the transition out of it, the later states, the post-net), the first
state keeping its trained runs' statistics: is it the later stages' fit to the first state after
exactly N runs that fails at other readout times? --augment-calibration crops and flips those images
as training did. One tidy CSV holds every policy (column ``tsbn_past_trained``), times in ms
(--ms-per-step).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from analyses.timed_readout import AUGMENT_HELP, calibration_batches, check_augment, check_counts, requires, write_tables
from visrecur.training import data

from visrecur.artifacts.checkpoint import load
from visrecur.errors import ArgumentParser, CheckpointError, InputError, report_errors
from visrecur.training.evaluate import evaluate
from visrecur.nn.retime import first_state_unrolls, retime
from visrecur.artifacts.io import data_root
from visrecur.timing import TimeMapping

DEFAULT_MODEL = "resnet_2state_t13_cifar10"
PAPER_READOUT_TIMES = list(range(7, 24))


def _borrowed(model, t: int) -> str:
    borrowed = model.borrowed_statistics(t, all_readouts=False)
    return " ".join(f"{step}<-{'/'.join(map(str, sorted(src, key=str)))}"
                    for step, src in sorted(borrowed.items())) or "none"


STEP_POLICIES = {"past": "recalibrated on {}", "every": "every step recalibrated on {}",
                 "after-first-state": "steps after the first state's runs recalibrated on {}"}


def generalization_errors(model, batches, readout_times, *, calibration: list | None = None,
                          calibrated_on: str | None = None, recalibrate: str = "past",
                          mapping: TimeMapping = TimeMapping(), progress: bool = False) -> pd.DataFrame:
    """Top-1 error of ``model`` (trained at ``model.spec.readout_time``) at every readout time.

    ``calibration``: a list of image batches (training images, ``timed_readout.calibration_batches``); if
    given, statistics are estimated from them per readout time, on a fresh copy, and the rows say so,
    naming the images ``calibrated_on`` (default: "N training images"); which statistics: ``recalibrate``,
    one of ``STEP_POLICIES`` (module docstring). Without it, the model's ``beyond_trained`` policy applies
    (the last trained run's statistics)."""
    spec = model.spec
    trained = spec.readout_time
    sequential = spec.graph.execution == "sequential"
    if recalibrate not in STEP_POLICIES:
        raise InputError(f"recalibrate={recalibrate!r} is not one of {', '.join(STEP_POLICIES)}")
    if recalibrate == "after-first-state":
        check_after_first_state(model)
    policy = "last trained"
    if calibration is not None:
        images = calibrated_on or f"{sum(len(x) for x in calibration)} training images"
        policy = STEP_POLICIES[recalibrate].format(images)
    rows = []
    for t in tqdm(readout_times, desc=f"readout times ({policy})", disable=not progress, leave=False):
        if sequential:
            tested = retime(model, t)
        elif calibration is not None:
            tested = copy.deepcopy(model)  # recalibration must leave the caller's model as it was
        else:
            tested = model
        if calibration is not None:
            tested.recalibrate(calibration, t, steps=_steps(tested, t, recalibrate))
        error = evaluate(tested, batches, [t], "cpu")[t]
        low, high = mapping.latency(t)
        rows.append({
            "model": spec.name, "trained_readout_time": trained, "readout_time": t,
            "first_state_unrolls": first_state_unrolls(spec.graph, t) if sequential else None,
            "error": error, "time_ms_low": float(low), "time_ms_high": float(high),
            "relative_to_trained": "trained" if t == trained else ("before" if t < trained else "after"),
            # which steps normalise with another step's statistics (step<-source), for this readout only
            "borrowed_statistics": _borrowed(tested, t),
            "tsbn_past_trained": policy, "chance_error": 1 - 1 / spec.num_classes,
            "ms_per_step": mapping.describe()})
    return pd.DataFrame(rows)


def check_after_first_state(model) -> None:
    if model.spec.graph.execution != "sequential":
        raise InputError(f"{model.spec.name} is fully recurrent: every state runs at every step, so no steps "
                         "come after the first state's runs; use --recalibrate-steps past or every")


def _steps(model, t: int, policy: str) -> list[int] | None:
    """The steps whose statistics ``policy`` re-estimates for a readout at ``t`` (None: those untrained)."""
    if policy == "every":  # transitions run from step 1; the post-net reads out at t
        return list(range(1, t + 1))
    if policy == "after-first-state":  # the first state runs at steps 1..N of a sequential graph
        return list(range(first_state_unrolls(model.spec.graph, t) + 1, t + 1))
    return None


@report_errors
def main(argv=None):
    p = ArgumentParser(prog="python -m analyses.readout_generalization", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model's name or a checkpoint path")
    p.add_argument("--data-root", default=str(data_root() / "cifar10-jpeg"))
    p.add_argument("--readout-times", type=int, nargs="+", default=PAPER_READOUT_TIMES)
    p.add_argument("--limit", type=int, help="evaluate on a class-balanced subset of the test split")
    p.add_argument("--recalibrate", type=int, metavar="N",
                   help="also evaluate with TSBN statistics estimated from N training images (which: "
                        "--recalibrate-steps)")
    p.add_argument("--recalibrate-steps", nargs="+", choices=list(STEP_POLICIES),
                   metavar="POLICY", help="with --recalibrate, one evaluation for each: past (the steps past the "
                                          "trained runs, default), every (every step's, anew at each readout "
                                          "time), after-first-state (every step after the first state's runs)")
    p.add_argument("--augment-calibration", action="store_true", help=AUGMENT_HELP)
    p.add_argument("--ms-per-step", type=float, nargs="+", default=[20.0, 50.0], metavar="MS",
                   help="one duration or LOW HIGH per step (visrecur.timing.TimeMapping)")
    p.add_argument("--out", default="results/readout_generalization.csv")
    args = p.parse_args(argv)
    check_counts(p, args, ("limit", "recalibrate"))
    check_augment(p, args)
    requires(p, args, "recalibrate_steps", "recalibrate", "which statistics --recalibrate re-estimates")
    if Path(args.out).suffix != ".csv":
        p.error(f"--out {args.out}: the table is a CSV file; give a name ending in .csv")
    if min(args.readout_times) < 1:
        p.error(f"--readout-times {' '.join(map(str, args.readout_times))}: readout times start at 1")
    mapping = TimeMapping(args.ms_per_step)
    model = load(args.model)
    if model.preprocess is None:
        raise CheckpointError(f"checkpoint {args.model!r} does not say its preprocessing; give a checkpoint "
                              "written by python -m visrecur.train")
    spec = model.spec
    if args.recalibrate and "after-first-state" in (args.recalibrate_steps or []):
        check_after_first_state(model)  # before hours of the other policies
    earliest = spec.readout_time - first_state_unrolls(spec.graph, spec.readout_time) + 1 \
        if spec.graph.execution == "sequential" else spec.graph.earliest_readout
    too_early = [t for t in args.readout_times if t < earliest]
    if too_early:
        raise InputError(f"--readout-times {' '.join(map(str, too_early))}: {spec.name} reads out at "
                         f"t >= {earliest}; drop those")
    mean, std = model.preprocess.mean, model.preprocess.std
    images, labels, _ = data.decode_folder(data.find_split(args.data_root, "val"), args.limit)
    batches = data.TensorBatches(images, labels, 500, mean, std, train=False)
    with torch.no_grad():
        tables = [generalization_errors(model, batches, args.readout_times, mapping=mapping, progress=True)]
        if args.recalibrate:  # a class-balanced subset of the training images, the same for every policy
            calibration, described = calibration_batches(args.data_root, args.recalibrate, model.preprocess,
                                                         args.augment_calibration)
            for policy in dict.fromkeys(args.recalibrate_steps or ["past"]):
                tables.append(generalization_errors(model, batches, args.readout_times, mapping=mapping,
                                                    calibration=calibration, calibrated_on=described,
                                                    recalibrate=policy, progress=True))
    table = pd.concat(tables, ignore_index=True)
    table.insert(len(table.columns), "test_images", len(labels))
    out = Path(args.out)
    write_tables({out.stem: table}, out.parent)  # a temporary file, then renamed
    print(table.drop(columns=["ms_per_step", "chance_error"]).to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
