"""Top-1 error at several readout times from one pass per batch (training's validation, analyses).

    python -m visrecur.evaluate [--checkpoint NAME_OR_PATH] [--limit 1000] [--json OUT.json]

The command measures a checkpoint on a fixed class-balanced subset of the test split; the shipped weights
keep such a measurement beside them (``visrecur/weights/<file>.json``), which a test re-measures.
"""
from __future__ import annotations


import torch

from visrecur.training.data import epoch_batches
from visrecur.distributed import all_sum


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
    from visrecur.training import data

    images, labels, _ = data.decode_folder(data.find_split(data_root, "val"), limit, seed=0, progress=False)
    batches = data.TensorBatches(images, labels, 250, model.preprocess.mean, model.preprocess.std, train=False)
    times = list(readout_times or range(model.spec.graph.earliest_readout, model.spec.readout_time + 1))
    return evaluate(model, batches, times, "cpu")
