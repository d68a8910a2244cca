"""What a time-resolved model must say so that recording and the analyses can take it: ``TimedModel``.

A timed model is an ``nn.Module`` that states

* ``areas``: its areas (model "states"), bottom-up, e.g. ``("V1", "V2", "V4", "IT")``;
* ``steps``: each area's steps, ``{area: (step, ...)}`` on one integer time axis; an area's steps need
  not start at 0 (a feedforward baseline with time = depth: stage k's only step is k) and areas may run
  different numbers of steps (CORnet-S: V1 once, V2 twice, V4 four times, IT twice), each on its own
  steps 0..n-1;
* ``readout_steps``: the steps at which it reads out class logits, if any; the readout at step k reads
  the last area at its step k (no extra step, unlike an FRNN's post-net);
* ``preprocess``: how images become its input (``visrecur.Preprocess``);
* ``time_mapping``: the ``TimeMapping`` it states for itself, if any (per-area onsets and step widths,
  e.g. Brain-Score's CORnet-S table), else None (the commands' default or the user's);

and runs with ``run(images, observer)``: ``observer(area, step, tensor)`` is called for every area at
every step as it happens, and the logits come back as ``{step: logits}``. Two ways to provide it:
``visrecur.timed.StepModel`` (an explicit step function) and ``visrecur.adapt`` (hooks on named
submodules of any ``nn.Module``, call k of an area's module being that area's k-th step).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from visrecur.errors import InputError, VisrecurError

Observer = Callable[[str, int, torch.Tensor], None]


class TimedModelError(VisrecurError):
    """A timed model that does not keep its own description (areas, steps, calls)."""


def check_steps(areas: Sequence[str], steps: Mapping[str, Sequence[int]], readout_steps: Sequence[int]) -> tuple:
    """(areas, {area: steps}, readout steps) as tuples of plain ints, refused in one line if incoherent."""
    areas = tuple(str(a) for a in areas)
    if not areas or len(set(areas)) != len(areas):
        raise TimedModelError(f"areas {list(areas)} must be distinct names, at least one")
    unknown = [a for a in steps if a not in areas]
    if unknown:
        raise TimedModelError(f"steps are given for {unknown[0]!r}, which is not an area ({', '.join(areas)})")
    out = {}
    for area in areas:
        values = tuple(int(t) for t in steps.get(area, ()))
        if not values:
            raise TimedModelError(f"area {area!r} has no steps; give its steps, e.g. steps={{{area!r}: range(2)}}")
        if min(values) < 0 or list(values) != sorted(set(values)):
            raise TimedModelError(f"the steps of area {area!r}, {list(values)}, must be increasing integers >= 0")
        out[area] = values
    readout_steps = tuple(int(t) for t in readout_steps)
    if list(readout_steps) != sorted(set(readout_steps)) or (readout_steps and min(readout_steps) < 0):
        raise TimedModelError(f"readout steps {list(readout_steps)} must be increasing integers >= 0")
    return areas, out, readout_steps


class TimedModel(nn.Module):
    """The protocol (see the module docstring). Subclasses set the description with ``describe_time``
    and implement ``run``. FRNN-like attributes (``state_names``, ``preprocess``, ``time_mapping``) let
    code written for FRNNs read a timed model where the meaning is the same."""

    kind = "timed"
    takes_frames = False  # whether run() takes a frame per step (StepModel(frames=True))

    def __init__(self):
        super().__init__()
        self.name = type(self).__name__
        self.areas: tuple[str, ...] = ()
        self.steps: dict[str, tuple[int, ...]] = {}
        self.readout_steps: tuple[int, ...] = ()
        self.preprocess = None
        self.time_mapping = None
        self.classes: tuple = ()
        self.trained = False
        self.description: dict = {}
        self.shapes: dict | None = None
        self._num_classes: int | None = None

    def describe_time(self, areas, steps, readout_steps=(), *, name=None, preprocess=None, time_mapping=None,
                      classes=(), trained=False, description: dict | None = None) -> None:
        self.areas, self.steps, self.readout_steps = check_steps(areas, steps, readout_steps)
        self.name = name or self.name
        if preprocess is None:
            raise InputError(f"the preprocessing of {self.name} is unknown: pass preprocess=visrecur.Preprocess("
                             "input_size, mean, std), what the model expects")
        self.preprocess, self.time_mapping = preprocess, time_mapping
        self.classes, self.trained = tuple(classes), bool(trained)
        self.description = dict(description or {})
        if time_mapping is not None:
            time_mapping.check_states(self.areas, f"timed model {self.name!r}")

    # --- what recording and the analyses read ---------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        return list(self.areas)

    @property
    def time_steps(self) -> tuple[int, ...]:
        """Every step any area runs, in order."""
        return tuple(sorted({t for values in self.steps.values() for t in values}))

    def arrival_time(self, area: str) -> int:
        return self.area_steps(area)[0]

    def area_steps(self, area: str) -> tuple[int, ...]:
        if area not in self.steps:
            raise InputError(f"{area!r} is not an area of {self.name}; its areas: {', '.join(self.areas)}")
        return self.steps[area]

    def area_shape(self, area: str) -> tuple:
        """(channels, height, width) of the area's output at the preprocessing's input size ((n, 1, 1) for
        an area that outputs n features), from one probe pass on zeros, kept."""
        self.area_steps(area)
        if self.shapes is None:
            self._probe_shapes()
        shape = tuple(self.shapes[area])
        return shape + (1,) * (3 - len(shape)) if len(shape) < 3 else shape

    @property
    def num_classes(self) -> int | None:
        """The readout's size (None: no readout)."""
        if self.shapes is None:
            self._probe_shapes()
        return self._num_classes

    def _probe_shapes(self) -> None:
        shapes = {}

        def observe(name, _t, value):
            shapes.setdefault(name, tuple(value.shape[1:]))

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                logits = self.run(probe_input(self, self.preprocess.crop_size), observe)
        finally:
            self.train(was_training)
        self.shapes = shapes
        self._num_classes = int(next(iter(logits.values())).shape[-1]) if logits else None

    def last_trained_step(self):
        """None: a timed model has no time-specific statistics whose last trained step could be passed."""
        return

    def to_dict(self) -> dict:
        """What the model says of its time, as plain values (a recording's ``model_spec`` attr)."""
        return {"kind": self.kind, "name": self.name, "areas": list(self.areas),
                "steps": {a: list(v) for a, v in self.steps.items()}, "readout_steps": list(self.readout_steps),
                **self.description}

    def run(self, images: torch.Tensor, observer: Observer | None = None) -> dict[int, torch.Tensor]:
        """Run on a batch; ``observer(area, step, tensor)`` sees every area at every step; ``{step: logits}``."""
        raise NotImplementedError

    def forward(self, images, *, observer: Observer | None = None):
        """The logits at the last readout step (refused for a model without readout)."""
        logits = self.run(images, observer)
        if not logits:
            raise TimedModelError(f"{self.name} has no readout; record its areas with visrecur.record")
        return logits[max(logits)]


def probe_input(module: nn.Module, size) -> torch.Tensor:
    """One image of zeros of ``size`` (an int or (height, width)) on the module's device, in its dtype."""
    height, width = (size, size) if isinstance(size, int) else size
    parameter = next(module.parameters(), None)
    like = {} if parameter is None else {"device": parameter.device, "dtype": parameter.dtype}
    return torch.zeros(1, 3, int(height), int(width), **like)


def is_timed(model) -> bool:
    return isinstance(model, TimedModel)


class StepModel(TimedModel):
    """A timed model given by an explicit step function (way (a) of the protocol).

    ``step(images, state, t) -> dict``: ``state`` holds every area's latest output (None before its
    first step) and whatever else the function keeps there; the returned dict gives each area that
    runs at step ``t`` its new output (an area's step is ``t``), and ``"logits"`` where the model
    reads out at ``t``. It is called for ``t = 0 .. n_steps - 1``; ``steps`` must list, for each area,
    exactly the ``t`` at which the function returns it (checked at every call).

    ``frames=True``: the model takes a frame per step (BL-net sees its input at every step), so ``run``
    also takes a sequence, (batch, steps, C, H, W) or a list of (batch, C, H, W), one frame for each step,
    and ``step`` gets frame t (e.g. a stimulus for k steps, then a mask); a plain batch is the same
    image at every step."""

    def __init__(self, step: Callable, *, areas: Sequence[str], steps: Mapping[str, Sequence[int]],
                 readout_steps: Sequence[int] = (), modules: nn.Module | None = None, frames: bool = False,
                 **description):
        super().__init__()
        self.step_function = step
        self.modules_ = modules  # the parameters the function uses, registered so .to() and .eval() reach them
        self.takes_frames = bool(frames)
        self.describe_time(areas, steps, readout_steps, **description)
        self.n_steps = max(self.time_steps + self.readout_steps) + 1

    def _frames(self, images) -> list:
        """The input of each step."""
        sequence = isinstance(images, (list, tuple)) or (isinstance(images, torch.Tensor) and images.ndim == 5)
        if not sequence:
            return [images] * self.n_steps
        if not self.takes_frames:
            raise InputError(f"{self.name} takes one image per pass, not a frame per step; give a (batch, C, H, W) "
                             "batch")
        frames = list(images.unbind(1)) if isinstance(images, torch.Tensor) else list(images)
        if len(frames) != self.n_steps:
            raise InputError(f"{self.name} runs {self.n_steps} steps and takes a frame for each; got {len(frames)} "
                             "frames")
        return frames

    def run(self, images, observer=None):
        state: dict = {area: None for area in self.areas}
        logits = {}
        for t, frame in enumerate(self._frames(images)):
            out = self.step_function(frame, state, t)
            ran = [a for a in self.areas if a in out]
            due = [a for a in self.areas if t in self.steps[a]]
            if ran != due or (("logits" in out) != (t in self.readout_steps)):
                raise TimedModelError(f"the step function of {self.name} returned {ran + ['logits'] * ('logits' in out)} "
                                      f"at step {t}, but the model states {due + ['logits'] * (t in self.readout_steps)}; "
                                      "make steps/readout_steps list when each area runs")
            for area in ran:
                state[area] = out[area]
                if observer is not None:
                    observer(area, t, out[area])
            if "logits" in out:
                logits[t] = out["logits"]
        return logits
