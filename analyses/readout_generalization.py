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

from analyses import common
from visrecur.artifacts.results import CALIBRATION, NO_CALIBRATION, TSBN_POLICY, add_ms
from visrecur.errors import InputError, report_errors
from visrecur.nn.retime import first_state_unrolls, retime
from visrecur.nn.statistics import policy as tsbn_policy
from visrecur.timing import TimeMapping
from visrecur.training.evaluate import evaluate

DEFAULT_MODEL = "resnet_2state_t13_cifar10"
PAPER_READOUT_TIMES = list(range(7, 24))


def _borrowed(model, t: int) -> str:
    borrowed = model.borrowed_statistics(t, all_readouts=False)
    return " ".join(f"{step}<-{'/'.join(map(str, sorted(src, key=str)))}"
                    for step, src in sorted(borrowed.items())) or "none"


def generalization_errors(model, batches, readout_times, *, calibration: list | None = None,
                          calibrated_on: str | None = None, recalibrate: str = "past",
                          mapping: TimeMapping | None = None, progress: bool = False) -> pd.DataFrame:
    """Top-1 error of ``model`` (trained at ``model.spec.readout_time``) at every readout time.

    ``calibration``: a list of image batches (training images, ``common.calibration_batches``); if given,
    statistics are estimated from them per readout time, on a fresh copy, and the rows say so, naming the
    images ``calibrated_on`` (default: "N training images"); which statistics: ``recalibrate``, a
    recalibration policy (``visrecur.nn.statistics.POLICIES``: past, every, after-first-state). Without it,
    the trained statistics are used (policy "trained": the last trained run's past training)."""
    spec = model.spec
    trained = spec.readout_time
    sequential = spec.graph.execution == "sequential"
    mapping = mapping or TimeMapping()
    chosen = tsbn_policy("trained") if calibration is None else tsbn_policy(recalibrate, recalibrating=True)
    chosen.check(model)
    images = NO_CALIBRATION if calibration is None else (
        calibrated_on or f"{sum(len(x) for x in calibration)} training images")
    rows = []
    for t in tqdm(readout_times, desc=f"readout times ({chosen.name})", disable=not progress, leave=False):
        if sequential:
            tested = retime(model, t)
        elif calibration is not None:
            tested = copy.deepcopy(model)  # recalibration must leave the caller's model as it was
        else:
            tested = model
        if calibration is not None:
            tested.recalibrate(calibration, t, steps=chosen.steps(tested, t))
        error = evaluate(tested, batches, [t], "cpu")[t]
        rows.append({
            "model": spec.name, "trained_readout_time": trained, "readout_time": t,
            "first_state_unrolls": first_state_unrolls(spec.graph, t) if sequential else None,
            "error": error,
            "relative_to_trained": "trained" if t == trained else ("before" if t < trained else "after"),
            # which steps normalise with another step's statistics (step<-source), for this readout only
            "borrowed_statistics": _borrowed(tested, t),
            TSBN_POLICY: chosen.name, CALIBRATION: images, "chance_error": 1 - 1 / spec.num_classes})
    return add_ms(pd.DataFrame(rows), "readout_time", mapping, state=spec.graph.last.name)


@report_errors
def main(argv=None):
    p = common.parser(__doc__, "readout_generalization")
    common.add_model(p, default=DEFAULT_MODEL)
    common.add_data(p)
    p.add_argument("--readout-times", type=int, nargs="+", default=PAPER_READOUT_TIMES, help="test readout times")
    common.add_recalibration(p, help="also evaluate with TSBN statistics estimated from N training images "
                                     "(which: --recalibrate-steps)", steps=True)
    common.add_time_mapping_options(p)
    common.add_output(p, "results/readout_generalization.csv", file=True)
    args = p.parse_args(argv)
    common.check_counts(p, args, ("limit",))
    common.check_recalibration(p, args)
    if Path(args.out).suffix != ".csv":
        p.error(f"--out {args.out}: the table is a CSV file; give a name ending in .csv")
    common.check_readout_time_options(p, args.readout_times)
    model = common.load_models([args.model], "readout_generalization")[args.model]
    mapping = common.time_mapping(args, p, model.time_mapping)
    spec = model.spec
    policies = list(dict.fromkeys(args.recalibrate_steps or ["past"])) if args.recalibrate else []
    for name in policies:  # before hours of the other policies
        tsbn_policy(name).check(model)
    earliest = spec.readout_time - first_state_unrolls(spec.graph, spec.readout_time) + 1 \
        if spec.graph.execution == "sequential" else spec.graph.earliest_readout
    too_early = [t for t in args.readout_times if t < earliest]
    if too_early:
        raise InputError(f"--readout-times {' '.join(map(str, too_early))}: {spec.name} reads out at "
                         f"t >= {earliest}; drop those")
    images, labels, _ = common.load_test_split(args.data_root, args.limit)
    batches = common.test_batches(model, images, labels)
    with torch.no_grad():
        tables = [generalization_errors(model, batches, args.readout_times, mapping=mapping, progress=True)]
        if policies:  # a class-balanced subset of the training images, the same for every policy
            calibration, described = common.calibration_batches(args.data_root, args.recalibrate, model.preprocess,
                                                                args.augment_calibration)
            for name in policies:
                tables.append(generalization_errors(model, batches, args.readout_times, mapping=mapping,
                                                    calibration=calibration, calibrated_on=described,
                                                    recalibrate=name, progress=True))
    table = pd.concat(tables, ignore_index=True)
    table.insert(len(table.columns), "test_images", len(labels))
    out = Path(args.out)
    common.write({out.stem: table}, out.parent, common.command_line("readout_generalization", argv),
                 "top-1 error per test readout time and TSBN policy of a model trained at one readout time",
                 {"model": args.model, "time_mapping": mapping.to_dict()})
    print(table.drop(columns=["chance_error"]).to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
