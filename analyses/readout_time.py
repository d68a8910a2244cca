"""Error against readout time, inside and beyond the trained steps (the paper's Fig. 4D/E and 5A).

    python -m analyses.readout_time [--model NAME_OR_PATH] [--data-root DIR] [--readout-times 2 3 ... 10]
        [--recalibrate N [--augment-calibration]]

Evaluates top-1 error on the test split at every readout time from one pass per batch. A step without
trained TSBN statistics (past the trained steps) uses the last trained step's statistics (tsbn_policy
"trained"); with --recalibrate N the same readout times are evaluated a second time with the statistics
of every such step estimated from N training images ("past"). Writes one tidy table with both.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from analyses import common
from visrecur.artifacts.results import CALIBRATION, NO_CALIBRATION, TSBN_POLICY, add_ms
from visrecur.errors import report_errors
from visrecur.timing import TimeMapping
from visrecur.training.evaluate import evaluate


def readout_time_errors(model, batches, readout_times, tsbn_policy: str = "trained",
                        trained_readout: int | None = None, mapping: TimeMapping | None = None,
                        calibration: str = NO_CALIBRATION) -> pd.DataFrame:
    """Top-1 error per readout time, whether it lies past the trained readout times (``trained_readout``,
    default the model's last trained one) and which steps borrowed another step's TSBN statistics."""
    trained = model.last_trained_readout() if trained_readout is None else trained_readout
    errors = evaluate(model, batches, list(readout_times), "cpu")
    table = pd.DataFrame({
        "readout_time": list(errors), "error": list(errors.values()),
        "beyond_trained_steps": [t > trained for t in errors],
        # a readout at t runs transitions at steps < t and reads the post-net at t
        "steps_with_borrowed_statistics": [" ".join(str(s) for s in sorted(model.borrowed_statistics(t)))
                                           or "none" for t in errors],
        "chance_error": 1 - 1 / model.spec.num_classes, TSBN_POLICY: tsbn_policy, CALIBRATION: calibration})
    return add_ms(table, "readout_time", mapping or TimeMapping(), state=model.spec.graph.last.name)


@report_errors
def main(argv=None):
    p = common.parser(__doc__, "readout_time")
    common.add_model(p)
    common.add_data(p)
    p.add_argument("--readout-times", type=int, nargs="+",
                   help="readout times to evaluate (default: the earliest to twice the model's time_steps)")
    common.add_recalibration(p, help="also evaluate with the TSBN statistics of every step past the trained ones "
                                     "estimated from N training images")
    common.add_time_mapping_options(p)
    common.add_output(p, "results/readout_time.csv", file=True)
    args = p.parse_args(argv)
    common.check_counts(p, args, ("limit",))
    common.check_recalibration(p, args)
    common.check_readout_time_options(p, args.readout_times)
    model = common.load_models([args.model], "readout_time")[args.model]
    mapping = common.time_mapping(args, p, model.time_mapping)
    images, labels, _ = common.load_test_split(args.data_root, args.limit)
    batches = common.test_batches(model, images, labels)
    times = list(args.readout_times or range(model.spec.graph.earliest_readout, 2 * model.spec.time_steps + 1))
    trained = model.last_trained_readout()  # before recalibration makes later steps "trained"
    with torch.no_grad():
        tables = [readout_time_errors(model, batches, times, "trained", trained, mapping)]
    if args.recalibrate:
        described = common.recalibrate(model, args.data_root, args.recalibrate, max(times), args.augment_calibration)
        with torch.no_grad():
            tables.append(readout_time_errors(model, batches, times, "past", trained, mapping, described))
    table = pd.concat(tables, ignore_index=True)
    out = Path(args.out)
    common.write({out.stem: table}, out.parent, common.command_line("readout_time", argv),
                 "top-1 error on the test split per readout time and TSBN policy",
                 {"model": args.model, "test_images": len(labels), "time_mapping": mapping.to_dict()})
    print(table.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
