"""Record what every state did at every time step: ``record()`` and ``python -m visrecur.record``.

The recording is an xarray Dataset with one variable per state (dims ``stimulus, time`` then the
state's own ``<state>_channel, <state>_y, <state>_x``, or fewer after a reduction), logits and class
probabilities at every step where the post-net can read out, and provenance in ``attrs``. It is
written batch by batch into ``<output>.partial.nc`` (netCDF output) or ``<output>.partial.zarr`` (zarr
output, or several processes under torchrun), so memory is bounded by the batch size and an interrupted
run continues with ``--resume``; only a finished recording is renamed (or, from a shared zarr store,
converted) to the output path, which therefore never exists half-written.

Stimuli are decoded and preprocessed in loader processes (``workers``, ``stimuli.batches``; by default
only beside a GPU) while the model runs on the batch before, to the same values and in the same order as
without them.

Here: the plan, the batches and the observer. The layout is in recordings.py, the files in stores.py,
the model and its preprocessing in checkpoint.py (``ModelSource``, ``load_model``).
"""
from __future__ import annotations

import datetime as _dt
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from visrecur.artifacts import stores
from visrecur.artifacts.models import ModelSource, load_model
from visrecur.distributed import barrier, parse_device, setup_distributed
from visrecur.errors import InputError
from visrecur.recording.preprocess import Preprocess
from visrecur.artifacts.recordings import UNTRAINED_WARNING, plan, template as make_template
from visrecur.recording.reductions import Reduction
from visrecur.recording.stimuli import StimulusSet, batches as _batches, default_workers
from visrecur.artifacts.stores import partial_paths

from visrecur.timing import DEFAULT_MS_PER_STEP, TimeMapping

__all__ = ["record", "ModelSource", "load_model", "partial_paths", "UNTRAINED_WARNING"]


# --- computing one batch --------------------------------------------------------------------------
class ActivityWarning(UserWarning):
    """Activity that overflowed (NaN/inf, not to be confused with a state not yet reached) or exploded."""


class ActivityMonitor:
    """Warns once per (state, step) when activity is non-finite, or, past the last trained step, grows
    more than ``factor`` times its size at that step: a recording's NaN must mean "not yet arrived"."""

    def __init__(self, last_trained: int | None, factor: float = 100.0):
        self.last_trained, self.factor = last_trained, factor
        self.reference: dict[str, float] = {}
        self.warned: set[tuple[str, int]] = set()

    def __call__(self, name: str, t: int, value: torch.Tensor) -> None:
        size = float(value.detach().abs().amax())
        if t == self.last_trained:
            self.reference[name] = max(size, self.reference.get(name, 0.0))
        if (name, t) in self.warned:
            return
        if not np.isfinite(size):
            message = f"activity of state {name} at step {t} is not finite (overflow), not a missing state"
        elif self.last_trained is not None and t > self.last_trained and self.reference.get(name, 0) > 0 \
                and size > self.factor * self.reference[name]:
            message = (f"activity of state {name} at step {t} is {size / self.reference[name]:.0f} times its size "
                       f"at the last trained step {self.last_trained}: it explodes past the trained steps")
        else:
            return
        self.warned.add((name, t))
        warnings.warn(message, ActivityWarning, stacklevel=2)


def _batch_arrays(source, images, states, times, readouts, reduction, monitor=None):
    """{variable: numpy array (batch, time, ...)} for a batch of preprocessed ``images``."""
    model = source.model
    index = {t: k for k, t in enumerate(times)}
    wanted = set(states)
    captured: dict[tuple[str, int], np.ndarray] = {}

    def observer(name, t, value):
        if monitor is not None:
            monitor(name, t, value)
        if name in wanted and t in index:
            captured[(name, t)] = reduction(name, value)

    with torch.no_grad():
        logits = model(images, readout_time=readouts, observer=observer, until=max(times))
    b = images.shape[0]
    out = {}
    for name in states:
        state = model.spec.graph.state(name)  # a state not reached at any recorded step stays NaN
        shape = tuple(size for _, size in reduction.dims(name, state.channels, *state.size))
        sample = next((v for (s, _), v in captured.items() if s == name), np.empty((b,) + shape))
        array = np.full((b, len(times)) + sample.shape[1:], np.nan, dtype=np.float32)
        for (s, t), value in captured.items():
            if s == name:
                array[:, index[t]] = value
        out[name] = array
    stacked = torch.stack([logits[t].float() for t in readouts], 1)  # batch x readout time x class
    out["logits"] = stacked.cpu().numpy()
    out["probabilities"] = torch.softmax(stacked, 2).cpu().numpy()
    return out


def _images(stimuli, indices, source, device):
    return torch.stack([source.preprocess(stimuli.image(i)) for i in indices]).to(device)


# --- public API -----------------------------------------------------------------------------------
def record(source: ModelSource | torch.nn.Module, stimuli: StimulusSet, output: str | Path | None = None, *,
           states: Sequence[str] | None = None, times: Sequence[int] | None = None,
           readout_time: int | None = None, reduction: Reduction | str | None = None,
           batch_size: int = 64, device: str = "cpu", overwrite: bool = False, resume: bool = False,
           ms_per_step=DEFAULT_MS_PER_STEP, pca_fit: StimulusSet | None = None, progress: bool = True,
           stop_after_batches: int | None = None, preprocess: Preprocess | None = None,
           workers: int | None = None):
    """Record ``stimuli`` through the model. Without ``output``, return the Dataset in memory; with it,
    stream to ``output`` (.nc or .zarr) and return its path.

    ``source``: a ModelSource (``load_model``), or a model that carries its preprocessing
    (``visrecur.load``); any other model needs ``preprocess=visrecur.Preprocess(...)``.
    ``workers``: processes that decode and preprocess the next batches meanwhile (default:
    ``default_workers(device)``); the recording is the same with any number."""
    source = ModelSource.wrap(source, preprocess)
    device = parse_device(device)
    reduction = reduction if isinstance(reduction, Reduction) else Reduction.parse(reduction)
    mapping = ms_per_step if isinstance(ms_per_step, TimeMapping) else TimeMapping(ms_per_step)
    model = source.model.to(device).eval()
    states, times, readouts = plan(model, states, times, readout_time)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch size {batch_size!r} must be an integer of at least 1")
    workers = default_workers(device) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise InputError(f"workers {workers!r} must be an integer of at least 0 (0: load in the main process)")
    if output is not None:  # refuse a bad output before any work or any file
        output = Path(output)
        if output.suffix not in (".nc", ".zarr"):
            raise InputError(f"output {str(output)!r} must end in .nc (netCDF) or .zarr")
        stores.check_writable(output)
    for images in (stimuli, pca_fit):  # a corrupt file is named now, not after half the batches
        if images is not None:
            images.check_files()
    notes = _reduction_notes(model, states, reduction)
    if reduction.method == "pca":
        _fit_pca(source, pca_fit or stimuli, states, times, readouts, reduction, batch_size, device, workers)
        notes += [f"{name}: {reduction._fitted[name].n_components_} PCA components, not {reduction.size} (the fitting "
                  f"set gives at most min(samples, features))" for name in states
                  if reduction._fitted[name].n_components_ < reduction.size]
    for note in notes:
        warnings.warn(f"reduction {reduction.method}:{reduction.size}: {note}", UserWarning, stacklevel=2)
    rank, world, _ = setup_distributed("cpu")  # recording's few collectives are barriers: gloo serves
    extra = {"stimulus_set_sha256": stimuli.content_hash() if rank == 0 else "",
             "pca_fit_set_sha256": (pca_fit or stimuli).content_hash() if reduction.method == "pca" else "",
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "reduction_notes": "; ".join(notes)}
    template = make_template(source, stimuli, states, times, readouts, reduction, mapping, extra)
    monitor = ActivityMonitor(model.last_trained_step())
    if output is None:
        return _record_in_memory(source, stimuli, template, states, times, readouts, reduction, batch_size,
                                 device, progress, monitor, workers)
    return _record_to_store(source, stimuli, Path(output), template, states, times, readouts, reduction,
                            batch_size, device, overwrite, resume, progress, rank, world, stop_after_batches,
                            monitor, workers)


def _reduction_notes(model, states, reduction) -> list[str]:
    """What a reduction does not do as asked: pooling to a grid no smaller than the map."""
    notes = []
    if reduction.method == "pool":
        for name in states:
            state = model.spec.graph.state(name)
            if reduction.size >= max(state.size):
                notes.append(f"{name}'s map is {state.size[0]}x{state.size[1]}, not larger than {reduction.size}: "
                             "it is not pooled")
    return notes


def _record_in_memory(source, stimuli, template, states, times, readouts, reduction, batch_size, device,
                      progress, monitor, workers):
    from tqdm.auto import tqdm

    ds, layout = template.dataset(), template.layout
    arrays = {name: np.full(shape, np.nan, dtype=np.float32) for name, (_, shape, _) in layout.items()}
    starts = range(0, len(stimuli), batch_size)
    loaded = _batches(stimuli, source.preprocess, starts, batch_size, device, workers)
    for indices, images in tqdm(loaded, total=len(starts), disable=not progress, desc="recording", leave=False):
        batch = _batch_arrays(source, images, states, times, readouts, reduction, monitor)
        for name, values in batch.items():
            arrays[name][indices.start:indices.stop] = values
    for name, values in arrays.items():
        ds[name] = (layout[name][0], values, layout[name][2])
    ds["recorded"] = ("stimulus", np.ones(len(stimuli), dtype=bool), ds["recorded"].attrs)
    return ds


def _record_to_store(source, stimuli, output, template, states, times, readouts, reduction, batch_size,
                     device, overwrite, resume, progress, rank, world, stop_after_batches, monitor, workers):
    from tqdm.auto import tqdm

    if output.suffix not in (".nc", ".zarr"):
        raise InputError(f"output {str(output)!r} must end in .nc (netCDF) or .zarr")
    as_nc, as_zarr = partial_paths(output)
    existing = [p for p in (as_nc, as_zarr) if p.exists()]
    # several processes share a zarr store (disjoint chunks); one process writes .nc output directly
    partial = existing[0] if resume and existing else (as_nc if output.suffix == ".nc" and world == 1 else as_zarr)
    if rank == 0:
        stores.check_output(output, partial, existing, overwrite, resume)
        if not resume:
            stores.remove(existing)
            stores.create_partial(template, partial, batch_size)
    barrier(world)
    done = stores.check_resumable(partial, template) if resume else np.zeros(len(stimuli), dtype=bool)
    starts = [s for s in range(0, len(stimuli), batch_size) if not done[s:s + batch_size].all()]
    mine = starts[rank::world]
    # one writer thread: batch k is written while batch k + 1 is computed; at most one batch waits, so
    # memory stays bounded by the batch size
    with stores.open_partial(partial) as store, ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        loaded = _batches(stimuli, source.preprocess, mine, batch_size, device, workers)
        for k, (indices, images) in enumerate(tqdm(loaded, total=len(mine), disable=not (progress and rank == 0),
                                                   desc="recording", leave=False)):
            if stop_after_batches is not None and k >= stop_after_batches:
                raise KeyboardInterrupt("stopped on request (testing resume)")
            batch = _batch_arrays(source, images, states, times, readouts, reduction, monitor)
            if pending is not None:
                pending.result()
            pending = writer.submit(stores.write_batch, store, slice(indices.start, indices.stop), batch)
        if pending is not None:
            pending.result()
    barrier(world)
    if rank == 0:
        stores.finalize(partial, output)
    barrier(world)
    return output


def _fit_pca(source, fit_set, states, times, readouts, reduction, batch_size, device, workers):
    """Fit the PCA on the fitting set's unreduced activity (all its stimuli, every populated step)."""
    full = Reduction("none")
    samples = {name: [] for name in states}
    starts = range(0, len(fit_set), batch_size)
    for _, images in _batches(fit_set, source.preprocess, starts, batch_size, device, workers):
        batch = _batch_arrays(source, images, states, times, readouts, full)
        for name in states:
            values = batch[name].reshape(batch[name].shape[0] * batch[name].shape[1], -1)
            samples[name].append(values[~np.isnan(values).any(axis=1)])
    reduction.fit_pca({name: np.concatenate(parts) for name, parts in samples.items()})
