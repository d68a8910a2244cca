"""Every bad input is refused in one line (``error: ...``, exit code 2, no traceback) or one exception
with the fix in its message, and leaves nothing behind: the working folder lists the same files before
and after. One row per case: the command (its in-process ``main(argv)``) or Python call, what it must
say. docs/refusals.md ("What the commands refuse") lists the same cases."""
from __future__ import annotations

import importlib
import os
import urllib.error
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from visrecur.errors import CheckpointError, InputError, SpecError, TimeStepError, VisrecurError

M = ["--model", "frnn_2state_shared", "--no-progress"]  # untrained zoo model, 32x32 input
T = ["--model", "frnn_2state_shared", "--model-arg", "channels=[2,3]", "--model-arg", "input_size=8",
     "--readout-time", "3", "--batch-size", "4", "--epochs", "1", "--threads", "1", "--no-progress",
     "--data-root", "data", "--out", "run"]  # a tiny training on data/ into run/
NO_TRAIN = object()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs every row may point at, made once: good and bad stimuli, checkpoints, recordings, data."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    (root / "good").mkdir()
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "good" / f"{k}.png")
    np.save(root / "good.npy", rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8))
    np.save(root / "nan.npy", np.full((2, 8, 8, 3), np.nan))
    inf = rng.random((2, 8, 8, 3))
    inf[1, 2, 3, 0] = np.inf
    np.save(root / "inf.npy", inf)
    np.save(root / "object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    (root / "corrupt").mkdir()  # the second image is cut short: found before the first batch
    (root / "corrupt" / "0.png").write_bytes((root / "good" / "0.png").read_bytes())
    (root / "corrupt" / "1.png").write_bytes((root / "good" / "1.png").read_bytes()[:30])
    (root / "notimage.png").write_text("not a picture")
    # images no rule decodes truthfully (visrecur.recording.images), and one past a lowered pixel limit
    Image.fromarray(np.full((8, 8), 2.0, np.float32), "F").save(root / "float2.tif")
    Image.fromarray(np.full((8, 8), 70000, np.int32), "I").save(root / "int32.tif")
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(root / "big.png")  # 1200 pixels
    (root / "bigdir").mkdir()
    (root / "bigdir" / "a.png").write_bytes((root / "good" / "0.png").read_bytes())
    (root / "bigdir" / "b.png").write_bytes((root / "big.png").read_bytes())
    # arrays that are not pixels as stated (uint8 0..255 or floats 0..1)
    np.save(root / "float255.npy", rng.random((2, 8, 8, 3)) * 255)
    np.save(root / "bool.npy", np.ones((2, 8, 8, 3), bool))
    np.save(root / "twochannel.npy", np.zeros((2, 8, 8, 2), np.uint8))
    # RDM files no comparison can use, and files that are not what they say
    ids = [f"s{k}" for k in range(6)]
    varied = np.add.outer(np.arange(6.0), np.arange(6.0)) * (1 - np.eye(6))
    np.savez(root / "constant.npz", rdm=np.ones((6, 6)) - np.eye(6), stimulus_ids=ids)
    np.savez(root / "zero.npz", rdm=np.zeros((6, 6)), stimulus_ids=ids)
    np.savez(root / "repeated.npz", rdm=varied, stimulus_ids=["a", "a", "b", "c", "d", "e"])
    np.savez(root / "similarity.npz", rdm=varied + np.eye(6), stimulus_ids=ids)
    np.savez(root / "varied.npz", rdm=varied, stimulus_ids=ids)
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 cut short")
    np.save(root / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import xarray as xr

    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(root / "other.nc")  # netCDF, not a recording
    (root / "empty.pt").write_bytes(b"")
    from visrecur.architecture import zoo
    from visrecur.artifacts.checkpoint import FORMAT

    model = zoo.build("frnn_2state_shared", channels=(2, 3), input_size=8)
    from visrecur import Preprocess

    bare = {"format": FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict()}
    torch.save(bare, root / "bare.pt")
    torch.save({**bare, "preprocess": Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3).to_dict()}, root / "full.pt")
    whole = (root / "full.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[:len(whole) // 2])
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    (root / "text.nc").write_text("this is not netCDF\n")
    for name, content in (("resume-empty", b""), ("resume-truncated", whole[:len(whole) // 2])):
        (root / name).mkdir()
        (root / name / "checkpoint.pt").write_bytes(content)
    for split, n in (("train", 4), ("test", 2)):
        for c in range(2):
            folder = root / "data" / split / f"c{c}"
            folder.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    # an unfinished recording (srp:4, seed 0, default ms per step) and a finished one-epoch training
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import resolve
    from visrecur.train import main as train_main

    with pytest.raises(KeyboardInterrupt):
        record(load_model("frnn_2state_shared"), resolve(str(root / "good.npy")), root / "part.nc",
               reduction="srp:4", batch_size=1, progress=False, stop_after_batches=1)
    old = os.getcwd()
    os.chdir(root)
    try:
        assert train_main([*T, "--out", "trained"]) == 0
    finally:
        os.chdir(old)
    return root


@pytest.fixture(scope="module")
def recording(files):
    """A small in-memory recording (2 stimuli, steps 0..2 of frnn_2state_shared)."""
    from visrecur import Preprocess
    from visrecur.architecture import zoo
    from visrecur.recording import record
    from visrecur.recording.stimuli import from_array

    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), input_size=8, readout_time=3)
    stimuli = from_array(np.load(files / "good.npy"))
    return record(model, stimuli, progress=False, preprocess=Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3))


MODULES = {"record": "visrecur.record", "train": "visrecur.train", "evaluate": "visrecur.evaluate",
           "brainscore": "visrecur.brainscore.__main__", "readout_time": "analyses.readout_time",
           "tsbn_decay": "analyses.tsbn_decay", "latency": "analyses.latency", "masking": "analyses.masking",
           "parameters": "analyses.parameters", "transition_matrix": "analyses.transition_matrix",
           "readout_generalization": "analyses.readout_generalization"}


def _main(command):
    return importlib.import_module(MODULES[command]).main


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _stage(files, tmp_path, monkeypatch):
    """A working folder holding links to the inputs; rows run in it."""
    for item in files.iterdir():
        (tmp_path / item.name).symlink_to(item, target_is_directory=item.is_dir())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISRECUR_DATA", str(tmp_path / "no-shared-data"))


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr("torchvision.datasets.CIFAR10.download", refuse)


def _interrupt(monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("visrecur.training.loop.make_data", stop)


def _pixel_limit(monkeypatch):
    monkeypatch.setenv("VISRECUR_MAX_IMAGE_PIXELS", "1199")  # big.png has 1200


def _no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


# (id, command, argv, fragment of the one error line, monkeypatching or None)
COMMANDS = [
    # record: stimuli
    ("record-nan-array", "record", ["--stimuli", "nan.npy"], "non-finite pixel", None),
    ("record-inf-array", "record", ["--stimuli", "inf.npy"], "non-finite pixel", None),
    ("record-object-array", "record", ["--stimuli", "object.npy"], "object dtype", None),
    ("record-missing-path", "record", ["--stimuli", "photos/missing"], "does not exist", None),
    ("record-missing-npy", "record", ["--stimuli", "missing.npy"], "does not exist", None),
    ("record-missing-txt", "record", ["--stimuli", "missing.txt"], "does not exist", None),
    ("record-missing-file", "record", ["--stimuli", "a.png", "b.png"], "does not exist", None),
    # record: a reference timed model (visrecur.timed), asked for steps or readouts it does not have
    ("record-timed-past-steps", "record", ["--model", "cornet_z", "--stimuli", "good.npy", "--times", "4"],
     "step 4 is past the last step of every recorded area", None),
    ("record-timed-readout", "record", ["--model", "cornet_z", "--stimuli", "good.npy", "--readout-time", "2"],
     "reads out at steps [3], not at 2", None),
    ("record-unknown-word", "record", ["--stimuli", "imagenet"], "not understood", None),
    ("record-not-an-image", "record", ["--stimuli", "notimage.png", "--output", "o.nc"], "cannot read image", None),
    ("record-corrupt-image", "record", ["--stimuli", "corrupt", "--batch-size", "1", "--output", "o.nc"],
     "corrupt or truncated", None),
    ("record-missing-92", "record", ["--stimuli", "92images:none.mat"], "92-image set was not found", None),
    ("record-missing-cifar", "record", ["--stimuli", "cifar10-test:nocifar"], "cifar10-test:/path", None),
    # record: images decoded truthfully or refused (every PIL mode; the pixel limit alone and in a folder)
    ("record-float-image-range", "record", ["--stimuli", "float2.tif"], "float images must hold 0..1", None),
    ("record-int32-image-range", "record", ["--stimuli", "int32.tif"], "outside the 16-bit range", None),
    ("record-pixel-limit", "record", ["--stimuli", "big.png"], "raise the limit with --max-image-pixels 1200",
     _pixel_limit),
    ("record-pixel-limit-folder", "record", ["--stimuli", "bigdir"], "more than the limit of 1199", _pixel_limit),
    ("record-max-pixels-0", "record", ["--max-image-pixels", "0"], "--max-image-pixels 0 must be at least 1", None),
    # record: arrays that are not pixels as stated
    ("record-float255-array", "record", ["--stimuli", "float255.npy"], "float pixels must lie in 0..1", None),
    ("record-bool-array", "record", ["--stimuli", "bool.npy"], "holds booleans", None),
    ("record-two-channel-array", "record", ["--stimuli", "twochannel.npy"], "no channel axis", None),
    ("record-92-not-mat", "record", ["--stimuli", "92images:corrupt.npz"], "is not the 92-image set's", None),
    # record: options with no effect in the combination given
    ("record-seed-without-random", "record", ["--stimuli", "good.npy", "--seed", "3"], "draws nothing at random",
     None),
    ("record-pca-fit-without-pca", "record", ["--stimuli", "good.npy", "--pca-fit", "good.npy", "--output", "o.nc"],
     "fits nothing", None),
    ("record-format-vs-suffix", "record", ["--stimuli", "good.npy", "--format", "zarr", "--output", "o.nc"],
     "disagrees with --output", None),
    ("record-output-empty", "record", ["--stimuli", "good.npy", "--output", ""], "--output '' is empty", None),
    ("record-reduction-empty", "record", ["--stimuli", "good.npy", "--reduction", ""], "reduction '' is empty", None),
    ("record-times-repeated", "record", ["--stimuli", "good.npy", "--times", "1", "1"], "step 1 is given twice", None),
    ("record-states-repeated", "record", ["--stimuli", "good.npy", "--states", "h1", "h1"], "'h1' is given twice",
     None),
    ("record-state-onset-unknown", "record", ["--stimuli", "good.npy", "--state-onset", "V9=20"],
     "state onset for state 'V9'", None),
    # record: seeds and onsets out of range
    ("record-seed-neg-srp", "record", ["--stimuli", "good.npy", "--reduction", "srp:10", "--seed", "-1"],
     "seed -1 must be", None),
    ("record-onset-neg", "record", ["--stimuli", "good.npy", "--onset-ms", "-10"], ">= 0", None),
    ("record-state-onset-nan", "record", ["--stimuli", "good.npy", "--state-onset", "h1=nan"], "must be a finite", None),
    # record: counts
    ("record-limit-0", "record", ["--stimuli", "good.npy", "--limit", "0"], "--limit 0 must be at least 1", None),
    ("record-limit-neg", "record", ["--stimuli", "good.npy", "--limit", "-3"], "--limit -3 must be at least 1", None),
    ("record-batch-0", "record", ["--stimuli", "good.npy", "--batch-size", "0"], "at least 1", None),
    ("record-batch-neg", "record", ["--stimuli", "good.npy", "--batch-size", "-1"], "at least 1", None),
    ("record-readout-0", "record", ["--stimuli", "good.npy", "--readout-time", "0"], "readout times start at 1", None),
    ("record-readout-early", "record", ["--stimuli", "good.npy", "--readout-time", "1"], "too early", None),
    ("record-times-neg", "record", ["--stimuli", "good.npy", "--times", "-1"], "steps >= 0", None),
    ("record-state", "record", ["--stimuli", "good.npy", "--states", "V5"], "V5", None),
    ("record-not-int", "record", ["--limit", "three"], "invalid int value", None),
    # record: reductions, time mapping
    ("record-reduction-word", "record", ["--stimuli", "good.npy", "--reduction", "foo"], "not understood", None),
    ("record-reduction-size", "record", ["--stimuli", "good.npy", "--reduction", "pca:0"], "positive size", None),
    ("record-reduction-extra", "record", ["--stimuli", "good.npy", "--reduction", "mean:3"], "takes no size", None),
    ("record-ms-reversed", "record", ["--stimuli", "good.npy", "--ms-per-step", "50", "20"], "50", None),
    ("record-ms-three", "record", ["--ms-per-step", "10", "20", "30"], "give one duration or LOW HIGH", None),
    # record: device, output
    ("record-cuda-no-gpu", "record", ["--stimuli", "good.npy", "--device", "cuda"], "no CUDA GPU", _no_gpu),
    ("record-cuda3", "record", ["--stimuli", "good.npy", "--device", "cuda:3"], "only 1 GPU", _one_gpu),
    ("record-tpu", "record", ["--stimuli", "good.npy", "--device", "tpu9"], "not understood", None),
    ("record-output-sys", "record", ["--stimuli", "good.npy", "--output", "/sys/rec.nc"], "not a writable folder",
     None),
    ("record-output-suffix", "record", ["--stimuli", "good.npy", "--output", "o.csv"], "must end in .nc", None),
    ("record-resume-nothing", "record", ["--stimuli", "good.npy", "--output", "o.nc", "--resume"],
     "nothing to resume", None),
    ("record-format", "record", ["--format", "hdf"], "invalid choice", None),
    # record: checkpoints
    ("record-ckpt-missing", "record", ["--model", "missing.pt", "--stimuli", "good.npy"], "does not exist", None),
    ("record-ckpt-empty", "record", ["--model", "empty.pt", "--stimuli", "good.npy"], "is empty (0 bytes)", None),
    ("record-ckpt-truncated", "record", ["--model", "truncated.pt", "--stimuli", "good.npy"],
     "truncated, corrupted or not written by visrecur: copy it again", None),
    ("record-ckpt-foreign", "record", ["--model", "foreign.pt", "--stimuli", "good.npy"], "not a visrecur checkpoint",
     None),
    ("record-zoo-unknown", "record", ["--model", "frnn_9state", "--stimuli", "good.npy"], "frnn_9state", None),
    # record: resuming with other settings (the unfinished part.nc.partial.nc: srp:4, seed 0)
    ("record-resume-seed", "record", ["--stimuli", "good.npy", "--output", "part.nc", "--resume", "--reduction",
                                      "srp:4", "--seed", "1"], "reduction_seed", None),
    ("record-resume-ms", "record", ["--stimuli", "good.npy", "--output", "part.nc", "--resume", "--reduction",
                                    "srp:4", "--ms-per-step", "10", "20"], "time_mapping", None),
    ("record-resume-reduction", "record", ["--stimuli", "good.npy", "--output", "part.nc", "--resume"],
     "cannot resume", None),
    ("record-partial-exists", "record", ["--stimuli", "good.npy", "--output", "part.nc"], "--resume", None),
    # train: counts and numbers, checked before any data is read
    ("train-limit-train-neg", "train", [*T, "--limit-train", "-5"], "--limit-train -5 must be at least 1", None),
    ("train-limit-train-0", "train", [*T, "--limit-train", "0"], "--limit-train 0 must be at least 1", None),
    ("train-limit-val-0", "train", [*T, "--limit-val", "0"], "--limit-val 0 must be at least 1", None),
    ("train-epochs-0", "train", [*T, "--epochs", "0"], "--epochs 0 must be at least 1", None),
    ("train-batch-0", "train", [*T, "--batch-size", "0"], "--batch-size 0 must be at least 1", None),
    ("train-batch-neg", "train", [*T, "--batch-size", "-1"], "--batch-size -1 must be at least 1", None),
    ("train-lr-neg", "train", [*T, "--lr", "-1"], "--lr -1.0 must be greater than 0", None),
    ("train-lr-0", "train", [*T, "--lr", "0"], "must be greater than 0", None),
    ("train-momentum-neg", "train", [*T, "--momentum", "-0.5"], "must be at least 0", None),
    ("train-threads-0", "train", [*T, "--threads", "0"], "--threads 0 must be at least 1", None),
    ("train-workers-neg", "train", [*T, "--workers", "-1"], "--workers -1 must be at least 0", None),
    ("train-loss-times-0", "train", [*T, "--loss-readout-times", "0"], "readout times start at 1", None),
    ("train-loss-times-early", "train", [*T, "--loss-readout-times", "1"], "can read out from t=2", None),
    ("train-preset", "train", [*T, "--preset", "mnist"], "unknown preset", None),
    ("train-lr-final-with-steps", "train", [*T, "--lr-final", "0.001"], "--lr-final applies to --lr-schedule "
     "logspace", None),
    ("train-lr-steps-with-logspace", "train", [*T, "--lr-steps", "5", "--lr-schedule", "logspace"],
     "--lr-steps applies to --lr-schedule steps", None),
    ("train-lr-steps-neg", "train", [*T, "--lr-steps", "-5"], "--lr-steps -5 is not an epoch", None),
    ("train-download-folder", "train", [*T, "--download"], "applies to --dataset cifar10 only", None),
    ("train-readout-twice", "train", [*T, "--model-arg", "readout_time=4"], "give it once", None),
    ("train-momentum-1", "train", [*T, "--momentum", "1.5"], "must be below 1", None),
    ("train-seed-neg", "train", [*T, "--seed", "-1"], "--seed -1 must be a whole number", None),
    # train: model arguments
    ("train-model-arg-channels", "train", [*T, "--model-arg", "channels=[8]"], "one width per state", None),
    ("train-model-arg-json", "train", [*T, "--model-arg", "channels=[8,16"], "not valid JSON", None),
    ("train-model-arg-no-eq", "train", [*T, "--model-arg", "channels"], "must be KEY=VALUE", None),
    ("train-model-unknown", "train", [*T, "--model", "frnn_9state"], "frnn_9state", None),
    # train: data, device, output, resume
    ("train-data-root-missing", "train", [*T, "--data-root", "nodata"], "does not exist", None),
    ("train-download-offline", "train", [*T, "--dataset", "cifar10", "--data-root", "nocifar", "--download"],
     "cannot download CIFAR-10", _offline),
    ("train-cifar-missing", "train", [*T, "--dataset", "cifar10", "--data-root", "nocifar"], "--download", None),
    ("train-cuda-no-gpu", "train", [*T, "--device", "cuda"], "no CUDA GPU", _no_gpu),
    ("train-cuda3", "train", [*T, "--device", "cuda:3"], "only 1 GPU", _one_gpu),
    ("train-tpu", "train", [*T, "--device", "tpu9"], "not understood", None),
    ("train-out-sys", "train", [*T, "--out", "/sys/run"], "not a writable folder", None),
    ("train-resume-nothing", "train", [*T, "--resume"], "nothing to resume", None),
    ("train-resume-empty", "train", [*T, "--out", "resume-empty", "--resume"], "is empty (0 bytes)", None),
    ("train-resume-truncated", "train", [*T, "--out", "resume-truncated", "--resume"], "copy it again", None),
    ("train-resume-mismatch", "train", [*T, "--out", "trained", "--resume", "--lr", "0.5"], "lr=", None),
    ("train-resume-fewer-epochs", "train", [*T, "--out", "trained", "--resume", "--epochs", "1",
                                            "--lr-schedule", "logspace"], "cannot resume", None),
    ("train-checkpoint-exists", "train", [*T, "--out", "trained"], "pass --resume", None),
    ("record-trained-readout", "record", ["--model", "trained/checkpoint.pt", "--stimuli", "good.npy",
                                          "--states", "V1"], "unknown state", None),
    # analyses: output paths checked before any work
    ("readout-out-suffix", "readout_time", ["--out", "r.txt"], "is not a .csv file name", None),
    ("readout-out-unwritable", "readout_time", ["--out", "/sys/r.csv"], "refuses new files", None),
    ("parameters-out-folder", "parameters", ["--out", "good"], "is not a .csv file name", None),
    ("generalization-out-unwritable", "readout_generalization", ["--out", "/sys/g.csv"], "refuses new files", None),
    ("latency-out-dir-file", "latency", ["--out-dir", "good.npy"], "not a writable folder", None),
    ("transition-out-dir-sys", "transition_matrix", ["--out-dir", "/sys/t"], "not a writable folder", None),
    ("masking-seed-neg", "masking", ["--seed", "-1"], "--seed -1 must be a whole number", None),
    ("evaluate-json-folder", "evaluate", ["--json", "good"], "must name a .json file", None),
    ("evaluate-limit-0", "evaluate", ["--limit", "0"], "--limit 0 must be at least 1", None),
    ("brainscore-visual-degrees", "brainscore", ["plugin", "--model", "frnn_4state_cifar10", "--out", "p",
                                                 "--visual-degrees", "-8"], "positive number of degrees", None),
    # analyses
    ("readout-limit-neg", "readout_time", ["--limit", "-5"], "--limit -5 must be at least 1", None),
    ("readout-recalibrate-0", "readout_time", ["--recalibrate", "0"], "--recalibrate 0 must be at least 1", None),
    ("readout-times-0", "readout_time", ["--readout-times", "0"], "readout times start at 1", None),
    ("readout-ckpt-empty", "readout_time", ["--checkpoint", "empty.pt"], "is empty (0 bytes)", None),
    ("readout-ckpt-truncated", "readout_time", ["--checkpoint", "truncated.pt"], "copy it again", None),
    ("readout-data-missing", "readout_time", ["--checkpoint", "full.pt", "--data-root", "nodata"], "does not exist",
     None),
    ("readout-ckpt-bare", "readout_time", ["--checkpoint", "bare.pt"], "does not say its preprocessing", None),
    ("tsbn-ckpt-truncated", "tsbn_decay", ["--model", "truncated.pt"], "copy it again", None),
    # --augment-calibration only says how a recalibration draws its images
    ("readout-augment-alone", "readout_time", ["--augment-calibration"], "--augment-calibration says", None),
    ("readout-augment-recalibrate-0", "readout_time", ["--augment-calibration", "--recalibrate", "0"],
     "--recalibrate 0 must be at least 1", None),
    ("tsbn-augment-alone", "tsbn_decay", ["--augment-calibration"], "--augment-calibration says", None),
    ("latency-augment-alone", "latency", ["--augment-calibration"], "--augment-calibration says", None),
    ("generalization-augment-alone", "readout_generalization", ["--augment-calibration"],
     "--augment-calibration says", None),
    ("generalization-steps-alone", "readout_generalization", ["--recalibrate-steps", "past"],
     "--recalibrate-steps says which statistics", None),
    ("generalization-after-first-state-frnn", "readout_generalization",
     ["--model", "frnn_4state_cifar10", "--recalibrate", "4", "--recalibrate-steps", "after-first-state"],
     "is fully recurrent", None),
]


@pytest.mark.parametrize("command,argv,fragment,patch", [row[1:] for row in COMMANDS],
                         ids=[row[0] for row in COMMANDS])
def test_command_refuses_in_one_line(command, argv, fragment, patch, files, tmp_path, monkeypatch, capsys):
    _stage(files, tmp_path, monkeypatch)
    if patch:
        patch(monkeypatch)
    before = _listing(tmp_path)
    argv = [*M, *argv] if command == "record" and "--model" not in argv else argv
    try:
        code = _main(command)(argv)
    except SystemExit as exit_:  # argparse's own checks
        code = exit_.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert fragment in errors[0], errors[0]
    if command != "train":  # only training has --download and --data-root
        assert "--download" not in errors[0] and "--data-root" not in errors[0] or command == "readout_time"
    assert errors[0].rstrip().endswith((")", ".", "'", "]", "help", "again", "bytes)")) or len(errors[0]) < 400
    assert _listing(tmp_path) == before


def test_train_ctrl_c_says_how_to_continue(files, tmp_path, monkeypatch, capsys):
    _stage(files, tmp_path, monkeypatch)
    _interrupt(monkeypatch)
    before = _listing(tmp_path)
    code = _main("train")(T)
    err = capsys.readouterr().err
    assert code == 130 and "interrupted; continue with --resume" in err and "Traceback" not in err
    assert _listing(tmp_path) == before  # interrupted before training started: no empty run/


def test_loss_readout_times_past_the_model_extend_it_and_say_so(files, tmp_path, monkeypatch, capsys):
    """--loss-readout-times 9 on a model built for t <= 3: time_steps becomes 9, printed; nothing silent."""
    from visrecur.training.config import parse_args
    from visrecur.training import train

    _stage(files, tmp_path, monkeypatch)
    payload = train(parse_args([*T, "--loss-readout-times", "9", "--eval-readout-times", "9"]))
    out = capsys.readouterr().out
    assert "extends its time_steps to 9" in out and payload.spec["time_steps"] == 9


# (id, call, exception type, fragment); every call gets (files, recording)
def _record_api(files, **kwargs):
    from visrecur import Preprocess
    from visrecur.architecture import zoo
    from visrecur.recording import record
    from visrecur.recording.stimuli import from_array

    model = zoo.build("frnn_2state_shared", channels=(2, 3), input_size=8)
    stimuli = kwargs.pop("stimuli", None) or from_array(np.load(files / "good.npy"))
    return record(model, stimuli, progress=False, preprocess=Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3), **kwargs)


def _m(module):
    return importlib.import_module(module)


def _mapping(**kwargs):
    return _m("visrecur.timing").TimeMapping(**kwargs)


def _preprocess(*args):
    return _m("visrecur.recording.preprocess").Preprocess(*args)


def _rdm_file(f, name):
    return _m("visrecur.neural.targets").load_rdm_file(f / name)


def _resolve(*args, **kwargs):
    from visrecur.recording.stimuli import resolve

    return resolve(*args, **kwargs)


CALLS = [
    ("state_array-unknown", lambda f, r: importlib.import_module("visrecur.artifacts.recordings").state_array(r, "V3"),
     InputError, "not in this recording"),
    ("to_neuroids-time", lambda f, r: importlib.import_module("visrecur.artifacts.recordings").to_neuroids(r, times=[9]),
     InputError, "[9] are not in this recording"),
    ("to_neuroids-state", lambda f, r: importlib.import_module("visrecur.artifacts.recordings").to_neuroids(r, ["V3"]),
     InputError, "not in this recording"),
    ("open_recording-text", lambda f, r: importlib.import_module("visrecur.artifacts.recordings").open_recording(f / "text.nc"),
     InputError, "cannot be opened as a recording"),
    ("open_recording-missing", lambda f, r: importlib.import_module("visrecur.artifacts.recordings").open_recording("no.nc"),
     InputError, "does not exist"),
    ("load-empty", lambda f, r: __import__("visrecur").load(f / "empty.pt"), CheckpointError, "0 bytes"),
    ("load-truncated", lambda f, r: __import__("visrecur").load(f / "truncated.pt"), CheckpointError, "copy it again"),
    ("load-missing", lambda f, r: __import__("visrecur").load(f / "none.pt"), CheckpointError, "does not exist"),
    ("resolve-limit-0", lambda f, r: _resolve("builtin", limit=0), InputError, "at least 1"),
    ("resolve-limit-neg", lambda f, r: _resolve("builtin", limit=-3), InputError, "at least 1"),
    ("from_array-nan", lambda f, r: _resolve(str(f / "nan.npy")), InputError, "non-finite"),
    ("from_array-shape", lambda f, r: importlib.import_module("visrecur.recording.stimuli").from_array(np.zeros(5)), InputError,
     "first axis"),
    ("record-batch-0", lambda f, r: _record_api(f, batch_size=0), InputError, "at least 1"),
    ("record-readout-0", lambda f, r: _record_api(f, readout_time=0), SpecError, "too early"),
    ("record-times-neg", lambda f, r: _record_api(f, times=[-1]), TimeStepError, "steps >= 0"),
    ("record-device", lambda f, r: _record_api(f, device="tpu9"), InputError, "not understood"),
    ("record-corrupt", lambda f, r: _record_api(f, stimuli=_resolve(str(f / "corrupt")), output="o.nc",
                                                batch_size=1), InputError, "corrupt or truncated"),
    ("build-channels", lambda f, r: importlib.import_module("visrecur.architecture.zoo").build("frnn_2state_shared", channels=[8]), SpecError,
     "one width per state"),
    ("build-beyond-trained", lambda f, r: importlib.import_module("visrecur.architecture.zoo").build("frnn_2state_shared",
                                                                            beyond_trained="error")(
        torch.zeros(1, 3, 32, 32), readout_time=9), VisrecurError, ""),
    ("spec-depth-0", lambda f, r: importlib.import_module("visrecur.architecture.zoo").spec("frnn_2state_shared").depth(0), SpecError,
     "too early"),
    ("spec-parameters-0", lambda f, r: importlib.import_module("visrecur.architecture.zoo").spec("frnn_2state_shared").effective_parameters(0),
     SpecError, "too early"),
    ("model-float64", lambda f, r: importlib.import_module("visrecur.architecture.zoo").build("frnn_2state_shared")(
        torch.zeros(1, 3, 32, 32, dtype=torch.float64)), InputError, "float64"),
]


# the categories behind the outside sweep's Python cases: a wrong type to every entry point, a value out of
# range, an option with no effect in the combination given, data that would give silent NaN or wrong pixels
NEURAL = "visrecur.neural"
CALLS += [
    # zoo and checkpoints: wrong types
    ("build-none", lambda f, r: __import__("visrecur").build(None), SpecError, "must be a str"),
    ("spec-int", lambda f, r: __import__("visrecur").spec(5), SpecError, "must be a str"),
    ("build-channels-str", lambda f, r: __import__("visrecur").build("frnn_2state_shared", channels="ab"), SpecError,
     "wrong type"),
    ("build-classes-0", lambda f, r: __import__("visrecur").build("frnn_2state_shared", num_classes=0), SpecError,
     "num_classes=0 must be"),
    ("load-int", lambda f, r: __import__("visrecur").load(5), CheckpointError, "must be a file path"),
    ("load-zoo-name", lambda f, r: __import__("visrecur").load("frnn_2state_shared"), CheckpointError,
     "is a zoo architecture, not trained weights"),
    ("load-map-location", lambda f, r: __import__("visrecur").load(f / "full.pt", map_location="tpu9"),
     CheckpointError, "is not a torch device"),
    # record (every call form: visrecur.record is the same function): wrong types and inert options
    ("record-preprocess-dict", lambda f, r: __import__("visrecur").record(
        _m("visrecur.architecture.zoo").build("frnn_2state_shared"), _resolve(str(f / "good.npy")),
        preprocess={"crop_size": 8}), InputError, "must be a visrecur.Preprocess"),
    ("record-output-int", lambda f, r: _record_api(f, output=5), InputError, "output must be a file path"),
    ("record-states-str", lambda f, r: _record_api(f, states="h1"), InputError, "list of names"),
    ("record-states-empty", lambda f, r: _record_api(f, states=[]), InputError, "would record nothing"),
    ("record-times-fraction", lambda f, r: _record_api(f, times=[1.5]), TimeStepError, "whole time steps"),
    ("record-times-empty", lambda f, r: _record_api(f, times=[]), TimeStepError, "would record nothing"),
    ("record-pca-fit-inert", lambda f, r: _record_api(f, pca_fit=_resolve(str(f / "good.npy"))), InputError,
     "fits nothing"),
    ("record-resume-no-output", lambda f, r: _record_api(f, resume=True), InputError, "no output was given"),
    ("record-overwrite-no-output", lambda f, r: _record_api(f, overwrite=True), InputError, "no output was given"),
    ("reduction-seed-neg", lambda f, r: _m("visrecur.recording.reductions").Reduction.parse("srp:10", -1),
     InputError, "seed -1"),
    # time mapping: not numbers, out of range, wrong containers, unknown fields
    ("latency-neg", lambda f, r: _mapping().latency(-1), VisrecurError, "before step 0"),
    ("latency-str", lambda f, r: _mapping().latency("a"), VisrecurError, "finite numbers >= 0"),
    ("latency-none", lambda f, r: _mapping().latency(None), VisrecurError, "finite numbers >= 0"),
    ("latency-inf", lambda f, r: _mapping().latency(float("inf")), VisrecurError, "finite numbers >= 0"),
    ("bins-neg", lambda f, r: _mapping().bins([-1]), VisrecurError, "before step 0"),
    ("steps-at-nan", lambda f, r: _mapping().steps_at(float("nan")), VisrecurError, "finite number"),
    ("mapping-onset-neg", lambda f, r: _mapping(onset_ms=-10), VisrecurError, ">= 0"),
    ("mapping-state-onset-list", lambda f, r: _mapping(state_onset_ms=[1, 2]), VisrecurError, "must be a mapping"),
    ("mapping-from-none", lambda f, r: _m("visrecur.timing").TimeMapping.from_dict(None), VisrecurError,
     "must be a dict"),
    ("mapping-replace-unknown", lambda f, r: _mapping().replace(colour=1), VisrecurError, "has no field"),
    # preprocessing
    ("preprocess-crop-none", lambda f, r: _preprocess(None, (0,) * 3, (1,) * 3), InputError, "whole numbers"),
    ("preprocess-crop-fraction", lambda f, r: _preprocess(2.5, (0,) * 3, (1,) * 3), InputError, "whole numbers"),
    ("preprocess-mean-none", lambda f, r: _preprocess(8, None, (1,) * 3), InputError, "3 numbers each"),
    ("preprocess-std-nan", lambda f, r: _preprocess(8, (0,) * 3, (float("nan"),) * 3), InputError, "finite"),
    ("preprocess-call-path", lambda f, r: _preprocess(8, (0,) * 3, (1,) * 3)("a.png"), InputError,
     "RGB PIL image"),
    ("preprocess-from-none", lambda f, r: _m("visrecur.recording.preprocess").Preprocess.from_dict(None),
     InputError, "must be a dict"),
    # stimuli: wrong types, pixels outside the stated ranges, ids that do not fit
    ("resolve-none", lambda f, r: _resolve(None), InputError, "stimuli must be a word"),
    ("resolve-int", lambda f, r: _resolve(5), InputError, "stimuli must be a word"),
    ("resolve-limit-str", lambda f, r: _resolve("builtin", limit="3"), InputError, "whole number"),
    ("from_array-float255", lambda f, r: _resolve(str(f / "float255.npy")), InputError, "float pixels"),
    ("from_array-int300", lambda f, r: _m("visrecur.recording.stimuli").from_array(np.full((2, 8, 8, 3), 300)),
     InputError, "integer pixels"),
    ("from_array-ids", lambda f, r: _m("visrecur.recording.stimuli").from_array(
        np.zeros((2, 8, 8, 3), np.uint8), ids=["a"]), InputError, "one id per stimulus"),
    ("load_rgb-float-range", lambda f, r: _m("visrecur.recording.images").load_rgb(f / "float2.tif"), InputError,
     "float images must hold 0..1"),
    ("to_rgb-hsv", lambda f, r: _m("visrecur.recording.images").to_rgb(Image.new("HSV", (2, 2))), InputError,
     "mode 'HSV'"),
    ("max-pixels-0", lambda f, r: _m("visrecur.recording.images").set_max_image_pixels(0), InputError,
     "whole number"),
    # recordings
    ("open_recording-int", lambda f, r: _m("visrecur.artifacts.recordings").open_recording(5), InputError,
     "must be a file path"),
    ("open_recording-netcdf", lambda f, r: _m("visrecur.artifacts.recordings").open_recording(f / "other.nc"),
     InputError, "not a visrecur recording"),
    ("state_array-none", lambda f, r: _m("visrecur.artifacts.recordings").state_array(None, "h1"), InputError,
     "xarray.Dataset"),
    ("to_neuroids-str", lambda f, r: _m("visrecur.artifacts.recordings").to_neuroids(r, "h1"), InputError,
     "list of names"),
    ("latency-state", lambda f, r: _m("visrecur.artifacts.recordings").latency(r, "V9"), InputError,
     "not in this recording"),
    # RDMs: files that give silent NaN scores or are not what they say
    ("rdm-constant", lambda f, r: _rdm_file(f, "constant.npz"), InputError, "is constant (1)"),
    ("rdm-zero", lambda f, r: _rdm_file(f, "zero.npz"), InputError, "is all zero"),
    ("rdm-repeated-ids", lambda f, r: _rdm_file(f, "repeated.npz"), InputError, "'a' appears more than once"),
    ("rdm-similarity", lambda f, r: _rdm_file(f, "similarity.npz"), InputError, "similarity matrix"),
    ("rdm-corrupt-npz", lambda f, r: _rdm_file(f, "corrupt.npz"), InputError, "truncated or corrupted"),
    ("rdm-pickled-npy", lambda f, r: _m("visrecur.neural.targets").load_rdm_file(f / "pickled.npy", stimuli=["a"]),
     InputError, "Python objects"),
    ("rdm-ids-file-missing", lambda f, r: _m("visrecur.neural.targets").load_rdm_file(f / "varied.npz",
                                                                                      stimuli="none.txt"),
     InputError, "does not exist"),
    ("rdm-path-none", lambda f, r: _m("visrecur.neural.targets").load_rdm_file(None), InputError,
     "must be a file path"),
    ("target-none", lambda f, r: _m("visrecur.neural.targets").load_target(None), InputError, "a target must be"),
    ("as_rdm-two", lambda f, r: _m(NEURAL).as_rdm(np.array([[0, 1], [1, 0.0]]), ["a", "b"]), InputError,
     "at least 3"),
    ("as_rdm-ids-none", lambda f, r: _m(NEURAL).as_rdm(np.ones((3, 3)) - np.eye(3), None), InputError,
     "stimulus ids as a list"),
    ("model_rdms-none", lambda f, r: _m(NEURAL).model_rdms(None), InputError, "xarray.Dataset"),
    ("model_rdms-states-str", lambda f, r: _m(NEURAL).model_rdms(r, states="h1"), InputError, "list of names"),
    ("compare-lengths", lambda f, r: _m(NEURAL).compare(np.zeros(5), np.zeros(4)), InputError, "rows of one length"),
    ("rsa_scores-none", lambda f, r: _m(NEURAL).rsa_scores(None, None), InputError, "xarray.DataArray"),
    ("peak-none", lambda f, r: _m(NEURAL).peak(None), InputError, "xarray.DataArray"),
    ("meg_scores-none", lambda f, r: _m("visrecur.neural.meg").meg_scores(None, None), InputError,
     "xarray.DataArray"),
    ("assembly-none", lambda f, r: _m("visrecur.neural.encoding").check_assembly(None), InputError,
     "xarray.DataArray"),
    ("meg-fit-seed", lambda f, r: _m("visrecur.neural.meg").fit_step_latency(None, None, "h1", seed=-1),
     InputError, "seed (--seed) -1"),
    ("contrast-not-scores", lambda f, r: _m(NEURAL).peak_contrast(None, None, "IT", "EVC"), InputError,
     "xarray.Dataset"),
]


@pytest.mark.parametrize("call,kind,fragment", [row[1:] for row in CALLS], ids=[row[0] for row in CALLS])
def test_python_call_refuses(call, kind, fragment, files, recording, tmp_path, monkeypatch):
    _stage(files, tmp_path, monkeypatch)
    before = _listing(tmp_path)
    with pytest.raises(kind) as raised:
        call(files, recording)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
    assert _listing(tmp_path) == before


def test_unfinished_recording_warns_when_opened(files, tmp_path, monkeypatch):
    from visrecur.artifacts.recordings import open_recording

    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _record_api(files, output="u.nc", batch_size=1, stop_after_batches=1)
    with pytest.warns(UserWarning, match="unfinished recording"):
        ds = open_recording(tmp_path / "u.nc.partial.nc")
    assert not ds["recorded"].values.all()
    ds.close()


def test_reductions_that_do_less_than_asked_say_so(files):
    with pytest.warns(UserWarning, match="PCA components, not 100"):
        ds = _record_api(files, reduction="pca:100")
    assert "not 100" in ds.attrs["reduction_notes"]
    with pytest.warns(UserWarning, match="it is not pooled"):
        ds = _record_api(files, reduction="pool:64")
    assert "not pooled" in ds.attrs["reduction_notes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert _record_api(files, reduction="pool:2").attrs["reduction_notes"] == ""


def test_gitignore_covers_the_readme_outputs():
    from pathlib import Path

    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().split()
    for pattern in ("rec.zarr", "/recordings/", "/results/", "/runs/", "*.nbconvert.ipynb"):
        assert pattern in ignored


def test_data_on_device_on_the_cpu_says_it_does_nothing():
    from visrecur.training.config import build_config
    from visrecur.training.loop import data_device

    with pytest.warns(UserWarning, match="no effect on the CPU"):
        assert data_device(build_config(data_on_device=True), "cpu") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert data_device(build_config(), "cpu") is None
