"""Training data: CIFAR-10 (torchvision's layout) and ImageFolder trees, with the paper's augmentation.

Small images (CIFAR) are decoded once into one uint8 tensor and augmented a batch at a time, which is
several times faster on a CPU than a per-image DataLoader; that tensor can live on the training device
(``TensorBatches(device=...)``: the 50,000 CIFAR-10 training images are 150 MB), so that a batch is
gathered, cropped, flipped and normalised there without a host copy. Its randomness is drawn on the
CPU from the same seeded generator either way, so a batch is the same wherever it is made. Large images
(ImageNet) stream from disk through a DataLoader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from visrecur.errors import InputError
from visrecur.recording.images import balanced_indices, folder_samples, load_rgb
from visrecur.recording.preprocess import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess, normalize

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD", "find_split", "folder_samples",
           "decode_folder", "load_cifar10_pickles", "balanced_subset", "normalize", "draw_crops", "crop_flip",
           "cifar_augment", "TensorBatches", "epoch_batches", "imagenet_loader"]
VAL_SPLIT_NAMES = ("test", "val", "validation")


def find_split(root: str | Path, split: str) -> Path:
    """``root/train`` for split "train"; ``root/test`` (or val, validation) for split "val"."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data root {str(root)!r} does not exist; pass --data-root with the folder that "
                         "holds train/ and test/ (or val/) class folders")
    names = ("train",) if split == "train" else VAL_SPLIT_NAMES
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise InputError(f"{str(root)!r} has no {' or '.join(n + '/' for n in names)} folder; an image-folder "
                     "data root needs train/<class>/*.jpg and test/<class>/*.jpg (or val/)")


def decode_folder(folder: Path, limit: int | None = None, seed: int = 0, progress: bool = True):
    """Decode an ImageFolder split into (uint8 tensor N x 3 x H x W, int64 labels, class names).
    ``limit`` keeps a class-balanced random subset (``images.balanced_indices``: equal per class, the
    remainder to the first classes, drawn from ``seed``)."""
    from tqdm.auto import tqdm

    samples, classes = folder_samples(folder)
    if limit is not None and limit < len(samples):
        samples = [samples[k] for k in balanced_indices([label for _, label in samples], limit, seed)]
    images, labels = [], []
    for path, label in tqdm(samples, desc=f"decoding {folder.name}", disable=not progress, leave=False):
        images.append(np.asarray(load_rgb(path)))  # the one decoder (visrecur.recording.images)
        labels.append(label)
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise InputError(f"images in {str(folder)!r} have different sizes {sorted(sizes)[:3]}...; in-memory "
                         "loading needs one size: use an imagenet preset (random resized crops) instead")
    array = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return array, torch.tensor(labels, dtype=torch.int64), classes


def load_cifar10_pickles(root: str | Path, train: bool, download: bool = False, fix: str | None = None):
    """CIFAR-10 in torchvision's layout (cifar-10-batches-py/ under ``root``) as uint8 tensors. ``fix``: what
    to tell the user when it is missing (default: training's --download / --data-root)."""
    from torchvision.datasets import CIFAR10

    fix = fix or ("pass --download where there is a network, or point --data-root at the folder holding "
                  "cifar-10-batches-py/")
    try:
        ds = CIFAR10(str(root), train=train, download=download)
    except RuntimeError as err:
        reason = str(err).rstrip(".").split(".")[0]
        raise InputError(f"CIFAR-10 not found under {str(root)!r} ({reason}); {fix}") from None
    except OSError as err:  # no network (URLError is an OSError)
        raise InputError(f"cannot download CIFAR-10 to {str(root)!r} ({getattr(err, 'reason', None) or err}); "
                         "check the network, or download cifar-10-python.tar.gz by hand, unpack it there and "
                         "run without --download") from None
    return (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))


def balanced_subset(images: torch.Tensor, labels: torch.Tensor, limit: int | None, seed: int = 0):
    """A class-balanced subset of in-memory images (as ``decode_folder``'s ``limit``)."""
    if limit is None or limit >= len(labels):
        return images, labels
    index = torch.tensor(balanced_indices(labels.tolist(), limit, seed), dtype=torch.int64)
    return images[index], labels[index]


def draw_crops(n: int, generator: torch.Generator, pad: int = 4):
    """The random part of ``cifar_augment`` for ``n`` images, on the CPU: (row offsets, column offsets,
    flips), offsets 0..2 * pad into the padded image (a shift of -pad..pad), each image flipped with
    probability 1/2. Drawn in this order from ``generator`` (exact resume)."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return dy, dx, flip


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              pad: int = 4) -> torch.Tensor:
    """Zero-pad a uint8 batch by ``pad`` pixels, cut image k's window at (dy[k], dx[k]) back to the
    original size, mirror it left-right where flip[k]: one gather, on the device the images are on."""
    n, _, h, w = images.shape
    device = images.device
    dy, dx, flip = (v.to(device, non_blocking=True) for v in (dy, dx, flip))
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = dy.view(n, 1) + torch.arange(h, device=device).view(1, h)  # n x h
    cols = dx.view(n, 1) + torch.arange(w, device=device).view(1, w)  # n x w
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    index = torch.arange(n, device=device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[index, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()


def cifar_augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """He et al. (2015) CIFAR augmentation on a uint8 batch: zero-pad ``pad`` pixels, random crop
    back to size, random horizontal flip. Randomness comes only from ``generator`` (exact resume)."""
    return crop_flip(images, *draw_crops(len(images), generator, pad), pad)


@dataclass
class TensorBatches:
    """Shuffled, augmented, normalised batches from in-memory uint8 images; one rank's share of them
    when ``world_size > 1``. The order of epoch ``e`` depends only on ``seed`` and ``e``.

    ``device``: keep the images there (moved once, here) and make every batch there; the shuffle and
    the crops are still drawn on the CPU from the same generator, so the batches are the same values
    as with ``device=None`` (on the CPU), only where they are differs."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    mean: tuple
    std: tuple
    train: bool = True
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False
    device: str | None = None

    def __post_init__(self):
        if self.device is not None:
            self.images = self.images.to(self.device)
            self.labels = self.labels.to(self.device)
        where = self.images.device
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=where)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=where)

    def batches(self, epoch: int = 0):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        n = len(self.images)
        order = torch.randperm(n, generator=generator) if self.train else torch.arange(n)
        order = order[self.rank::self.world_size]
        stop = len(order) - (len(order) % self.batch_size if self.drop_last else 0)
        order = order.to(self.images.device, non_blocking=True)  # one copy per epoch
        for start in range(0, stop, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = crop_flip(images, *draw_crops(len(index), generator))
            yield normalize(images, self._mean, self._std), self.labels[index]

    def __len__(self):
        share = len(range(self.rank, len(self.images), self.world_size))
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)


def epoch_batches(source, epoch: int):
    """The batches of ``epoch`` from a TensorBatches or a DataLoader."""
    if hasattr(source, "batches"):
        return source.batches(epoch)
    if hasattr(source, "sampler") and hasattr(source.sampler, "set_epoch"):
        source.sampler.set_epoch(epoch)
    return iter(source)


def imagenet_preprocess(size: int = 224) -> Preprocess:
    """Evaluation preprocessing of the ImageNet recipe: shorter side to size * 256 / 224, centre crop."""
    return Preprocess((size, size), IMAGENET_MEAN, IMAGENET_STD, int(size * 256 / 224))


def imagenet_loader(folder: Path, batch_size: int, train: bool, workers: int, seed: int,
                    rank: int = 0, world_size: int = 1, size: int = 224, preprocess: Preprocess | None = None):
    """A DataLoader over an ImageFolder split with the ImageNet augmentation (random resized crop and
    flip for training; ``imagenet_preprocess`` for validation)."""
    from torch.utils.data import DataLoader, DistributedSampler
    from torchvision import datasets, transforms

    folder_samples(folder)  # clear errors for empty or wrongly laid out folders
    preprocess = preprocess or imagenet_preprocess(size)
    if train:
        tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                 transforms.PILToTensor(), preprocess.normalize])
    else:
        tf = preprocess
    dataset = datasets.ImageFolder(str(folder), transform=tf, loader=load_rgb)  # not torchvision's convert("RGB")
    sampler = DistributedSampler(dataset, world_size, rank, shuffle=train, seed=seed) if world_size > 1 else None
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=train,
                      generator=generator, persistent_workers=workers > 0)
