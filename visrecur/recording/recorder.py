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

Here: the plan, the batches and the observer. The recording's schema is ``visrecur.artifacts.recordings``,
its files ``visrecur.artifacts.stores``, the model and its preprocessing ``visrecur.artifacts.models``.
"""
from __future__ import annotations

import datetime as _dt
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from visrecur.artifacts import stores
from visrecur.artifacts.io import exclusive, remove
from visrecur.artifacts.models import ModelSource
from visrecur.artifacts.recordings import template as make_template, timed_template
from visrecur.distributed import barrier, parse_device, setup_distributed
from visrecur.errors import InputError, TimeStepError, VisrecurError
from visrecur.recording.arguments import check_record_arguments
from visrecur.recording.preprocess import Preprocess
from visrecur.recording.reductions import Reduction
from visrecur.recording.stimuli import StimulusSet, batches as _batches, default_workers
from visrecur.timed.protocol import is_timed
from visrecur.timing import TimeMapping

__all__ = ["record", "plan"]


# --- computing one batch --------------------------------------------------------------------------
class ActivityWarning(UserWarning):
    """Activity that overflowed (NaN/inf, not to be confused with a state not yet reached) or exploded."""


class ActivityMonitor:
    """Stops the recording at the first step where a state's activity is not finite (an overflow: a
    recording's NaN must mean "not yet arrived"), naming the state and the step; warns once per state when
    activity, past the last trained step, grows more than ``factor`` times its size at that step.

    One reduction per state and step (the largest absolute value, which is NaN or inf as soon as one
    value is), the value the growth check needs anyway."""

    def __init__(self, last_trained: int | None, factor: float = 100.0):
        self.last_trained, self.factor = last_trained, factor
        self.reference: dict[str, float] = {}
        self.warned: set[str] = set()

    def __call__(self, name: str, t: int, value: torch.Tensor) -> None:
        size = float(value.detach().abs().amax())
        if not np.isfinite(size):
            trained = "" if self.last_trained is None else f" (its last trained step is {self.last_trained})"
            raise TimeStepError(f"the activity of state {name} overflowed (is not finite) at step {t}, the first "
                                f"step at which it is{trained}; record steps before {t} (--times, --readout-time)")
        if t == self.last_trained:
            self.reference[name] = max(size, self.reference.get(name, 0.0))
        if name in self.warned:
            return
        if self.last_trained is not None and t > self.last_trained and self.reference.get(name, 0) > 0 \
                and size > self.factor * self.reference[name]:
            self.warned.add(name)
            warnings.warn(f"activity of state {name} at step {t} is {size / self.reference[name]:.0f} times its "
                          f"size at the last trained step {self.last_trained}: it explodes past the trained steps "
                          "(warned once per state)", ActivityWarning, stacklevel=2)


def _batch_arrays(source, images, states, times, readouts, reduction, monitor=None):
    """{variable: numpy array (batch, time, ...)} for a batch of preprocessed ``images``."""
    model = source.model
    if is_timed(model):
        return _timed_batch_arrays(model, images, states, times, readouts, reduction, monitor)
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


def _timed_batch_arrays(model, images, states, times, readouts, reduction, monitor=None):
    """A timed model's batch: every area at each of its steps among ``times`` (NaN at the others)."""
    index = {t: k for k, t in enumerate(times)}
    b = images.shape[0]
    arrays = {}
    for name in states:
        shape = tuple(size for _, size in reduction.dims(name, *model.area_shape(name)))
        arrays[name] = np.full((b, len(times)) + shape, np.nan, dtype=np.float32)
    wanted = set(states)

    def observer(name, t, value):
        if value.ndim == 2:  # an area that outputs features: (batch, n) -> (batch, n, 1, 1)
            value = value[:, :, None, None]
        if monitor is not None:
            monitor(name, t, value)
        if name in wanted and t in index:
            arrays[name][:, index[t]] = reduction(name, value)

    with torch.no_grad():
        logits = model.run(images, observer)
    if readouts:
        stacked = torch.stack([logits[t].float() for t in readouts], 1)  # batch x readout step x class
        arrays["logits"] = stacked.cpu().numpy()
        arrays["probabilities"] = torch.softmax(stacked, 2).cpu().numpy()
    return arrays


def _images(stimuli, indices, source, device):
    return torch.stack([source.preprocess(stimuli.image(i)) for i in indices]).to(device)


def timed_plan(model, states, times, readout_time):
    """(areas, steps, readout steps) of a recording through a timed model, checked against it: by
    default every area at every step any area runs, and every readout."""
    states = list(states) if states else list(model.areas)
    for s in states:
        model.area_steps(s)
    times = sorted(set(times)) if times is not None else list(model.time_steps)
    if not times or min(times) < 0:
        raise TimeStepError(f"time steps {times} are not valid; give steps >= 0, e.g. --times 0 1 2 3")
    last = max(model.area_steps(s)[-1] for s in states)
    if max(times) > last:
        runs = ", ".join(f"{s} {model.area_steps(s)[0]}..{model.area_steps(s)[-1]}" for s in states)
        raise TimeStepError(f"step {max(times)} is past the last step of every recorded area of {model.name} "
                            f"({runs}); give steps up to {last}")
    readouts = list(model.readout_steps)
    if readout_time is not None:
        if readout_time not in readouts:
            raise TimeStepError(f"{model.name} reads out at steps {readouts or 'none'}, not at {readout_time}; "
                                + ("give one of those" if readouts else "drop --readout-time"))
        readouts = [t for t in readouts if t <= readout_time]
    return states, times, readouts


def plan(model, states, times, readout_time):
    """(states, state time steps, readout times) of a recording, checked against the model."""
    if is_timed(model):
        return timed_plan(model, states, times, readout_time)
    spec = model.spec
    names = [s.name for s in spec.graph.states]
    states = list(states) if states else names
    for s in states:
        spec.graph.state_index(s, "--states")
    readout_time = spec.readout_time if readout_time is None else readout_time
    spec.check_readout_time(readout_time)
    # default: the steps a readout at T is computed from (0..T-1); logits at every readout time up to T
    times = sorted(set(times)) if times is not None else list(range(readout_time))
    if not times or min(times) < 0:
        raise TimeStepError(f"time steps {times} are not valid; give steps >= 0, e.g. --times 0 1 2 3")
    spec.check_steps(max(times) + 1, f"--times up to {max(times)}")
    readouts = list(range(spec.graph.earliest_readout, readout_time + 1))
    if spec.graph.weight_sharing == "unshared" and max(max(times) + 1, readout_time) > spec.time_steps:
        raise TimeStepError(f"this time-variant model has weights for steps up to {spec.time_steps - 1} "
                            f"(readout up to {spec.time_steps}); asked for steps up to {max(times)} and readout "
                            f"time {readout_time}")
    return states, times, readouts


# --- public API -----------------------------------------------------------------------------------
def record(source: ModelSource | torch.nn.Module, stimuli: StimulusSet, output: str | Path | None = None, *,
           states: Sequence[str] | None = None, times: Sequence[int] | None = None,
           readout_time: int | None = None, reduction: Reduction | str | None = None,
           batch_size: int = 64, device: str = "cpu", overwrite: bool = False, resume: bool = False,
           ms_per_step=None, pca_fit: StimulusSet | None = None, progress: bool = True,
           stop_after_batches: int | None = None, preprocess: Preprocess | None = None,
           workers: int | None = None, max_steps: int | None = None):
    """Record ``stimuli`` through the model. Without ``output``, return the Dataset in memory; with it,
    stream to ``output`` (.nc or .zarr) and return its path.

    ``source``: a ModelSource (``load_model``), or a model that carries its preprocessing
    (``visrecur.load``); any other model needs ``preprocess=visrecur.Preprocess(...)``.
    ``ms_per_step``: a ``TimeMapping`` or its ms per step (one value or (low, high)); default: the one the
    model's checkpoint states, else 20-50 ms. ``workers``: processes that decode and preprocess the next
    batches meanwhile (default: ``default_workers(device)``); the recording is the same with any number.
    ``max_steps``: raise the model's maximum number of steps (``visrecur.architecture.modelspec.MAX_STEPS``).
    Everything is checked before the first batch and before any file is made, the memory and disk the
    recording needs included; one writer per output (``visrecur.artifacts.io.exclusive``); a run that
    fails on its input midway removes its unfinished recording (docs/data_integrity.md)."""
    check_record_arguments(output=output, states=states, times=times, readout_time=readout_time, reduction=reduction,
                           pca_fit=pca_fit, preprocess=preprocess, overwrite=overwrite, resume=resume)
    source = ModelSource.wrap(source, preprocess)
    device = parse_device(device)
    if not isinstance(stimuli, StimulusSet):
        raise InputError(f"stimuli must be a visrecur StimulusSet (visrecur.recording.resolve('builtin'), "
                         f"stimuli.from_array(...)), not {type(stimuli).__name__}")
    reduction = reduction if isinstance(reduction, Reduction) else Reduction.parse(reduction)
    given = ms_per_step if isinstance(ms_per_step, TimeMapping) or ms_per_step is None else TimeMapping(ms_per_step)
    mapping = TimeMapping.resolve(given, source.time_mapping, "model")
    model = source.model.to(device).eval()
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise InputError(f"max_steps {max_steps!r} must be a positive integer")
        if is_timed(model):
            raise InputError("max_steps applies to FRNNs; a timed model runs the steps it states: drop max_steps")
        model.allow_steps(int(max_steps))
    states, times, readouts = plan(model, states, times, readout_time)
    mapping.check_states(list(model.state_names) if is_timed(model) else [s.name for s in model.spec.graph.states])
    for name, value, least in (("batch size", batch_size, 1), ("workers", workers, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least):
            raise InputError(f"{name} {value!r} must be an integer of at least {least}"
                             + (" (0: load in the main process)" if least == 0 else ""))
    workers = default_workers(device) if workers is None else workers
    if output is not None:  # refuse a bad output before any work or any file (again under its lock later)
        output = Path(output)
        existing = [p for p in stores.partial_paths(output) if p.exists()]
        stores.check_writable(output)
        if os.environ.get("RANK", "0") == "0":  # under torchrun the first process checks, then makes the partial
            with exclusive(output):  # a partial being written by another run is that run's, named as such
                stores.check_output(output, existing[0] if resume and existing else stores.partial_for(output, 1),
                                    existing, overwrite, resume, create=False)
    for images in (stimuli, pca_fit):  # a corrupt file is named now, not after half the batches
        if images is not None:
            images.check_files()
    if reduction.needs_fit():
        _fit(source, pca_fit or stimuli, states, times, readouts, reduction, batch_size, device, workers)
    sizes = {name: model.area_shape(name) for name in states} if is_timed(model) else \
        {name: (s.channels, *s.size) for name in states for s in [model.spec.graph.state(name)]}
    notes = reduction.notes(sizes)
    for note in notes:
        warnings.warn(f"reduction {reduction.spec}: {note}", UserWarning, stacklevel=2)
    # several processes (torchrun) share one store; an in-memory recording is every process's own
    rank, world, _ = setup_distributed("cpu") if output is not None else (0, 1, 0)
    extra = {"stimulus_set_sha256": stimuli.content_hash() if rank == 0 else "",
             "pca_fit_set_sha256": (pca_fit or stimuli).content_hash() if reduction.needs_fit() else "",
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "reduction_notes": "; ".join(notes)}
    layout = timed_template if is_timed(model) else make_template
    template = layout(source, stimuli, states, times, readouts, reduction, mapping, extra)
    check_resources(template, batch_size, output)
    monitor = ActivityMonitor(model.last_trained_step())
    if output is None:
        return _record_in_memory(source, stimuli, template, states, times, readouts, reduction, batch_size,
                                 device, progress, monitor, workers)
    return _record_to_store(source, stimuli, Path(output), template, states, times, readouts, reduction,
                            batch_size, device, overwrite, resume, progress, rank, world, stop_after_batches,
                            monitor, workers)


# --- what a recording costs, known before any work -------------------------------------------------------
def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_resources(template, batch_size: int, output: Path | None) -> tuple[int, int]:
    """(bytes of memory per batch, bytes of the whole recording), from its layout alone; refuse, in one
    line, a recording whose batches do not fit in the memory available now, or whose file does not fit
    on its disk. A batch is held about three times: as each step is captured, assembled, and while the
    writer thread writes it."""
    import shutil

    from visrecur.architecture.modelspec import format_bytes

    per_stimulus = 4 * sum(int(np.prod(shape[1:])) for _, shape, _ in template.layout.values())
    batch = 3 * min(batch_size, template.n) * per_stimulus
    whole = (template.n if output is not None else 2 * template.n) * per_stimulus
    fix = "lower --batch-size, record fewer --times or --states, or reduce them (--reduction)"
    available = _available_memory()
    if output is None and available is not None and whole > available:
        raise InputError(f"this recording, held in memory, needs about {format_bytes(whole)} "
                         f"({format_bytes(per_stimulus)} per stimulus) but {format_bytes(available)} is available; "
                         f"give an output file to stream it to, or {fix}")
    if available is not None and batch > available:
        raise InputError(f"a batch of {min(batch_size, template.n)} stimuli needs about {format_bytes(batch)} of "
                         f"memory ({format_bytes(per_stimulus)} per stimulus) but {format_bytes(available)} is "
                         f"available; {fix}")
    if output is not None:
        from visrecur.artifacts.io import writable_ancestor

        folder, _ = writable_ancestor(Path(output).resolve().parent)
        free = shutil.disk_usage(folder).free
        if whole > free:
            raise InputError(f"the recording would take about {format_bytes(whole)} but {format_bytes(free)} is "
                             f"free on {str(folder)!r}; record fewer stimuli, --times or --states, reduce them "
                             "(--reduction), or choose another --output")
    return batch, whole


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
    # one writer per output: rank 0 holds the output's lock from the checks until the output is published
    with exclusive(output) if rank == 0 else nullcontext():
        existing = [p for p in stores.partial_paths(output) if p.exists()]
        partial = existing[0] if resume and existing else stores.partial_for(output, world)
        if rank == 0:
            stores.check_output(output, partial, existing, overwrite, resume)
            if not resume:
                for path in existing:
                    remove(path)
                stores.store_for(partial).create(template, partial, min(batch_size, template.n))
        barrier(world)
        # a resume with other options is refused here, keeping the partial for the right ones
        done = stores.check_resumable(partial, template) if resume else np.zeros(len(stimuli), dtype=bool)
        try:
            _write_batches(source, stimuli, partial, states, times, readouts, reduction, batch_size, device, done,
                           progress, rank, world, stop_after_batches, monitor, workers)
        except VisrecurError as err:  # the input or the model's activity: the same command would fail again
            if rank == 0:
                remove(partial)
            raise type(err)(f"{_one_line(err)} (the unfinished recording {str(partial)!r} was removed)") from None
        barrier(world)
        if rank == 0:
            stores.finalize(partial, output)
        barrier(world)
    return output


def _one_line(err: Exception) -> str:
    """The error's own message, also when a loader process raised it (torch then adds its traceback)."""
    text = str(err)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text


def _write_batches(source, stimuli, partial, states, times, readouts, reduction, batch_size, device, done,
                   progress, rank, world, stop_after_batches, monitor, workers):
    from tqdm.auto import tqdm

    starts = [s for s in range(0, len(stimuli), batch_size) if not done[s:s + batch_size].all()]
    mine = starts[rank::world]
    # one writer thread: batch k is written while batch k + 1 is computed; at most one batch waits, so
    # memory stays bounded by the batch size
    with stores.store_for(partial).writer(partial) as store, ThreadPoolExecutor(max_workers=1) as writer:
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


def _fit(source, fit_set, states, times, readouts, reduction, batch_size, device, workers):
    """Fit a reduction (PCA) on the fitting set's unreduced activity (all its stimuli, every populated step)."""
    full = Reduction.parse("none")
    samples = {name: [] for name in states}
    starts = range(0, len(fit_set), batch_size)
    for _, images in _batches(fit_set, source.preprocess, starts, batch_size, device, workers):
        batch = _batch_arrays(source, images, states, times, readouts, full)
        for name in states:
            values = batch[name].reshape(batch[name].shape[0] * batch[name].shape[1], -1)
            samples[name].append(values[~np.isnan(values).any(axis=1)])
    reduction.fit({name: np.concatenate(parts) for name, parts in samples.items()})
