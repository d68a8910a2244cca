"""``visrecur.adapt(module, areas={...})``: any ``nn.Module`` as a ``TimedModel`` (way (b) of the protocol).

Each area names a submodule (``"V2.output"``); a forward hook counts its calls within one forward
pass, and call k is the area's k-th step (the pass-qualified name ``V2.output:k+1``, 1-based as
TorchLens numbers passes). The number of calls is found once, on a probe input, and every later
forward must call each hooked module exactly as often: a module never called, or called a different
number of times, is refused in one line naming it. Hooks exist only during ``run``; the module is not
changed.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping

import torch
from torch import nn

from visrecur.errors import InputError
from visrecur.timed.protocol import TimedModel, TimedModelError, probe_input


def _tensor(output):
    """The tensor a hooked module returns (the first element of a tuple, as CORnet-RT's blocks return
    (output, state))."""
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return output


def pass_label(module_name: str, call: int) -> str:
    """The pass-qualified name of call ``call`` (0-based) of a module: ``V4.output:3`` is its third call."""
    return f"{module_name}:{call + 1}"


class Adapted(TimedModel):
    """``module`` as a timed model. ``areas``: {area: submodule name}, bottom-up; ``readout``: the
    submodule whose calls are the readouts (each at the last area's step just before it), or None: the
    module's own output, if it is (batch, classes) logits, is one readout at the last area's last step.
    ``first_step``: {area: its first step} (default 0: call k is step k; a feedforward stage k of a
    time = depth model starts at k). ``trained``: whether its weights were trained (default: a user's
    module is; False makes recordings carry the untrained warning). ``probe_size``: the input (H, W) of
    the probe pass (default the preprocessing's crop)."""

    kind = "adapted"

    def __init__(self, module: nn.Module, areas: Mapping[str, str], *, preprocess=None, readout: str | None = None,
                 first_step: Mapping[str, int] | None = None, time_mapping=None, classes=(), name: str | None = None,
                 trained: bool = True, probe_size=None, description: dict | None = None):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise InputError(f"visrecur.adapt needs a torch.nn.Module, not {type(module).__name__}")
        if not areas:
            raise InputError("visrecur.adapt needs areas={area: submodule name}, e.g. {'V1': 'V1.output'}")
        self.module = module
        self.targets = {str(area): self._submodule(module, str(target)) for area, target in areas.items()}
        self.target_names = {str(area): str(target) for area, target in areas.items()}
        seen = {}
        for area, target in self.target_names.items():
            if target in seen:
                raise InputError(f"areas {seen[target]!r} and {area!r} both name module {target!r}; "
                                 "give each area its own submodule")
            seen[target] = area
        self.readout_name = readout
        self.readout_module = self._submodule(module, readout) if readout is not None else None
        self.first_step = {area: int((first_step or {}).get(area, 0)) for area in self.target_names}
        self.name = name or type(module).__name__
        if preprocess is None:
            raise InputError(f"the preprocessing of {self.name} is unknown: pass preprocess=visrecur.Preprocess("
                             "input_size, mean, std), what the module expects")
        self.preprocess = preprocess
        calls, readouts, shapes = self._probe(probe_size or preprocess.crop_size)
        self.calls, self.shapes = calls, shapes
        steps = {area: tuple(self.first_step[area] + k for k in range(calls[area])) for area in self.target_names}
        self.describe_time(list(self.target_names), steps, readouts, name=self.name, preprocess=preprocess,
                           time_mapping=time_mapping, classes=classes, trained=trained,
                           description={"modules": dict(self.target_names), "readout_module": readout or "",
                                        **(description or {})})

    @staticmethod
    def _submodule(module: nn.Module, target: str) -> nn.Module:
        try:
            return module.get_submodule(target)
        except AttributeError:
            names = [n for n, _ in module.named_modules() if n]
            close = difflib.get_close_matches(target, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; its submodules include {', '.join(names[:6])}"
            raise InputError(f"the module has no submodule {target!r}{hint}") from None

    def _probe(self, size):
        """Calls per area, readout steps and per-area output shapes (C, H, W) from one pass on zeros."""
        images = probe_input(self.module, size)
        shapes = {}
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                counts, readouts, _ = self._forward(images, None, check=False, shapes=shapes)
        finally:
            self.module.train(was_training)
        for area, n in counts.items():
            if n == 0:
                raise TimedModelError(f"module {self.target_names[area]!r} (area {area}) is never called in a "
                                      "forward pass; name a submodule the forward runs")
        self._num_classes = int(readouts[0][1].shape[-1]) if readouts else None
        return counts, self._readout_steps(readouts), shapes

    def _forward(self, images, observer, *, check=True, shapes=None):
        counts = {area: 0 for area in self.target_names}
        last = list(self.target_names)[-1]
        readouts: list = []

        def area_hook(area):
            def hook(_module, _inputs, output):
                k = counts[area]
                counts[area] = k + 1
                value = _tensor(output)
                if shapes is not None and area not in shapes:
                    shapes[area] = tuple(value.shape[1:])
                if observer is not None:
                    observer(area, self.first_step[area] + k, value)
            return hook

        def readout_hook(_module, _inputs, output):
            readouts.append((self.first_step[last] + counts[last] - 1, _tensor(output)))

        handles = [self.targets[area].register_forward_hook(area_hook(area)) for area in self.target_names]
        if self.readout_module is not None:
            handles.append(self.readout_module.register_forward_hook(readout_hook))
        try:
            output = self.module(images)
        finally:
            for handle in handles:
                handle.remove()
        if check:
            for area, n in counts.items():
                expected = len(self.steps[area])
                if n != expected:
                    said = "is never called" if n == 0 else f"was called {n} times"
                    raise TimedModelError(f"module {self.target_names[area]!r} (area {area}) {said} in this forward "
                                          f"pass but {expected} times when it was adapted; a timed model must run each "
                                          "area the same number of times for every input")
        if self.readout_module is None:
            output = _tensor(output)
            ok = isinstance(output, torch.Tensor) and output.ndim == 2 and output.shape[0] == images.shape[0]
            readouts = [(self.first_step[last] + counts[last] - 1, output)] if ok else []
        return counts, readouts, output

    def _readout_steps(self, readouts):
        steps = [t for t, _ in readouts]
        if len(set(steps)) != len(steps):
            raise TimedModelError(f"{self.name} reads out twice after the same step of its last area; name as "
                                  "readout a module called once per step")
        return steps

    def run(self, images, observer=None):
        if isinstance(images, (list, tuple)) or (isinstance(images, torch.Tensor) and images.ndim == 5):
            raise InputError(f"{self.name} takes one image per pass (an adapted module), not a frame per step; "
                             "give a (batch, C, H, W) batch, or wrap a step function in visrecur.StepModel(frames=True)")
        _, readouts, _ = self._forward(images, observer)
        return {t: value for t, value in readouts}

    def module_name(self, area: str) -> str:
        return self.target_names[area]

    def pass_labels(self) -> dict:
        """{(area, step): pass-qualified module name}."""
        return {(area, step): pass_label(self.target_names[area], k)
                for area in self.areas for k, step in enumerate(self.steps[area])}


def adapt(module: nn.Module, areas: Mapping[str, str], **options) -> Adapted:
    """Any ``nn.Module`` as a timed model: ``visrecur.adapt(net, areas={'V1': 'V1.output', ...},
    preprocess=visrecur.Preprocess((224, 224), mean, std), readout='decoder.linear')``; see ``Adapted``."""
    return Adapted(module, areas, **options)
