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
from visrecur import CheckpointError
from visrecur.architecture import zoo
from visrecur.artifacts.checkpoint import export_weights, load_state
from visrecur.training import TrainingError, build_config, lr_at, train

from conftest import free_port
from training_fixtures import colour_folder, tiny_config, train_in_process

MODEL_ARGS = ["--model", "frnn_2state_shared", "--model-arg", "channels=[2,3]", "--model-arg", "input_size=8",
              "--readout-time", "3"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """3 classes told apart by colour, 8x8 PNGs, 16 training and 6 test images per class."""
    return colour_folder(tmp_path_factory.mktemp("tiny"))


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_ddp_with_gloo_on_two_processes(tiny_folder, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "visrecur.train"]
    result = run_train(*common(tiny_folder, tmp_path / "ddp", epochs=2), launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "ddp" / "metrics.csv")))
    assert len(rows) == 2
    # each rank trains on its half: together they see all 48 images once per epoch
    assert int(rows[0]["train_images"]) == 48
    assert visrecur.load(tmp_path / "ddp" / "checkpoint.pt") is not None


@pytest.mark.slow
def test_existing_checkpoint_and_incompatible_resume(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert run_train(*common(tiny_folder, out, epochs=1)).returncode == 0
    again = run_train(*common(tiny_folder, out, epochs=1))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    other = [a if a != "channels=[2,3]" else "channels=[2,4]" for a in common(tiny_folder, out, epochs=2)]
    clash = run_train(*other, "--resume")
    assert clash.returncode == 2 and "cannot resume" in clash.stderr


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_folder, tmp_path):
    out = tmp_path / "nan"
    assert run_train(*common(tiny_folder, out, epochs=1)).returncode == 0
    before = (out / "checkpoint.pt").read_bytes()
    args = common(tiny_folder, out, epochs=3)
    args[args.index("--lr") + 1] = "1e38"
    result = run_train(*args, "--overwrite")  # --resume would refuse another --lr
    assert result.returncode == 2 and "loss became" in result.stderr
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--data-root", "/nonexistent/data"], "does not exist"),
    (["--preset", "mnist"], "unknown preset"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_train(*MODEL_ARGS, "--out", str(tmp_path / "o"), "--no-progress", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()  # refused before the output folder is made


@pytest.mark.slow
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
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
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
    assert payload.classes == [f"class{k}" for k in range(10)]
    assert payload.metrics[0]["train_images"] == 50


def test_resume_checks_the_run_and_extends_it(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"

    def tiny_config(root, out, **overrides):  # lr / 10 from the second epoch on
        return globals()["tiny_config"](root, out, **{"lr_steps": (1,), **overrides})

    first = train_in_process(tiny_config(tiny_folder, out))
    assert first.preprocess == {"crop_size": [8, 8], "resize_size": 8, "mean": [0.4914, 0.4822, 0.4465],
                                   "std": [0.247, 0.2435, 0.2616], "interpolation": "bilinear", "antialias": True}
    assert "scheduler" not in first.to_payload()
    for field, value, shown in (("lr", 0.1, "lr=0.05, not 0.1"), ("batch_size", 4, "batch_size=8, not 4"),
                                ("lr_steps", (3,), "lr_steps=[1], not [3]"),
                                ("limit_train", 12, "limit_train=None, not 12")):
        with pytest.raises(TrainingError, match=f"cannot resume .*{shown.replace('[', '.').replace(']', '.')}"):
            train_in_process(tiny_config(tiny_folder, out, resume=True, **{field: value}))
    with pytest.raises(TrainingError, match="--epochs 0 must be at least 1"):
        train_in_process(tiny_config(tiny_folder, out, resume=True, epochs=0))
    capsys.readouterr()
    extended = train_in_process(tiny_config(tiny_folder, out, resume=True, epochs=2))
    assert "extended from 1 to 2 epochs" in capsys.readouterr().out
    assert [row["epoch"] for row in extended.metrics] == [1, 2]
    assert [row["lr"] for row in extended.metrics] == [0.05, pytest.approx(0.005)]  # lr_at, set per epoch
    with pytest.raises(TrainingError, match="only a larger --epochs"):  # the run now has 2
        train_in_process(tiny_config(tiny_folder, out, resume=True, epochs=1))


def test_old_checkpoints_resume_and_load(tiny_folder, tmp_path):
    """Checkpoints written before the rename (config readout_times, a LambdaLR "scheduler" entry, only
    "normalization") still resume and load."""
    out = tmp_path / "old"
    payload = train_in_process(tiny_config(tiny_folder, out, loss_readout_times=(2, 3))).to_payload()
    payload["config"]["readout_times"] = payload["config"].pop("loss_readout_times")
    payload["scheduler"] = {"base_lrs": [0.05], "last_epoch": 1, "_step_count": 2, "lr_lambdas": [None]}
    del payload["preprocess"]
    torch.save(payload, out / "checkpoint.pt")
    model = visrecur.load(out / "checkpoint.pt")
    assert model.preprocess.crop_size == (8, 8) and model.preprocess.mean == (0.4914, 0.4822, 0.4465)
    resumed = train_in_process(tiny_config(tiny_folder, out, loss_readout_times=(2, 3), resume=True, epochs=2))
    assert len(resumed.metrics) == 2 and resumed.config["loss_readout_times"] == [2, 3]
    with pytest.raises(TrainingError, match="loss_readout_times"):
        train_in_process(tiny_config(tiny_folder, out, resume=True, epochs=2))


def test_export_weights_round_trip(tiny_folder, tmp_path):
    out = tmp_path / "run"
    payload = train_in_process(tiny_config(tiny_folder, out))
    export_weights(out / "checkpoint.pt", tmp_path / "slim.pt")
    slim = torch.load(tmp_path / "slim.pt", weights_only=True)
    assert "optimizer" not in slim and "rng" not in slim
    assert slim["preprocess"] == payload.preprocess and slim["classes"] == ["class0", "class1", "class2"]
    a, b = visrecur.load(out / "checkpoint.pt"), visrecur.load(tmp_path / "slim.pt")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert b.preprocess == a.preprocess


def test_export_weights_in_bf16_loads_as_the_rounded_float32_model(tiny_folder, tmp_path):
    out = tmp_path / "run"
    train_in_process(tiny_config(tiny_folder, out))
    export_weights(out / "checkpoint.pt", tmp_path / "bf16.pt", dtype=torch.bfloat16)
    full = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    slim = torch.load(tmp_path / "bf16.pt", weights_only=True)
    assert slim["stored_dtype"] == "bfloat16"
    for name, value in full.items():  # floats halved, counters (num_batches_tracked) untouched
        assert slim["model"][name].dtype == (torch.bfloat16 if value.is_floating_point() else value.dtype)
    model = visrecur.load(tmp_path / "bf16.pt")
    for name, value in model.state_dict().items():
        expected = full[name].to(torch.bfloat16).to(value.dtype) if full[name].is_floating_point() else full[name]
        assert value.dtype == full[name].dtype and torch.equal(value, expected), name


def test_paper_lr_steps_keep_the_schedule_fractions():
    from visrecur.training.config import TrainConfig, paper_lr_steps

    assert paper_lr_steps(60) == TrainConfig().lr_steps == (40, 50)  # Section 5: epochs 41-50 and 51-60
    assert paper_lr_steps(12) == (8, 10) and paper_lr_steps(10) == (6, 8) and paper_lr_steps(3) == (1, 2)
    assert paper_lr_steps(2) == () and paper_lr_steps(1) == ()
    for epochs in range(3, 121):
        cfg = TrainConfig(epochs=epochs, lr_steps=paper_lr_steps(epochs))
        rates = [lr_at(cfg, epoch) for epoch in range(epochs)]
        phases = [sum(r == pytest.approx(lr) for r in rates) for lr in (0.01, 0.001, 0.0001)]
        assert sum(phases) == epochs and rates == sorted(rates, reverse=True)
        assert phases[1] == phases[2] == max(1, round(epochs / 6))  # 10 and 10 of 60: a sixth each
        assert phases[0] >= phases[1]  # 40 of 60: the rest, never shorter than a later phase


def test_command_line_is_derived_from_the_config():
    from visrecur.training.config import TrainConfig, build_parser, parse_args

    cfg = parse_args(["--preset", "imagenet", "--lr", "0.5", "--loss-readout-times", "2", "3", "--no-progress",
                      "--model-arg", "channels=[2,3]"])
    assert (cfg.lr, cfg.epochs, cfg.lr_schedule, cfg.loss_readout_times) == (0.5, 12, "logspace", (2, 3))
    assert cfg.progress is False and cfg.model_overrides == {"bn_affine": True, "channels": [2, 3]}
    assert parse_args([]) == TrainConfig()  # no option given: the dataclass's defaults
    help_text = " ".join(build_parser().format_help().split())
    assert "number of epochs (default: 60; imagenet preset: 12)" in help_text
    assert "(default: 0.9)" in help_text  # momentum


def test_bad_options_are_one_line(capsys):
    from visrecur.train import main

    assert main(["--epochs", "0"]) == 2  # refused by TrainConfig itself, as from Python
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --epochs 0 must be at least 1")


def test_limit_is_class_balanced(tiny_folder):
    from visrecur.training.data import decode_folder

    _, labels, _ = decode_folder(tiny_folder / "train", limit=8, seed=0, progress=False)
    assert np.bincount(labels.numpy()).tolist() == [3, 3, 2]  # 8 = 2 per class + 2 to the first classes
    images_a, _, _ = decode_folder(tiny_folder / "train", limit=8, seed=0, progress=False)
    images_b, _, _ = decode_folder(tiny_folder / "train", limit=8, seed=0, progress=False)
    images_c, _, _ = decode_folder(tiny_folder / "train", limit=8, seed=1, progress=False)
    assert torch.equal(images_a, images_b) and not torch.equal(images_a, images_c)


def test_cifar_augment_matches_a_hand_made_crop_and_flip():
    from visrecur.training.data import cifar_augment

    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.uint8).view(2, 3, 5, 6)
    out = cifar_augment(images, torch.Generator().manual_seed(7), pad=2)
    # the same draws, in the same order, from the same seed
    g = torch.Generator().manual_seed(7)
    dy, dx = torch.randint(0, 5, (2,), generator=g), torch.randint(0, 5, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    for k in range(2):
        padded = np.zeros((3, 9, 10), dtype=np.uint8)
        padded[:, 2:7, 2:8] = images[k].numpy()
        crop = padded[:, dy[k]:dy[k] + 5, dx[k]:dx[k] + 6]
        expected = crop[:, :, ::-1] if flip[k] else crop
        np.testing.assert_array_equal(out[k].numpy(), expected)


def test_imagenet_style_loader_uses_the_models_preprocess(tiny_folder):
    from visrecur import Preprocess
    from visrecur.training.data import imagenet_loader

    pre = Preprocess((6, 6), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), resize_size=7)
    val = imagenet_loader(tiny_folder / "test", 4, False, 0, 0, size=6, preprocess=pre)
    images, labels = next(iter(val))
    assert images.shape == (4, 3, 6, 6) and labels.tolist() == [0, 0, 0, 0]
    by_hand = pre(Image.open(tiny_folder / "test" / "class0" / "0.png").convert("RGB"))
    assert torch.equal(images[0], by_hand)
    train_batch, _ = next(iter(imagenet_loader(tiny_folder / "train", 4, True, 0, 0, size=6, preprocess=pre)))
    assert train_batch.shape == (4, 3, 6, 6) and train_batch.dtype == torch.float32
