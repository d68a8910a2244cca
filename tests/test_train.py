"""Training: recipes, exact resume after a kill, DDP with gloo, checkpoints, clear errors."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import visrecur
from visrecur import CheckpointError, zoo
from visrecur.checkpoint import atomic_save, load_state
from visrecur.train import TrainingError, build_config, lr_at, train

MODEL_ARGS = ["--model", "frnn_2state_shared", "--model-arg", "channels=[2,3]", "--model-arg", "input_size=8",
              "--readout-time", "3"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """3 classes told apart by colour, 8x8 PNGs, 16 training and 6 test images per class."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for split, n in (("train", 16), ("test", 6)):
        for k, colour in enumerate(colours):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                noise = rng.integers(-30, 30, (8, 8, 3))
                Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def run_train(*args, cwd=None, env_extra=None, launcher=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = (launcher or [sys.executable, "-m", "visrecur.train"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def common(root, out, epochs=3):
    return [*MODEL_ARGS, "--data-root", str(root), "--out", str(out), "--epochs", str(epochs),
            "--batch-size", "8", "--lr", "0.05", "--lr-steps", "2", "--threads", "1", "--no-progress"]


def test_paper_schedules():
    cifar = build_config("cifar10")
    assert (cifar.epochs, cifar.batch_size, cifar.momentum) == (60, 64, 0.9)
    lrs = [lr_at(cifar, e) for e in range(60)]
    assert lrs[0] == lrs[39] == 0.01
    assert lrs[40] == pytest.approx(0.001) and lrs[49] == pytest.approx(0.001)
    assert lrs[50] == pytest.approx(0.0001) and lrs[59] == pytest.approx(0.0001)
    imagenet = build_config("imagenet")
    lrs = [lr_at(imagenet, e) for e in range(12)]  # Matlab logspace(-1, -4, 12)
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(1e-4)
    np.testing.assert_allclose(np.diff(np.log10(lrs)), -3 / 11)
    assert imagenet.model_overrides["bn_affine"] is True
    with pytest.raises(TrainingError, match="unknown preset"):
        build_config("cifar100")


def test_training_learns_and_resume_after_a_kill_is_exact(tiny_folder, tmp_path):
    whole = run_train(*common(tiny_folder, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    rows = list(csv.DictReader(open(tmp_path / "whole" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_err_t3", "val_err_t2", "val_err_t3", "lr"} <= set(rows[0])
    assert float(rows[-1]["val_err_t3"]) < 2 / 3  # colour is easy: well below chance (2/3 error)
    # killed during epoch 2 (6 batches per epoch), then resumed from the end of epoch 1
    killed = run_train(*common(tiny_folder, tmp_path / "split"), "--stop-after-batches", "8")
    assert killed.returncode == 3
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = run_train(*common(tiny_folder, tmp_path / "split"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["val_err_t3"] for r in a["metrics"]] == [r["val_err_t3"] for r in b["metrics"]]
    # the file alone rebuilds the model
    model = visrecur.load(tmp_path / "whole" / "checkpoint.pt")
    assert model.spec.graph.states[1].channels == 3 and not model.training


def test_ddp_with_gloo_on_two_processes(tiny_folder, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                "-m", "visrecur.train"]
    result = run_train(*common(tiny_folder, tmp_path / "ddp", epochs=2), launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "ddp" / "metrics.csv")))
    assert len(rows) == 2
    # each rank trains on its half: together they see all 48 images once per epoch
    assert int(rows[0]["train_images"]) == 48
    assert visrecur.load(tmp_path / "ddp" / "checkpoint.pt") is not None


def test_existing_checkpoint_and_incompatible_resume(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert run_train(*common(tiny_folder, out, epochs=1)).returncode == 0
    again = run_train(*common(tiny_folder, out, epochs=1))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    other = [a if a != "channels=[2,3]" else "channels=[2,4]" for a in common(tiny_folder, out, epochs=2)]
    clash = run_train(*other, "--resume")
    assert clash.returncode == 2 and "cannot resume" in clash.stderr


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_folder, tmp_path):
    out = tmp_path / "nan"
    assert run_train(*common(tiny_folder, out, epochs=1)).returncode == 0
    before = (out / "checkpoint.pt").read_bytes()
    args = common(tiny_folder, out, epochs=3)
    args[args.index("--lr") + 1] = "inf"
    result = run_train(*args, "--resume")
    assert result.returncode == 2 and "loss became" in result.stderr
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("args,message", [
    (["--data-root", "/nonexistent/data"], "does not exist"),
    (["--preset", "mnist"], "unknown preset"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_train(*MODEL_ARGS, "--out", str(tmp_path / "o"), "--no-progress", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_wrong_layout_and_unwritable_output(tmp_path, tiny_folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    result = run_train(*MODEL_ARGS, "--data-root", str(flat), "--out", str(tmp_path / "o"), "--no-progress")
    assert result.returncode == 2 and "train/" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_train(*common(tiny_folder, blocker / "out", epochs=1))
    assert result.returncode == 2 and "cannot write" in result.stderr


def test_checkpoint_safety(tmp_path):
    model = zoo.build("frnn_2state_shared", channels=(2, 3), input_size=8)
    other = zoo.build("frnn_2state_shared", channels=(2, 4), input_size=8)
    with pytest.raises(CheckpointError, match="another shape"):
        load_state(other, model.state_dict())
    with pytest.raises(CheckpointError, match="does not exist"):
        visrecur.load(tmp_path / "missing.pt")
    atomic_save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a visrecur checkpoint"):
        visrecur.load(tmp_path / "plain.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"format": "visrecur-checkpoint-1", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        visrecur.load(tmp_path / "evil.pt")
    assert not list(tmp_path.glob(".*.tmp"))


def test_cifar10_in_torchvisions_layout(tmp_path, monkeypatch):
    """torchvision's CIFAR-10 reader on pickles written in its format (checksums patched: the real
    files cannot be downloaded here)."""
    import pickle

    import torchvision.datasets.cifar as cifar

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = [k % 10 for k in range(10)]
        with open(base / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": labels}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    cfg = build_config("cifar10", model="frnn_2state_shared", dataset="cifar10", data_root=str(tmp_path),
                       out=str(tmp_path / "run"), epochs=1, batch_size=10, progress=False, threads=1,
                       model_overrides={"channels": [2, 3], "readout_time": 3})
    threads = torch.get_num_threads()
    try:
        payload = train(cfg)
    finally:
        torch.set_num_threads(threads)
    assert payload["classes"] == [f"class{k}" for k in range(10)]
    assert payload["metrics"][0]["train_images"] == 50
