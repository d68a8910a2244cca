"""Image files: suffixes, folder listing, class-balanced subsets, decoding to RGB.

The one image decoder: training data (``visrecur.training.data``), the analyses (through it), stimulus sets
for recording (``visrecur.recording.stimuli``) and Brain-Score's stimuli all decode through ``load_rgb`` /
``to_rgb``, so an image is the same RGB values wherever it is read:

* 1-bit and 8-bit grey (modes 1, L) are repeated over the three channels (1-bit: 0 or 255);
* 16-bit grey (modes I;16, I;16B, I;16L, and I whose values lie in 0..65535) is mapped from the full
  16-bit range to 8 bits: value / 257, rounded (0 -> 0, 65535 -> 255), so two images keep their relative
  contrast; a mode-I image with values outside 0..65535 is refused;
* 32-bit float (mode F) must hold values in 0..1 (the float convention): value * 255, rounded; a float
  image with values outside 0..1, NaN or infinity is refused (save it as 8-bit, or divide it by its
  maximum first);
* CMYK: R = (255 - C)(255 - K) / 255 (rounded), likewise G from M and B from Y;
* YCbCr (JPEG/JFIF, full range): R = Y + 1.402 (Cr - 128), G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128),
  B = Y + 1.772 (Cb - 128), rounded and clipped to 0..255;
* transparency (modes LA, La, PA, RGBA, RGBa, or a transparency entry) is composited over mid-grey
  (128, 128, 128): out = alpha * colour + (1 - alpha) * 128; palette images (P) are expanded first;
* any other mode (HSV, LAB, I;16S, ...) is refused in one line;
* an image of more than ``max_image_pixels()`` pixels (PIL's decompression-bomb guard, 89478485 by
  default) is refused before it is decoded; raise the limit with ``--max-image-pixels N`` or the
  environment variable ``VISRECUR_MAX_IMAGE_PIXELS``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visrecur.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GREY_BACKGROUND = (128, 128, 128)
DECODING = ("decoded to RGB: 8-bit grey repeated over RGB; 16-bit grey mapped linearly 0..65535 -> 0..255 "
            "(value / 257, rounded); float images (values 0..1) times 255, rounded; CMYK and YCbCr by their "
            f"standard formulas; transparency composited over mid-grey {GREY_BACKGROUND}")
DEFAULT_MAX_PIXELS = 89478485  # PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "I;16", "I;16B", "I;16L", "I", "F",
         "CMYK", "YCbCr")
_max_pixels: int | None = None


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


def max_image_pixels() -> int:
    """The most pixels an image may have: ``set_max_image_pixels``, else $VISRECUR_MAX_IMAGE_PIXELS, else
    PIL's default (89478485)."""
    import os

    if _max_pixels is not None:
        return _max_pixels
    text = os.environ.get("VISRECUR_MAX_IMAGE_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"VISRECUR_MAX_IMAGE_PIXELS={text!r} must be a whole number of pixels >= 1")
    return value


def set_max_image_pixels(limit: int | None) -> None:
    """Raise (or lower) the image-size limit for this process; None: back to the default."""
    global _max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise InputError(f"max image pixels {limit!r} must be a whole number >= 1")
    _max_pixels = None if limit is None else int(limit)


def _check_size(img, name: str) -> None:
    limit = max_image_pixels()
    width, height = img.size
    if width * height > limit:
        raise InputError(f"image {name!r} is {width}x{height} = {width * height} pixels, more than the limit of "
                         f"{limit} (a guard against decompression bombs); if you trust it, raise the limit with "
                         f"--max-image-pixels {width * height} (or VISRECUR_MAX_IMAGE_PIXELS={width * height})")
    if img.mode not in MODES:
        raise InputError(f"image {name!r} has PIL mode {img.mode!r}, which visrecur does not decode (it decodes "
                         f"{', '.join(MODES)}); convert it to RGB (e.g. PNG or JPEG) first")


def _opened(path: Path):
    """``PIL.Image.open(path)`` with visrecur's size limit in place of PIL's (checked by ``_check_size``)."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(path: Path):
    """A decoded copy of the image at ``path`` (file closed), or one clear error."""
    from PIL import UnidentifiedImageError

    try:
        with _opened(path) as img:
            _check_size(img, str(path))
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read image {str(path)!r} ({type(err).__name__}); remove it or convert it "
                         "to PNG/JPEG") from None


def load_rgb(path: Path):
    """The image at ``path`` decoded to an RGB ``PIL.Image`` (``to_rgb``), or one clear error."""
    return to_rgb(open_image(path), str(path))


def check_image(path: Path) -> None:
    """Refuse an image file whose header or data PIL cannot verify (corrupt, truncated, not an image), that
    is too large or of a mode visrecur does not decode; float and 32-bit images are decoded now, so that
    values outside their range are named before any work."""
    from PIL import UnidentifiedImageError

    try:
        with _opened(path) as img:
            _check_size(img, str(path))
            mode = img.mode
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read image {str(path)!r} ({type(err).__name__}): it is corrupt or truncated; "
                         "remove it or convert it to PNG/JPEG, then run the same command again") from None
    if mode in ("I", "F"):
        load_rgb(path)


def to_rgb(image, name: str = "image"):
    """PIL image or array -> RGB PIL image, as described in this module's docstring."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = array_to_pil(image, name)
    if not isinstance(image, Image.Image):
        raise InputError(f"{name}: expected a PIL image or a numpy array, got {type(image).__name__}")
    _check_size(image, name)
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif mode in ("La", "RGBa"):  # premultiplied alpha: PIL divides it out on the way to LA / RGBA
        image = image.convert("LA" if mode == "La" else "RGBA")
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, GREY_BACKGROUND + (255,))
        return Image.alpha_composite(background, image).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        if mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise InputError(f"{name}: a 32-bit integer image with values {array.min():g}..{array.max():g}, outside "
                             "the 16-bit range 0..65535 it is decoded by; save it as 8- or 16-bit")
        return _grey(np.round(array / 257))
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise InputError(f"{name}: a float image with NaN or infinite values; save it as 8-bit or replace them")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise InputError(f"{name}: a float image with values {array.min():g}..{array.max():g}; float images "
                             "must hold 0..1 (decoded as value * 255); divide it by its maximum or save it as "
                             "8-bit")
        return _grey(np.round(array * 255))
    if mode == "CMYK":
        c, m, y, k = np.moveaxis(np.asarray(image, dtype=np.float64), -1, 0)
        rgb = np.stack([(255 - v) * (255 - k) / 255 for v in (c, m, y)], -1)
        return Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
    if mode == "YCbCr":
        y, cb, cr = np.moveaxis(np.asarray(image, dtype=np.float64), -1, 0)
        rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                        y + 1.772 * (cb - 128)], -1)
        return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")
    return image.convert("RGB")


def _grey(values: np.ndarray):
    from PIL import Image

    return Image.fromarray(values.astype(np.uint8)).convert("RGB")


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
