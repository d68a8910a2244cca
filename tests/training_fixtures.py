"""Tiny training inputs shared by the training, GPU-path and GPU-check tests: an image folder whose
classes differ by colour, a training config small enough for a CPU test, and training in-process."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from visrecur.training.config import build_config
from visrecur.training import train

RGB = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def colour_folder(root: Path, splits=(("train", 16), ("test", 6)), size: int = 8, colours=RGB, noise: int = 30,
                  prefix: str = "class") -> Path:
    """``root/<split>/<prefix>k`` PNGs of ``size`` x ``size``: class k is ``colours[k]`` plus uniform
    integer noise in [-noise, noise); one seeded generator, splits then classes then images."""
    rng = np.random.default_rng(0)
    for split, n in splits:
        for k, colour in enumerate(colours):
            folder = root / split / f"{prefix}{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.integers(-noise, noise, (size, size, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def tiny_config(root, out, **overrides):
    """A 2-state FRNN of 2 and 3 channels on 8x8 images, one epoch of batch 8, on the CPU."""
    values = dict(model="frnn_2state_shared", data_root=str(root), out=str(out), epochs=1, batch_size=8, lr=0.05,
                  lr_steps=(2,), threads=1, progress=False, device="cpu",
                  model_overrides={"channels": [2, 3], "input_size": 8, "readout_time": 3})
    return build_config("cifar10", **{**values, **overrides})


def train_in_process(cfg):
    """``train(cfg)``, leaving torch's thread count as it found it (``threads=1`` changes it)."""
    threads = torch.get_num_threads()
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)
