"""Every bad input is refused in one line (``error: ...``, exit code 2, no traceback) or one exception
with the fix in its message, and leaves nothing behind: the working folder lists the same files before
and after. One row per case: the command (its in-process ``main(argv)``) or Python call, what it must
say. The README's "What the commands refuse" table lists the same cases."""
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


def _main(command):
    import analyses.latency
    import analyses.readout_generalization
    import analyses.readout_time
    import analyses.tsbn_decay
    import visrecur.record
    import visrecur.train

    return {"record": visrecur.record.main, "train": visrecur.train.main,
            "readout_time": analyses.readout_time.main, "tsbn_decay": analyses.tsbn_decay.main,
            "latency": analyses.latency.main, "readout_generalization": analyses.readout_generalization.main}[command]


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
