"""Error against readout time, inside and beyond the trained steps (the paper's Fig. 4D/E and 5A).

    python -m analyses.readout_time [--checkpoint PATH] [--data-root DIR] [--readout-times 2 3 ... 10]

Evaluates top-1 error on the test split at every readout time from one pass per batch. Steps past the
trained ones use the last step's TSBN statistics (beyond_trained="last"), or, with --recalibrate N,
statistics re-estimated for those steps from N training images. Writes a tidy CSV.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from visrecur import data
from visrecur.blocks import extend_time, recalibrate_batchnorm
from visrecur.checkpoint import load
from visrecur.errors import ArgumentParser, report_errors
from visrecur.evaluate import evaluate
from visrecur.stimuli import shared_data_dir
from visrecur.timing import latency_ms


def readout_time_errors(model, batches, readout_times, trained_steps: int | None = None,
                        tsbn_policy: str = "last") -> pd.DataFrame:
    trained = trained_steps or model.spec.time_steps
    errors = evaluate(model, batches, list(readout_times), "cpu")
    low, high = latency_ms(list(errors))
    return pd.DataFrame({"readout_time": list(errors), "error": list(errors.values()),
                         "latency_min_ms": low, "latency_max_ms": high,
                         "beyond_trained_steps": [t > trained for t in errors],
                         "chance_error": 1 - 1 / model.spec.num_classes, "tsbn_past_trained": tsbn_policy})


@report_errors
def main(argv=None):
    p = ArgumentParser(prog="python -m analyses.readout_time", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="default: the pretrained model shipped with visrecur")
    p.add_argument("--data-root", default=str(shared_data_dir() / "cifar10-jpeg"))
    p.add_argument("--readout-times", type=int, nargs="+")
    p.add_argument("--limit", type=int, help="evaluate on a class-balanced subset of the test split (equal per "
                                             "class, the remainder to the first classes)")
    p.add_argument("--recalibrate", type=int, metavar="N",
                   help="re-estimate TSBN statistics of the steps past the trained ones from N training images")
    p.add_argument("--out", default="results/readout_time.csv")
    args = p.parse_args(argv)
    for name in ("limit", "recalibrate"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)} must be at least 1")
    if args.readout_times and min(args.readout_times) < 1:
        p.error(f"--readout-times {' '.join(map(str, args.readout_times))}: readout times start at 1")
    model, payload = load(args.checkpoint, with_payload=True)
    norm = payload["normalization"]
    images, labels, _ = data.decode_folder(data.find_split(args.data_root, "val"), args.limit)
    batches = data.TensorBatches(images, labels, 500, norm["mean"], norm["std"], train=False)
    times = list(args.readout_times or range(model.spec.graph.earliest_readout, 2 * model.spec.time_steps + 1))
    trained, policy = model.spec.time_steps, "last"
    if args.recalibrate and max(times) > trained:
        train_x, _, _ = data.decode_folder(data.find_split(args.data_root, "train"), args.recalibrate)
        calibration = data.TensorBatches(train_x, torch.zeros(len(train_x)), 128, norm["mean"], norm["std"],
                                         train=False)
        extend_time(model, max(times))
        recalibrate_batchnorm(model, (x for x, _ in calibration.batches()), max(times),
                              steps=range(trained + 1, max(times) + 1))
        policy = f"recalibrated on {len(train_x)} training images"
    with torch.no_grad():
        table = readout_time_errors(model, batches, times, trained, policy)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
