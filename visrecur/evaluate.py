"""Top-1 error at several readout times from one pass per batch (training's validation, analyses)."""
from __future__ import annotations

import torch

from .data import epoch_batches
from .distributed import all_sum


@torch.no_grad()
def evaluate(model, source, readout_times, device, use_bf16=False, channels_last=False) -> dict[int, float]:
    """Top-1 error at every readout time. ``source`` yields (input batch, labels): a TensorBatches
    (normalised with the model's ``Preprocess``) or a DataLoader whose transform is that Preprocess."""
    model.eval()
    errors = {t: 0.0 for t in readout_times}
    count = 0.0
    for images, labels in epoch_batches(source, 0):
        images, labels = images.to(device), labels.to(device)
        if channels_last:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(images, readout_time=list(readout_times))
        for t in readout_times:
            errors[t] += (logits[t].argmax(1) != labels).sum().item()
        count += len(labels)
    reduced = all_sum([errors[t] for t in readout_times] + [count], device)
    return {t: reduced[k] / reduced[-1] for k, t in enumerate(readout_times)}
