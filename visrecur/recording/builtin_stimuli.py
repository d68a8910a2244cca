"""The built-in stimulus set: generated gratings, shapes and noise, plus matplotlib's sample photograph."""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"white": (235, 235, 235), "red": (220, 40, 40)}


def grating(size: int, orientation_deg: float, cycles: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    theta = np.deg2rad(orientation_deg)
    phase = 2 * np.pi * cycles * (x * np.cos(theta) + y * np.sin(theta))
    grey = np.round(127.5 + 127.5 * np.sin(phase)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def shape(size: int, name: str, colour) -> np.ndarray:
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    r = np.hypot(x, y)
    masks = {
        "disc": r < 0.3,
        "ring": (r < 0.32) & (r > 0.2),
        "square": (abs(x) < 0.27) & (abs(y) < 0.27),
        "triangle": (y < 0.25) & (y > -0.3 + 2 * abs(x) * 1.1 - 0.05),
        "cross": ((abs(x) < 0.08) & (abs(y) < 0.32)) | ((abs(y) < 0.08) & (abs(x) < 0.32)),
        "star": r < 0.18 + 0.12 * np.cos(5 * np.arctan2(y, x)),
    }
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    image[masks[name]] = colour
    return image


def pink_noise(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    amplitude = 1 / np.maximum(np.hypot(fx, fy), 1 / size)
    spectrum = amplitude * np.exp(2j * np.pi * rng.random((size, size)))
    field = np.real(np.fft.ifft2(spectrum))
    field = (field - field.mean()) / (field.std() + 1e-12)
    grey = np.clip(127.5 + 40 * field, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def sample_photo() -> np.ndarray | None:
    try:
        import matplotlib
    except ImportError:
        return None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        return None
    from visrecur.recording.images import load_rgb

    return np.asarray(load_rgb(path))


def generate(size: int = 64) -> list[dict]:
    items = []
    for cycles in (2, 6):
        for orientation in (0, 45, 90, 135):
            items.append(dict(stimulus_id=f"grating_{orientation:03d}deg_{cycles}cyc", category="grating",
                              label=f"{orientation} deg", file="", image=grating(size, orientation, cycles)))
    for colour, rgb in COLOURS.items():
        for name in ("disc", "ring", "square", "triangle", "cross", "star"):
            items.append(dict(stimulus_id=f"shape_{name}_{colour}", category="shape", label=name, file="",
                              image=shape(size, name, rgb)))
    for seed in range(3):
        items.append(dict(stimulus_id=f"noise_pink_{seed}", category="noise", label="1/f noise", file="",
                          image=pink_noise(size, seed)))
    photo = sample_photo()
    if photo is not None:
        items.append(dict(stimulus_id="photo_grace_hopper", category="photo", label="face",
                          file="matplotlib/sample_data/grace_hopper.jpg", image=photo))
    return items
