"""``number_of_trials`` and ``require_variance``, answered the way Brain-Score's activations extractor
answers them for a deterministic model, with Brain-Score's own code (``MicrosaccadeHelper``):

* ``require_variance=False``: trials of a deterministic model are identical, so their average is one
  pass; one presentation per stimulus, whatever ``number_of_trials`` says;
* ``require_variance=True``: ``number_of_trials`` presentations per stimulus (stimulus after stimulus,
  each repeated), trial k seeing the preprocessed input translated by the k-th *microsaccade*: sub-pixel
  shifts on a spiral within 0.05 degrees of the centre (k = 0 unshifted), bilinear, edges replicated,
  positions in pixels from the model's visual degrees over the input's height. The presentations carry
  Brain-Score's coords ``microsaccade_shift_{x,y}_{pixels,degrees}``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visrecur.errors import InputError
from visrecur.recording.preprocess import Preprocess

SHIFT_COORDS = ("microsaccade_shift_x_pixels", "microsaccade_shift_y_pixels", "microsaccade_shift_x_degrees",
                "microsaccade_shift_y_degrees")


def check_trials(number_of_trials, require_variance) -> tuple[int, bool]:
    whole = isinstance(number_of_trials, (int, np.integer)) and not isinstance(number_of_trials, bool)
    if not whole or number_of_trials < 1:
        raise InputError(f"number_of_trials={number_of_trials!r} must be a whole number of at least 1")
    if not isinstance(require_variance, (bool, np.bool_)):
        raise InputError(f"require_variance={require_variance!r} must be True or False")
    return int(number_of_trials), bool(require_variance)


def microsaccades(number_of_trials: int, input_size, visual_degrees: float) -> list[dict]:
    """One entry per trial: {coord: shift} in Brain-Score's names, from Brain-Score's MicrosaccadeHelper."""
    from brainscore_vision.model_helpers.activations.core import MicrosaccadeHelper

    helper = MicrosaccadeHelper()
    helper.number_of_trials, helper.visual_degrees = int(number_of_trials), float(visual_degrees)
    key = "model input"
    helper.build_microsaccades(image_path=key, image_shape=tuple(int(v) for v in input_size))
    return [{SHIFT_COORDS[0]: float(px[0]), SHIFT_COORDS[1]: float(px[1]), SHIFT_COORDS[2]: float(deg[0]),
             SHIFT_COORDS[3]: float(deg[1])}
            for px, deg in zip(helper.microsaccades["pixels"][key], helper.microsaccades["degrees"][key])]


@dataclass(frozen=True)
class Shifted(Preprocess):
    """A model's preprocessing, then a translation of the input by ``shift`` (x, y) pixels with
    Brain-Score's ``MicrosaccadeHelper.translate`` (bilinear, edges replicated)."""

    shift: tuple = (0.0, 0.0)

    def __call__(self, image) -> torch.Tensor:
        from brainscore_vision.model_helpers.activations.core import MicrosaccadeHelper

        x = super().__call__(image)
        if not any(self.shift):
            return x
        moved = MicrosaccadeHelper.translate(x.numpy(), tuple(self.shift), tuple(x.shape[-2:]), True)
        return torch.from_numpy(np.ascontiguousarray(moved))

    def describe(self) -> str:
        return super().describe() + f"; translated by ({self.shift[0]:.3g}, {self.shift[1]:.3g}) px (a microsaccade)"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "shift": [float(v) for v in self.shift]}


def shifted(preprocess: Preprocess, trial: dict) -> Shifted:
    values = {name: getattr(preprocess, name) for name in ("crop_size", "mean", "std", "resize_size", "fit")}
    return Shifted(**values, shift=(trial[SHIFT_COORDS[0]], trial[SHIFT_COORDS[1]]))
