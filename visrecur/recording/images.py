"""Image files: suffixes, folder listing, class-balanced subsets, decoding to RGB.

The one image decoder: training data (``visrecur.training.data``), the analyses (through it), stimulus sets
for recording (``visrecur.recording.stimuli``) and Brain-Score's stimuli all decode through ``load_rgb`` /
``to_rgb``, so an image is the same RGB values wherever it is read:

* grey (8-bit) is repeated over the three channels;
* 16-bit grey (PIL modes I;16, I;16B, I) is mapped linearly from 0..65535 to 0..255 (value / 257,
  rounded; values above 65535 clipped), so two images keep their relative contrast;
* transparency is composited over mid-grey (128, 128, 128); palette images are expanded first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from visrecur.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GREY_BACKGROUND = (128, 128, 128)
DECODING = ("decoded to RGB: 8-bit grey repeated over RGB; 16-bit grey mapped linearly 0..65535 -> 0..255 "
            f"(value / 257, rounded); transparency composited over mid-grey {GREY_BACKGROUND}")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive, sorted, hidden files skipped)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".") and is_image(p))


def folder_samples(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) for every image under ``folder/<class>/``, classes sorted by name."""
    folder = Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"{str(folder)!r} has no class folders; expected {folder}/<class>/<image files>")
    samples = [(path, k) for k, c in enumerate(classes) for path in list_images(folder / c)]
    if not samples:
        raise InputError(f"{str(folder)!r} has class folders but no image files ({', '.join(IMAGE_SUFFIXES)})")
    return samples, classes


def balanced_indices(labels: Sequence[int], limit: int, seed: int | None = 0) -> list[int]:
    """Indices of a class-balanced subset of ``limit`` items: ``limit // K`` per class, the remainder one
    each to the first classes (sorted by label). Within a class the items are drawn at random from
    ``seed`` (deterministic), or taken in order with ``seed=None``. A class with too few items gives all
    it has. Returned in the original order."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if limit < 1:
        raise InputError(f"a subset needs at least one item; got limit {limit}")
    per_class, remainder = divmod(limit, len(classes))
    rng = np.random.default_rng(seed) if seed is not None else None
    chosen = []
    for k, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        if rng is not None:
            members = rng.permutation(members)
        chosen.extend(members[:per_class + (k < remainder)].tolist())
    return sorted(chosen)


def open_image(path: Path):
    """A decoded copy of the image at ``path`` (file closed), or one clear error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"cannot read image {str(path)!r} ({type(err).__name__}); remove it or convert it "
                         "to PNG/JPEG") from None


def load_rgb(path: Path):
    """The image at ``path`` decoded to an RGB ``PIL.Image`` (``to_rgb``), or one clear error."""
    return to_rgb(open_image(path), str(path))


def check_image(path: Path) -> None:
    """Refuse an image file whose header or data PIL cannot verify (corrupt, truncated, not an image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read image {str(path)!r} ({type(err).__name__}): it is corrupt or truncated; "
                         "remove it or convert it to PNG/JPEG, then run the same command again") from None


def to_rgb(image, name: str = "image"):
    """PIL image or array -> RGB PIL image, as described in this module's docstring."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = array_to_pil(image, name)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, GREY_BACKGROUND + (255,))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        image = Image.fromarray(np.round(array / 257).astype(np.uint8))
    return image.convert("RGB")


def array_to_pil(array: np.ndarray, name: str):
    """(H, W), (H, W, 1|3|4) or (C, H, W) array, uint8 or floats in 0..1 -> PIL image."""
    from PIL import Image

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels-first -> channels-last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(f"{name}: array of shape {array.shape} is not an image; give (H, W), (H, W, 3|4) "
                         "or (3, H, W)")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and np.nanmin(array) >= 0 and np.nanmax(array) <= 1:
            array = np.round(array * 255)
        elif np.nanmin(array) < 0 or np.nanmax(array) > 255:
            raise InputError(f"{name}: values span [{np.nanmin(array)}, {np.nanmax(array)}]; give uint8 in "
                             "0..255 or floats in 0..1")
        array = array.astype(np.uint8)
    return Image.fromarray(array)
