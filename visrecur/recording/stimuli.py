"""Stimulus sets for recording: folders, file lists, arrays, the 92-image set, CIFAR-10 test images,
and a built-in set that needs no download.

Every image becomes RGB the same documented way (``images.to_rgb``); the model's ``Preprocess``
(visrecur/preprocess.py) then makes it model input.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from visrecur.artifacts.io import data_root
from visrecur.errors import InputError
from visrecur.recording.images import (DECODING, GREY_BACKGROUND, IMAGE_SUFFIXES, array_to_pil as _array_to_pil, balanced_indices,
                     folder_samples, is_image, list_images, open_image as _open, to_rgb)

if TYPE_CHECKING:  # for the annotation only: preprocess imports torch
    from visrecur.recording.preprocess import Preprocess


__all__ = ["IMAGE_SUFFIXES", "GREY_BACKGROUND", "StimulusSet", "to_rgb", "preprocess", "describe_preprocessing",
           "from_files", "from_folder", "from_array", "from_92images", "cifar10_test", "builtin", "resolve",
           "batches", "default_workers"]
FILE_92 = "Kriegeskorte_Neuron2008_supplementalData.mat"


@dataclass
class StimulusSet:
    """Stimuli with ids and per-stimulus metadata; ``image(i)`` returns an RGB ``PIL.Image``."""

    name: str
    metadata: pd.DataFrame  # one row per stimulus; column "stimulus_id" plus e.g. file, label, category
    loader: Callable[[int], "object"] = field(repr=False)
    description: str = ""
    raw: Callable[[int], bytes] | None = field(default=None, repr=False)  # the stored bytes, for hashing
    files: Sequence[Path] | None = field(default=None, repr=False)  # image files, checked by check_files()

    def __post_init__(self):
        if len(self.metadata) == 0:
            raise InputError(f"stimulus set {self.name!r} is empty; give at least one image")
        ids = self.metadata["stimulus_id"].astype(str)
        if ids.duplicated().any():
            raise InputError(f"stimulus ids in {self.name!r} repeat ({ids[ids.duplicated()].iloc[0]!r}); "
                             "ids must be unique")
        self.metadata = self.metadata.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def ids(self) -> list[str]:
        return self.metadata["stimulus_id"].astype(str).tolist()

    def image(self, index: int):
        return to_rgb(self.loader(index), self.ids[index])

    def subset(self, indices: Sequence[int]) -> "StimulusSet":
        indices = list(indices)
        raw = self.raw
        return StimulusSet(self.name, self.metadata.iloc[indices].reset_index(drop=True),
                           lambda i: self.loader(indices[i]), self.description,
                           None if raw is None else (lambda i: raw(indices[i])),
                           None if self.files is None else [self.files[i] for i in indices])

    def check_files(self) -> None:
        """Open every image file's header (``PIL.Image.verify``) before any work, so that a corrupt or
        truncated file is named now instead of halfway through a recording."""
        from visrecur.recording.images import check_image

        for path in self.files or ():
            check_image(Path(path))

    def content_hash(self) -> str:
        """sha256 over every stimulus id and its stored bytes (file contents, array values; decoded RGB
        pixels where there is nothing stored): identifies the exact images recorded."""
        digest = hashlib.sha256()
        for k, stimulus_id in enumerate(self.ids):
            digest.update(stimulus_id.encode())
            digest.update(self.raw(k) if self.raw else np.asarray(self.image(k)).tobytes())
        return digest.hexdigest()


def preprocess(image, size: tuple[int, int], mean, std):
    """RGB PIL image -> normalised float tensor (3, H, W): ``Preprocess(size, mean, std)(image)``."""
    from visrecur.recording.preprocess import Preprocess

    return Preprocess(tuple(size), tuple(mean), tuple(std))(image)


def describe_preprocessing(preprocessing: Preprocess) -> str:
    """What a recording's ``preprocessing`` attr says: decoding, then the model's preprocessing."""
    return f"{DECODING}; then {preprocessing.describe()}"


def default_workers(device: str) -> int:
    """Loader processes when none are asked for: none on a CPU (the model's threads use its cores), up to
    8 beside a GPU (one core is left to the main process)."""
    if not str(device).startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _Preprocessed:
    """Stimulus ``i`` decoded and preprocessed: what a loader process does (a map-style dataset)."""

    def __init__(self, stimuli: StimulusSet, preprocess):
        self.stimuli, self.preprocess = stimuli, preprocess

    def __len__(self):
        return len(self.stimuli)

    def __getitem__(self, i):
        return self.preprocess(self.stimuli.image(i))


def batches(stimuli: StimulusSet, preprocess, starts, batch_size: int, device: str, workers: int):
    """(indices, model input on ``device``) for the batch at each of ``starts``, in that order. With
    ``workers`` > 0, worker processes decode and preprocess the next batches while the caller works on
    this one (forked: the stimulus set is not copied); the values are the same as with none."""
    import multiprocessing as mp
    import warnings

    import torch
    from torch.utils.data import DataLoader

    ranges = [range(start, min(start + batch_size, len(stimuli))) for start in starts]
    if workers and "fork" not in mp.get_all_start_methods():
        warnings.warn(f"--workers {workers}: worker processes need the fork start method, which this "
                      "platform lacks; loading in the main process", UserWarning, stacklevel=3)
        workers = 0
    loader = DataLoader(_Preprocessed(stimuli, preprocess), batch_sampler=[list(r) for r in ranges],
                        num_workers=workers, pin_memory=str(device).startswith("cuda"),
                        multiprocessing_context="fork" if workers else None,
                        prefetch_factor=2 if workers else None,
                        generator=torch.Generator().manual_seed(0))  # its worker seed, not torch's global RNG
    for indices, images in zip(ranges, loader):
        yield indices, images.to(device, non_blocking=True)


# --- sources --------------------------------------------------------------------------------------
def from_files(paths: Sequence[str | Path], name: str = "files", root: Path | None = None) -> StimulusSet:
    """Stimuli from a list of image files (ids: path relative to ``root``, or the file name)."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise InputError(f"stimulus file {str(path)!r} does not exist")
        if not is_image(path):
            raise InputError(f"{str(path)!r} is not an image file (suffix {path.suffix or 'none'}); "
                             f"give files ending in {', '.join(IMAGE_SUFFIXES)}")
    ids = [str(p.relative_to(root)) if root else p.name for p in paths]
    if len(set(ids)) < len(ids):
        ids = [str(p) for p in paths]
    category = [str(p.parent.relative_to(root)) if root and p.parent != root else "" for p in paths]
    meta = pd.DataFrame({"stimulus_id": ids, "file": [str(p) for p in paths], "label": category,
                         "category": category})
    return StimulusSet(name, meta, lambda i: _open(paths[i]), f"{len(paths)} image files",
                       lambda i: paths[i].read_bytes(), files=paths)


def from_folder(folder: str | Path) -> StimulusSet:
    """Every image under ``folder`` (recursive, sorted); sub-folder names become the category."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"stimulus folder {str(folder)!r} does not exist")
    images = list_images(folder)
    if not images:
        raise InputError(f"stimulus folder {str(folder)!r} has no image files "
                         f"({', '.join(IMAGE_SUFFIXES)}); point --stimuli at a folder of images")
    return from_files(images, name=folder.name, root=folder)


def from_array(array: np.ndarray, ids: Sequence[str] | None = None, name: str = "array",
               metadata: pd.DataFrame | None = None) -> StimulusSet:
    """Stimuli from an array (N, H, W), (N, H, W, 3|4) or (N, 3, H, W); uint8 or floats in 0..1."""
    array = np.asarray(array)
    if array.dtype == bool:
        raise InputError(f"stimulus array {name!r} holds booleans; give uint8 0..255 or floats 0..1 (e.g. "
                         "array.astype(numpy.uint8) * 255)")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"a stimulus array must hold numbers (uint8 0..255 or floats 0..1), not dtype "
                         f"{array.dtype}; convert it, e.g. array.astype(numpy.uint8)")
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(f"stimulus array {name!r} has {bad} non-finite pixel value(s) (NaN or inf) of "
                         f"{array.size}; replace them (e.g. numpy.nan_to_num) before recording")
    if array.ndim not in (3, 4):
        raise InputError(f"a stimulus array needs a first axis over stimuli: (N, H, W[, C]) or (N, C, H, W); "
                         f"got shape {array.shape}")
    if array.dtype.kind == "f" and array.size and (array.min() < 0 or array.max() > 1):
        raise InputError(f"stimulus array {name!r} holds floats {array.min():g}..{array.max():g}; float pixels "
                         "must lie in 0..1 (scaled by 255); divide by 255, or give uint8 0..255")
    if array.dtype.kind in "iu" and array.size and (array.min() < 0 or array.max() > 255):
        raise InputError(f"stimulus array {name!r} holds integers {array.min()}..{array.max()}; integer pixels "
                         "must lie in 0..255; rescale them, or give floats 0..1")
    if array.ndim == 4 and array.shape[-1] not in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        raise InputError(f"stimulus array {name!r} of shape {array.shape} has no channel axis of 1, 3 or 4; "
                         "give (N, H, W), (N, H, W, 3|4) or (N, 3, H, W)")
    if ids is not None and (isinstance(ids, str) or len(ids) != len(array)):
        raise InputError(f"{len(array)} stimuli but {1 if isinstance(ids, str) else len(ids)} ids; give one id "
                         "per stimulus (a list)")
    ids = [f"{name}_{k:05d}" for k in range(len(array))] if ids is None else [str(i) for i in ids]
    meta = pd.DataFrame({"stimulus_id": ids}) if metadata is None else metadata.assign(stimulus_id=ids)
    return StimulusSet(name, meta, lambda i: _array_to_pil(array[i], ids[i]), f"array {array.shape}",
                       lambda i: np.ascontiguousarray(array[i]).tobytes())


def from_92images(path: str | Path | None = None) -> StimulusSet:
    """The 92-image object set (Kriegeskorte et al. 2008) from its supplementary .mat file."""
    from scipy.io import loadmat

    path = Path(path) if path else data_root() / "92images" / FILE_92
    if not path.is_file():
        raise InputError(f"the 92-image set was not found at {str(path)!r}; get {FILE_92} (rsatoolbox "
                         "repository, demos/92imageData) and pass --stimuli 92images:/path/to/it, or set "
                         "VISRECUR_DATA to the folder holding 92images/")
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        structs = mat["stimuli_92objs"]
    except Exception as err:  # scipy raises several kinds for a file that is not this MATLAB file
        raise InputError(f"{str(path)!r} is not the 92-image set's {FILE_92} ({type(err).__name__}); get it "
                         "again (rsatoolbox repository, demos/92imageData)") from None
    images = [np.asarray(s.image, dtype=np.uint8) for s in structs]
    flags = {k: [int(getattr(s, k)) for s in structs] for k in ("human", "face", "animal", "natural")}
    labels = [f"{'human' if h else 'nonhuman'} {'face' if f else 'body'}" if a
              else f"{'natural' if n else 'artificial'} object"
              for h, f, a, n in zip(flags["human"], flags["face"], flags["animal"], flags["natural"])]
    category = ["animate" if a else "inanimate" for a in flags["animal"]]
    meta = pd.DataFrame({"stimulus_id": [f"92img_{k + 1:02d}" for k in range(len(images))],
                         "file": [f"{path.name}:stimuli_92objs[{k}]" for k in range(len(images))],
                         "label": labels, "category": category, **flags})
    return StimulusSet("92images", meta, lambda i: images[i], "Kriegeskorte et al. 2008 92-image set")


def cifar10_test(root: str | Path | None = None, limit: int | None = None) -> StimulusSet:
    """CIFAR-10 test images: an ImageFolder tree (root/test/<class>/) or torchvision's pickles."""
    root = Path(root) if root else data_root() / "cifar10-jpeg"
    if (root / "test").is_dir():
        samples, classes = folder_samples(root / "test")
        if limit is not None:  # class-balanced: the first images of each class
            samples = [samples[k] for k in balanced_indices([label for _, label in samples], limit, None)]
        files = [(path, classes[k]) for path, k in samples]
        meta = pd.DataFrame({"stimulus_id": [f"{c}/{p.name}" for p, c in files],
                             "file": [str(p) for p, _ in files], "label": [c for _, c in files],
                             "category": [c for _, c in files]})
        return StimulusSet("cifar10-test", meta, lambda i: _open(files[i][0]), f"CIFAR-10 test images from {root}",
                           lambda i: files[i][0].read_bytes())
    from visrecur.training.data import load_cifar10_pickles

    images, labels, classes = load_cifar10_pickles(
        root, train=False, fix="give --stimuli cifar10-test:/path/to/root (a folder with test/<class>/ images or "
                               "cifar-10-batches-py/), or set VISRECUR_DATA to the folder holding cifar10-jpeg/")
    keep = balanced_indices(labels.tolist(), limit, None) if limit is not None else list(range(len(images)))
    array = images[keep].permute(0, 2, 3, 1).numpy()
    names = [classes[k] for k in labels[keep].tolist()]
    meta = pd.DataFrame({"stimulus_id": [f"cifar10_test_{k:05d}" for k in keep],
                         "file": [f"cifar-10-batches-py/test_batch[{k}]" for k in keep],
                         "label": names, "category": names})
    return StimulusSet("cifar10-test", meta, lambda i: array[i], "CIFAR-10 test images (pickles)")


def builtin(size: int = 64) -> StimulusSet:
    """24 stimuli that need no download: 8 gratings (4 orientations x 2 spatial frequencies),
    12 shapes (6 shapes x 2 colours), 3 seeded 1/f noise textures, and the photograph that matplotlib
    ships (grace_hopper.jpg), when present."""
    from visrecur.recording import builtin_stimuli

    items = builtin_stimuli.generate(size)
    meta = pd.DataFrame([{k: v for k, v in item.items() if k != "image"} for item in items])
    return StimulusSet("builtin", meta, lambda i: items[i]["image"], builtin.__doc__.split(":")[0])


def resolve(source: str | Sequence[str], limit: int | None = None) -> StimulusSet:
    """A stimulus set from a command-line word: builtin, 92images[:path], cifar10-test[:root], a folder,
    an .npy array, a .txt list of files, or image files."""
    if limit is not None:
        from visrecur.checks import int_arg

        int_arg(limit, "limit", 1)
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str):
        if not isinstance(source, (list, tuple)) or not all(isinstance(s, (str, Path)) for s in source):
            raise InputError(f"stimuli must be a word, a path or a list of paths (builtin, 92images, "
                             f"cifar10-test, a folder, an .npy array, a .txt list, image files), not "
                             f"{type(source).__name__} {source!r:.40}")
        sources = [str(s) for s in source]
        if len(sources) == 1:
            return resolve(sources[0], limit)
        stimuli = from_files(sources)
    else:
        set_name, _, arg = source.partition(":")
        if source == "builtin":
            stimuli = builtin()
        elif set_name == "92images":
            stimuli = from_92images(arg or None)
        elif set_name == "cifar10-test":
            stimuli = cifar10_test(arg or None, limit)
        elif source.endswith(".npy"):
            if not Path(source).is_file():
                raise InputError(f"stimulus array {source!r} does not exist")
            try:
                array = np.load(source, allow_pickle=False)
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise InputError(f"stimulus array {source!r} holds Python objects (object dtype), not "
                                     "pixel values; save a numeric array (uint8 0..255 or floats 0..1) with "
                                     "numpy.save") from None
                raise InputError(f"stimulus array {source!r} cannot be read ({err}); save it with "
                                 "numpy.save") from None
            except OSError as err:
                raise InputError(f"stimulus array {source!r} cannot be read ({err}); save it with "
                                 "numpy.save") from None
            stimuli = from_array(array, name=Path(source).stem)
        elif source.endswith(".txt"):
            if not Path(source).is_file():
                raise InputError(f"stimulus list {source!r} does not exist; give a text file with one image "
                                 "path per line (relative to the list's folder or absolute)")
            lines = [line.strip() for line in Path(source).read_text().splitlines() if line.strip()]
            base = Path(source).parent
            stimuli = from_files([p if Path(p).is_absolute() else base / p for p in lines], Path(source).stem)
        elif Path(source).is_dir():
            stimuli = from_folder(source)
        elif Path(source).is_file():
            stimuli = from_files([source])
        elif "/" in source or os.sep in source or Path(source).suffix:
            raise InputError(f"stimuli {source!r} does not exist; give an existing folder, image file, .npy "
                             "array or .txt list (or builtin, 92images, cifar10-test)")
        else:
            raise InputError(f"stimuli {source!r} not understood: give builtin, 92images, cifar10-test, a "
                             "folder of images, an .npy array, a .txt list of files, or image files")
    if limit is not None and len(stimuli) > limit:
        stimuli = stimuli.subset(range(limit))
    return stimuli
