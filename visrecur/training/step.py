"""One training step and an epoch's sums, kept on the device: ``TrainStep`` (forward at the loss readout
times, backward, SGD update; replayed from a CUDA graph with ``graphs=True``) adds each batch's loss and
wrong answers to ``EpochTotals`` without any host read, so the host runs ahead of the GPU; the training
loop (train.py) reads the totals every ``LOG_EVERY`` batches and at the end of the epoch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from visrecur.training.cuda_graphs import GraphedStep
from visrecur.distributed import all_sum


class EpochTotals:
    """An epoch's sums, kept on the training device so that no batch waits for the host: loss times
    images, images, wrong answers per tracked readout time, and the first batch whose loss was not
    finite (with that loss). ``read()`` is the one host synchronisation; the tensors are reset in
    place (a captured CUDA graph keeps writing into them)."""

    def __init__(self, track: list[int], device: str):
        self.track = list(track)
        f64 = dict(dtype=torch.float64, device=device)
        self.loss, self.n = torch.zeros((), **f64), torch.zeros((), **f64)
        self.errors = torch.zeros(len(self.track), **f64)
        self.batches = torch.zeros((), dtype=torch.int64, device=device)
        self.bad_batch = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=device)

    def reset(self) -> None:
        for tensor in (self.loss, self.n, self.errors, self.batches, self.bad_loss):
            tensor.zero_()
        self.bad_batch.fill_(-1)

    def add(self, loss: torch.Tensor, logits: dict, labels: torch.Tensor) -> None:
        """Device operations only (no ``.item()``, no ``if`` on a tensor)."""
        loss = loss.detach().double()
        n = labels.shape[0]
        self.batches.add_(1)
        first_bad = ~torch.isfinite(loss) & (self.bad_batch < 0)
        self.bad_batch.copy_(torch.where(first_bad, self.batches, self.bad_batch))
        self.bad_loss.copy_(torch.where(first_bad, loss, self.bad_loss))
        self.loss.add_(loss * n)
        self.n.add_(n)
        self.errors.add_(torch.stack([(logits[t].argmax(1) != labels).sum() for t in self.track]))

    def read(self) -> dict:
        """{loss, n, errors, bad_batch, bad_loss} as Python numbers: one copy to the host."""
        values = torch.cat([torch.stack([self.loss, self.n, self.bad_batch.double(), self.bad_loss]),
                            self.errors]).tolist()
        return {"loss": values[0], "n": values[1], "bad_batch": int(values[2]), "bad_loss": values[3],
                "errors": values[4:]}

    def summed(self) -> list[float]:
        """[loss, n, errors...] summed over processes (``all_sum``): one copy to the host."""
        return all_sum(torch.cat([torch.stack([self.loss, self.n]), self.errors]), self.loss.device)


class TrainStep:
    """One SGD step on a batch (forward at the loss readout times, backward, update) adding to
    ``totals`` on the device; with ``graphs``, replayed from a CUDA graph (``GraphedStep``)."""

    def __init__(self, forward, optimizer, loss_times, totals: EpochTotals, device, use_bf16, channels_last,
                 graphs: bool = False, backend=None):
        self.forward, self.optimizer, self.loss_times, self.totals = forward, optimizer, loss_times, totals
        self.device_type, self.use_bf16, self.channels_last = device.split(":")[0], use_bf16, channels_last
        # autocast's cache of cast weights must not outlive a captured graph
        self.cache = not graphs
        self.graphed = GraphedStep(self.step, backend=backend) if graphs else None

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.use_bf16,
                            cache_enabled=self.cache):
            logits = self.forward(images, readout_time=self.totals.track)
            loss = sum(F.cross_entropy(logits[t].float(), labels) for t in self.loss_times)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.totals.add(loss, logits, labels)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.graphed is None:
            self.step(images, labels)
        else:  # the learning rate is baked into a captured step: a new one is captured when it changes
            self.graphed(images, labels, key=self.optimizer.param_groups[0]["lr"])
