"""Top-1 error at several readout times from one pass per batch (training's validation, analyses).

    python -m visrecur.evaluate [--checkpoint NAME_OR_PATH] [--limit 1000] [--json OUT.json]

The command measures a checkpoint on a fixed class-balanced subset of the test split; the shipped weights
keep such a measurement beside them (``visrecur/weights/<file>.json``), which a test re-measures.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from .data import epoch_batches
from .distributed import all_sum


@torch.no_grad()
def evaluate(model, source, readout_times, device, use_bf16=False, channels_last=False) -> dict[int, float]:
    """Top-1 error at every readout time. ``source`` yields (input batch, labels): a TensorBatches
    (normalised with the model's ``Preprocess``) or a DataLoader whose transform is that Preprocess."""
    model.eval()
    readout_times = list(readout_times)
    # wrong answers per readout time, then the image count: summed on the device, read once at the end
    sums = torch.zeros(len(readout_times) + 1, dtype=torch.float64, device=device)
    for images, labels in epoch_batches(source, 0):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(images, readout_time=readout_times)
        wrong = [(logits[t].argmax(1) != labels).sum() for t in readout_times]
        count = torch.full((), labels.shape[0], dtype=torch.int64, device=labels.device)  # no host copy
        sums.add_(torch.stack(wrong + [count]))
    reduced = all_sum(sums, device)
    return {t: reduced[k] / reduced[-1] for k, t in enumerate(readout_times)}


def subset_errors(model, data_root, limit: int = 1000, readout_times=None) -> dict[int, float]:
    """Top-1 error on ``limit`` test images of an ImageFolder root (class-balanced, seed 0: always the
    same images), normalised with the model's own ``Preprocess``."""
    from . import data

    images, labels, _ = data.decode_folder(data.find_split(data_root, "val"), limit, seed=0, progress=False)
    batches = data.TensorBatches(images, labels, 250, model.preprocess.mean, model.preprocess.std, train=False)
    times = list(readout_times or range(model.spec.graph.earliest_readout, model.spec.readout_time + 1))
    return evaluate(model, batches, times, "cpu")


def main(argv=None) -> int:
    from .checkpoint import load
    from .errors import ArgumentParser, report_errors
    from .stimuli import shared_data_dir

    @report_errors
    def run():
        p = ArgumentParser(prog="python -m visrecur.evaluate", description=__doc__.splitlines()[0])
        p.add_argument("--checkpoint", help="checkpoint path or shipped model name; default: the shipped default")
        p.add_argument("--data-root", default=str(shared_data_dir() / "cifar10-jpeg"))
        p.add_argument("--limit", type=int, default=1000, help="test images (class-balanced)")
        p.add_argument("--json", help="write {readout time: error} here (atomically)")
        args = p.parse_args(argv)
        if args.limit < 1:
            p.error(f"--limit {args.limit} must be at least 1")
        model = load(args.checkpoint)
        errors = subset_errors(model, args.data_root, args.limit)
        result = {"test_images": args.limit, "subset": "class-balanced, seed 0 (visrecur.data.decode_folder)",
                  "top1_error": {str(t): round(e, 4) for t, e in errors.items()}}
        print(json.dumps(result, indent=1))
        if args.json:
            out = Path(args.json)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            tmp.replace(out)

    return run()


if __name__ == "__main__":
    sys.exit(main())
