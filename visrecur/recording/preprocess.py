"""How images become model input: size, resize/crop policy and normalisation, in one object.

A ``Preprocess`` travels with the weights (the checkpoint's ``preprocess`` entry, a plain dict), as
torchvision's weight enums carry their transforms; recording, analyses and training's evaluation all
call it. Old checkpoints that carry only ``normalization`` {mean, std} get one built from it and the
spec's input size (``from_checkpoint``).

What ``Preprocess(image)`` does to a decoded RGB image (``images.to_rgb``) of height H and width W:

1. scale by ``s = max(resize_size / min(H, W), crop_h / H, crop_w / W)``: the shorter side becomes
   ``resize_size`` unless the crop would not fit (a non-square crop), then just enough to cover the crop;
   bilinear, antialiased (torchvision ``transforms.v2.functional.resize`` on the uint8 image);
2. centre-crop to ``crop_h x crop_w`` (a non-square image loses its longer side's margins equally; an odd
   margin puts the extra pixel at the bottom/right);
3. scale 0..255 to 0..1 and normalise per channel: ``(x - mean) / std``.

``fit="stretch"`` replaces steps 1-2 by one bilinear, antialiased resize of the whole image to
``crop_h x crop_w`` (a non-square image is squeezed, nothing is cut): the convention of Brain-Score's
default model preprocessing (``transforms.Resize((size, size))``), which the Brain-Score adapter uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import torch

from visrecur.errors import InputError

FITS = ("crop", "stretch")  # how an image of another shape becomes the input size
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, 3, H, W) or (3, H, W) -> float, 0..1, then ``(x - mean) / std`` per channel (mean and
    std: sequences of 3 numbers or float tensors)."""
    x = images_uint8.float().div_(255)
    shape = (-1, 1, 1)
    # mean and std may be tensors already on x's device (training batches): no host copy per batch
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(shape)
    std = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(shape)
    return (x - mean) / std


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclass(frozen=True)
class Preprocess:
    """Resize (shorter side) + centre crop + normalise; see the module docstring for the exact steps."""

    crop_size: tuple  # (height, width): the model's input size
    mean: tuple
    std: tuple
    resize_size: int | None = None  # shorter side before cropping; None: the crop's shorter side
    fit: str = "crop"  # "crop": resize the shorter side, centre-crop; "stretch": resize the whole image

    def __post_init__(self):
        sizes = self.crop_size if isinstance(self.crop_size, (tuple, list)) else (self.crop_size, self.crop_size)
        if not all(_whole(v) for v in sizes) or not (self.resize_size is None or _whole(self.resize_size)):
            raise InputError(f"preprocessing sizes must be whole numbers of pixels: crop_size {self.crop_size!r:.40}, "
                             f"resize_size {self.resize_size!r:.40}; e.g. Preprocess((32, 32), mean, std)")
        crop = tuple(int(v) for v in sizes)
        object.__setattr__(self, "crop_size", crop)
        try:
            object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
            object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        except (TypeError, ValueError):
            raise InputError(f"preprocessing mean {self.mean!r:.40} and std {self.std!r:.40} must be 3 numbers "
                             "each, e.g. (0.5, 0.5, 0.5)") from None
        if self.resize_size is None:
            object.__setattr__(self, "resize_size", min(crop))
        if len(crop) != 2 or min(crop) < 1 or int(self.resize_size) < 1:
            raise InputError(f"preprocessing sizes must be positive: crop {crop}, resize {self.resize_size}")
        if self.fit not in FITS:
            raise InputError(f"preprocessing fit {self.fit!r} must be one of {', '.join(FITS)}")
        if not all(math.isfinite(v) for v in self.mean + self.std):
            raise InputError(f"preprocessing mean {self.mean} and std {self.std} must be finite numbers")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError(f"preprocessing needs 3 means and 3 positive stds; got mean {self.mean}, "
                             f"std {self.std}")

    def __call__(self, image) -> torch.Tensor:
        """RGB PIL image (or uint8 (3, H, W) tensor) -> normalised float tensor (3, crop_h, crop_w)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        from PIL import Image

        if isinstance(image, torch.Tensor):
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
                raise InputError(f"Preprocess takes a uint8 (3, H, W) tensor or an RGB PIL image; got a {image.dtype} "
                                 f"tensor of shape {tuple(image.shape)}")
            x = image
        elif isinstance(image, Image.Image) and image.mode == "RGB":
            x = TF.pil_to_tensor(image)
        else:
            raise InputError(f"Preprocess takes an RGB PIL image (decode files with "
                             f"visrecur.recording.images.load_rgb) or a uint8 (3, H, W) tensor, not "
                             f"{getattr(image, 'mode', type(image).__name__)!r}")
        height, width = x.shape[-2:]
        crop_h, crop_w = self.crop_size
        if self.fit == "stretch":
            if [height, width] != [crop_h, crop_w]:
                x = TF.resize(x, [crop_h, crop_w], interpolation=InterpolationMode.BILINEAR, antialias=True)
            return normalize(x, self.mean, self.std)
        scale = max(self.resize_size / min(height, width), crop_h / height, crop_w / width)
        size = [max(crop_h, round(height * scale)), max(crop_w, round(width * scale))]
        if size != [height, width]:
            x = TF.resize(x, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        x = TF.center_crop(x, [crop_h, crop_w])
        return normalize(x, self.mean, self.std)

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Only the normalisation, for images already at the input size (training batches)."""
        return normalize(images_uint8, self.mean, self.std)

    def describe(self) -> str:
        crop_h, crop_w = self.crop_size
        if self.fit == "stretch":
            return (f"resized as a whole (bilinear, antialiased) to {crop_h}x{crop_w} (height x width; a non-square "
                    "image is squeezed, nothing is cut, as Brain-Score's default preprocessing does); scaled to 0..1; "
                    f"normalised per channel with mean {tuple(round(m, 4) for m in self.mean)} and std "
                    f"{tuple(round(s, 4) for s in self.std)}")
        return (f"scaled (bilinear, antialiased) so that the shorter side is {self.resize_size} px, or more "
                f"where a {crop_h}x{crop_w} crop would not fit; centre-cropped to {crop_h}x{crop_w} "
                "(height x width; a non-square image loses equal margins of its longer side); scaled to 0..1; "
                f"normalised per channel with mean {tuple(round(m, 4) for m in self.mean)} and std "
                f"{tuple(round(s, 4) for s in self.std)}")

    def to_dict(self) -> dict:
        """Plain types only: loadable with torch.load(..., weights_only=True). ``fit`` is written only when
        it is not the default crop, so that what checkpoints and recordings hold stays as it was."""
        values = {"crop_size": list(self.crop_size), "resize_size": int(self.resize_size),
                  "mean": list(self.mean), "std": list(self.std), "interpolation": "bilinear", "antialias": True}
        return values if self.fit == "crop" else {**values, "fit": self.fit}

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocess":
        if not isinstance(values, dict):
            raise InputError(f"preprocessing must be a dict like Preprocess(...).to_dict(), not {type(values).__name__}")
        try:
            return cls(tuple(values["crop_size"]), tuple(values["mean"]), tuple(values["std"]),
                       values.get("resize_size"), values.get("fit", "crop"))
        except (KeyError, TypeError) as err:
            raise InputError(f"preprocessing {values!r} is incomplete ({err}); it needs crop_size, mean and "
                             "std") from None

    @classmethod
    def from_checkpoint(cls, payload: dict) -> "Preprocess | None":
        """The checkpoint's ``preprocess`` entry; for older files, their ``normalization`` plus the spec's
        input size; None when the file says neither."""
        if payload.get("preprocess"):
            return cls.from_dict(payload["preprocess"])
        norm = payload.get("normalization")
        if norm and payload.get("spec"):
            return cls(tuple(payload["spec"]["input_size"]), tuple(norm["mean"]), tuple(norm["std"]))
        return None
