"""Error against readout time, inside and beyond the trained steps (the paper's Fig. 4D/E and 5A).

    python -m analyses.readout_time [--model NAME_OR_PATH] [--data-root DIR] [--readout-times 2 3 ... 10]
        [--recalibrate N [--augment-calibration]]

Evaluates top-1 error on the test split at every readout time from one pass per batch. A step without
trained TSBN statistics (past the trained steps) uses the last trained step's statistics; with
--recalibrate N the same readout times are evaluated a second time with the statistics of every such
step estimated from N training images (``FRNN.recalibrate``). Writes one tidy CSV with both.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from visrecur.training import data

from visrecur.artifacts.checkpoint import load
from visrecur.errors import CheckpointError
from visrecur.errors import ArgumentParser, report_errors
from visrecur.training.evaluate import evaluate
from visrecur.artifacts.io import data_root
from visrecur.timing import latency_ms

from analyses.timed_readout import AUGMENT_HELP, check_augment, check_counts, recalibrate


def readout_time_errors(model, batches, readout_times, tsbn_policy: str = "last trained",
                        trained_readout: int | None = None) -> pd.DataFrame:
    """Top-1 error per readout time, whether it lies past the trained readout times (``trained_readout``,
    default the model's last trained one) and which steps borrowed another step's TSBN statistics."""
    trained = model.last_trained_readout() if trained_readout is None else trained_readout
    errors = evaluate(model, batches, list(readout_times), "cpu")
    low, high = latency_ms(list(errors))
    return pd.DataFrame({
        "readout_time": list(errors), "error": list(errors.values()),
        "latency_min_ms": low, "latency_max_ms": high,
        "beyond_trained_steps": [t > trained for t in errors],
        # a readout at t runs transitions at steps < t and reads the post-net at t
        "steps_with_borrowed_statistics": [" ".join(str(s) for s in sorted(model.borrowed_statistics(t)))
                                           or "none" for t in errors],
        "chance_error": 1 - 1 / model.spec.num_classes, "tsbn_past_trained": tsbn_policy})


@report_errors
def main(argv=None):
    p = ArgumentParser(prog="python -m analyses.readout_time", description=__doc__.splitlines()[0])
    p.add_argument("--model", "--checkpoint", dest="checkpoint", metavar="NAME_OR_PATH",
                   help="a shipped model's name or a checkpoint path (default: the pretrained model shipped with "
                        "visrecur)")
    p.add_argument("--data-root", default=str(data_root() / "cifar10-jpeg"))
    p.add_argument("--readout-times", type=int, nargs="+")
    p.add_argument("--limit", type=int, help="evaluate on a class-balanced subset of the test split (equal per "
                                             "class, the remainder to the first classes)")
    p.add_argument("--recalibrate", type=int, metavar="N",
                   help="also evaluate with the TSBN statistics of every step past the trained ones "
                        "estimated from N training images")
    p.add_argument("--augment-calibration", action="store_true", help=AUGMENT_HELP)
    p.add_argument("--out", default="results/readout_time.csv")
    args = p.parse_args(argv)
    check_counts(p, args, ("limit", "recalibrate"))
    check_augment(p, args)
    if args.readout_times and min(args.readout_times) < 1:
        p.error(f"--readout-times {' '.join(map(str, args.readout_times))}: readout times start at 1")
    model = load(args.checkpoint)
    if model.preprocess is None:
        raise CheckpointError(f"checkpoint {args.checkpoint!r} does not say its preprocessing (no 'preprocess' or "
                              "'normalization' entry); give a checkpoint written by python -m visrecur.train")
    mean, std = model.preprocess.mean, model.preprocess.std  # CIFAR-size images: no resize or crop
    images, labels, _ = data.decode_folder(data.find_split(args.data_root, "val"), args.limit)
    batches = data.TensorBatches(images, labels, 500, mean, std, train=False)
    times = list(args.readout_times or range(model.spec.graph.earliest_readout, 2 * model.spec.time_steps + 1))
    trained = model.last_trained_readout()  # before recalibration makes later steps "trained"
    with torch.no_grad():
        tables = [readout_time_errors(model, batches, times, "last trained", trained)]
    if args.recalibrate:
        policy = recalibrate(model, args.data_root, args.recalibrate, max(times), args.augment_calibration)
        with torch.no_grad():
            tables.append(readout_time_errors(model, batches, times, policy, trained))
    table = pd.concat(tables, ignore_index=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    print(table.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
