"""benchmarks/gpu_check.py, the one script a session with a GPU runs, wired end to end on the CPU: its
Table 1 section trains t = 5 then t = 10 with the paper's schedule compressed, and exports bf16 weights
that load by path as the model they came from."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import visrecur

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """CIFAR-size (32x32) images of 10 classes told apart by colour: 8 training, 2 test images per class."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 2)):
        for k in range(10):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            colour = np.array([25 * k, 255 - 25 * k, (80 * k) % 256])
            for i in range(n):
                pixels = np.clip(colour + rng.normal(0, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_table1_section_trains_both_readouts_and_exports_loadable_bf16_weights(colour_folder, tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    out = tmp_path / "out"
    code = gpu_check.main(["--dry-run", "--data-root", str(colour_folder), "--out", str(out), "--train-images",
                           "40", "--channels", "4", "8", "8", "--compile-timeout", "0", "--scratch",
                           str(tmp_path), "--skip", "paths", "equivalence", "training", "recording"])
    assert code == 0
    results = json.loads((out / "gpu_check.json").read_text())
    table1 = results["sections"]["table1"]
    assert table1["train_images"] == 40  # --train-images with --dry-run; else counted in the folder
    for readout in (5, 10):
        run = table1[f"t={readout}"]
        assert run["epochs"] == 1 and run["lr_steps"] == []  # --dry-run: one epoch, too short to compress
        assert run["metrics"][-1]["train_images"] == 40
        assert f"val_err_t{readout}" in run["metrics"][-1] and f"val_err_t{readout + 1}" not in run["metrics"][-1]
        model = visrecur.load(out / run["weights"])
        assert model.spec.readout_time == readout and model.spec.name == "frnn_3state_shared"
        stored = torch.load(out / run["weights"], weights_only=True)
        assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.bfloat16}
