"""The GPU paths, exercised on the CPU by the same code: device-resident batches (crops and flips made
by one gather), training with no per-step host reads, the CUDA-graph step (replayed by a CPU stand-in),
recording with loader processes, and their bad input."""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from visrecur.training import data
from visrecur.architecture import zoo
from visrecur.training.cuda_graphs import EagerBackend
from visrecur.nn.model import FRNN
from visrecur.training import TrainingError
from visrecur.training.step import EpochTotals, TrainStep

from training_fixtures import colour_folder, tiny_config, train_in_process

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """3 classes told apart by colour, 8x8 PNGs, 16 training and 6 test images per class."""
    return colour_folder(tmp_path_factory.mktemp("tiny"))


def by_hand(image, dy, dx, flip, pad=4):
    """Zero-pad, cut the window at (dy, dx), mirror: numpy, one image (C, H, W)."""
    c, h, w = image.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=image.dtype)
    padded[:, pad:pad + h, pad:pad + w] = image
    window = padded[:, dy:dy + h, dx:dx + w]
    return window[:, :, ::-1] if flip else window


# --- device-resident batches -----------------------------------------------------------------------
def test_crops_and_flips_match_hand_made_windows_for_planted_offsets():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(1, 256, (6, 3, 7, 9), dtype=np.uint8))
    # shifts -4 (offset 0), +4 (offset 8), none (4), and mixed; flipped and not
    dy = torch.tensor([0, 8, 4, 4, 1, 7])
    dx = torch.tensor([0, 8, 4, 0, 6, 2])
    flip = torch.tensor([False, True, False, True, True, False])
    out = data.crop_flip(images, dy, dx, flip, pad=4)
    for k in range(6):
        np.testing.assert_array_equal(out[k].numpy(), by_hand(images[k].numpy(), int(dy[k]), int(dx[k]), bool(flip[k])))
    # offset 4, no flip is the image itself; offset 0 shifts it 4 pixels down and right behind zeros
    assert torch.equal(out[2], images[2])
    assert (out[0][:, :4].sum() == 0) and torch.equal(out[0][:, 4:, 4:], images[0][:, :3, :5])


def test_offsets_cover_every_shift_from_minus_4_to_4_and_half_are_flipped():
    dy, dx, flip = data.draw_crops(18_000, torch.Generator().manual_seed(3))
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9 and counts.min() > 0  # offsets 0..8: shifts -4..4, nothing else
        assert (counts.float() / 2000 - 1).abs().max() < 0.1  # uniform: 2,000 each expected
    assert abs(flip.float().mean().item() - 0.5) < 0.02
    assert abs(np.corrcoef(dy.numpy(), dx.numpy())[0, 1]) < 0.03  # drawn independently


def test_device_batches_equal_the_old_recipe_computed_by_hand():
    """Every batch of an epoch: the shuffle, then per batch row offsets, column offsets and flips from one
    generator (the order the CPU batches always drew them in), normalised; computed image by image."""
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 256, (10, 3, 6, 6), dtype=np.uint8))
    labels = torch.arange(10) % 3
    batches = data.TensorBatches(images, labels, 4, MEAN, STD, seed=5, device="cpu")
    got = list(batches.batches(epoch=2))
    g = torch.Generator().manual_seed(5 * 100_003 + 2)
    order = torch.randperm(10, generator=g)
    assert [len(b[1]) for b in got] == [4, 4, 2]
    for k, (x, y) in enumerate(got):
        index = order[4 * k:4 * k + 4]
        n = len(index)
        dy, dx = torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g)
        flip = torch.rand(n, generator=g) < 0.5
        assert torch.equal(y, labels[index])
        for j, i in enumerate(index.tolist()):
            crop = by_hand(images[i].numpy(), int(dy[j]), int(dx[j]), bool(flip[j])).astype(np.float32) / 255
            expected = (crop - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
            np.testing.assert_allclose(x[j].numpy(), expected, rtol=0, atol=1e-6)
    again = [b[0] for b in data.TensorBatches(images, labels, 4, MEAN, STD, seed=5).batches(epoch=2)]
    assert all(torch.equal(a, b[0]) for a, b in zip(again, got))  # device=None: the very same values
    validation = data.TensorBatches(images, labels, 4, MEAN, STD, train=False, device="cpu")
    assert torch.equal(torch.cat([y for _, y in validation.batches(0)]), labels)  # in order, not shuffled


# --- training without per-step host reads -----------------------------------------------------------
def reference_epoch(root, cfg):
    """The training loop as it was (a host read of loss and errors after every step), on batches made
    image by image: the sums that train() must reproduce from its device-side totals."""
    torch.manual_seed(cfg.seed)
    spec = zoo.spec(cfg.model, **cfg.model_overrides)
    model = FRNN(spec)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    images, labels, _ = data.decode_folder(root / "train", progress=False)
    g = torch.Generator().manual_seed(cfg.seed * 100_003)
    order = torch.randperm(len(labels), generator=g)
    loss_sum, n, wrong = 0.0, 0, {2: 0, 3: 0}
    model.train()
    for start in range(0, len(order), cfg.batch_size):
        index = order[start:start + cfg.batch_size]
        m = len(index)
        dy, dx = torch.randint(0, 9, (m,), generator=g), torch.randint(0, 9, (m,), generator=g)
        flip = torch.rand(m, generator=g) < 0.5
        crops = [by_hand(images[i].numpy(), int(dy[j]), int(dx[j]), bool(flip[j]))
                 for j, i in enumerate(index.tolist())]
        x = data.normalize(torch.from_numpy(np.stack(crops).copy()), MEAN, STD)
        y = labels[index]
        logits = model(x, readout_time=[2, 3])
        loss = F.cross_entropy(logits[3], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * m
        n += m
        for t in (2, 3):
            wrong[t] += (logits[t].argmax(1) != y).sum().item()
    return loss_sum / n, {t: w / n for t, w in wrong.items()}


@pytest.mark.parametrize("on_device", [True, False])
def test_training_gives_the_losses_of_the_per_step_reference(tiny_folder, tmp_path, on_device):
    cfg = tiny_config(tiny_folder, tmp_path / "run", data_on_device=on_device)
    row = train_in_process(cfg).metrics[0]
    loss, errors = reference_epoch(tiny_folder, cfg)
    assert row["train_images"] == 48
    assert row["train_loss"] == pytest.approx(loss, rel=1e-6)
    assert row["train_err_t2"] == pytest.approx(errors[2]) and row["train_err_t3"] == pytest.approx(errors[3])


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def count_host_reads(monkeypatch):
    counts = {name: 0 for name in HOST_READS}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_host_reads_do_not_grow_with_the_number_of_steps(tiny_folder, tmp_path, monkeypatch):
    """48 training images in 2 batches or in 12: the same number of host reads (once per epoch), where the
    per-step loop made 3 reads per batch."""
    counts = count_host_reads(monkeypatch)
    torch.zeros(()).item()
    assert counts["item"] == 1  # the counting sees reads
    reads = {}
    for batch in (24, 4):
        for name in counts:
            counts[name] = 0
        train_in_process(tiny_config(tiny_folder, tmp_path / f"b{batch}", batch_size=batch, epochs=2))
        reads[batch] = dict(counts)
    assert reads[24] == reads[4]
    # and they do happen every LOG_EVERY batches when an epoch is that long
    monkeypatch.setattr("visrecur.training.loop.LOG_EVERY", 3)
    for name in counts:
        counts[name] = 0
    train_in_process(tiny_config(tiny_folder, tmp_path / "log", batch_size=4, epochs=2))
    assert counts["tolist"] - reads[4]["tolist"] == 2 * (12 // 3)  # 4 progress reads per epoch


def test_a_non_finite_loss_names_its_batch_found_on_the_device(tiny_folder, tmp_path):
    out = tmp_path / "nan"
    # a huge learning rate: the first batch's loss is finite (computed before any update), the second not
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, batch 2;"):
        train_in_process(tiny_config(tiny_folder, out, lr=1e38))
    assert not (out / "checkpoint.pt").exists()


# --- the CUDA-graph step, replayed by the CPU stand-in ---------------------------------------------
def run_steps(graphs):
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    totals = EpochTotals([2, 3], "cpu")
    step = TrainStep(model, optimizer, [3], totals, "cpu", False, False, graphs=graphs, backend=EagerBackend())
    g = torch.Generator().manual_seed(1)
    sums = []
    for epoch, lr in enumerate((0.1, 0.1, 0.01)):  # the lr changes before the third epoch
        optimizer.param_groups[0]["lr"] = lr
        totals.reset()
        for size in (4, 4, 4, 4, 4, 3):  # the smaller last batch of every epoch
            step(torch.randn(size, 3, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g))
        sums.append(totals.read())
    return model, sums, step.graphed


def test_graphed_steps_train_exactly_as_eager_ones():
    eager, eager_sums, _ = run_steps(graphs=False)
    graphed, graphed_sums, record = run_steps(graphs=True)
    assert graphed_sums == eager_sums
    for a, b in zip(eager.state_dict().values(), graphed.state_dict().values()):
        assert torch.equal(a, b)
    # 3 warm-up steps, captured in epoch 1 and again when the lr changed; the 3-image batches run eagerly
    assert (record.eager_runs, record.captures, record.replays) == (3, 2, 15 - 3)


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--cuda-graphs", "--device", "cpu"], "error: --cuda-graphs needs a CUDA device, not cpu; drop --cuda-graphs"),
    (["--data-on-device", "--preset", "imagenet"], "error: --data-on-device keeps decoded same-size images"),
    (["--device", "cuda:3"], "error: --device cuda:3 asked for, but "),
    (["--cuda-graphs", "--compile", "--device", "cpu"], "error: --cuda-graphs needs a CUDA device"),
])
def test_training_options_that_cannot_work_are_one_line(tiny_folder, tmp_path, args, message, capsys):
    from visrecur.train import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = tmp_path / "out"
    code = main(["--data-root", str(tiny_folder), "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert not out.exists()


def test_compile_without_the_compiler_is_one_line(tiny_folder, tmp_path, capsys, monkeypatch):
    from visrecur.train import main

    monkeypatch.setitem(sys.modules, "torch._dynamo", None)  # import fails as where it is missing
    out = tmp_path / "out"
    code = main(["--data-root", str(tiny_folder), "--out", str(out), "--no-progress", "--device", "cpu", "--compile"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --compile: torch's compiler cannot be loaded")
    assert not out.exists()


# --- recording with loader processes ---------------------------------------------------------------
def recording_source():
    from visrecur import FRNN as Model
    from visrecur.artifacts.models import ModelSource

    torch.manual_seed(0)
    spec = zoo.spec("frnn_4state_adjacent_shared", channels=(2, 3, 4, 5))
    return ModelSource(Model(spec).eval(), spec.name)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """11 JPEG files of different sizes (decoding and resizing happen in the workers)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(4)
    for k in range(11):
        size = (32 + 4 * k, 40)
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(folder / f"img{k:02d}.jpg")
    return folder


def test_recording_is_the_same_with_loader_processes_and_keeps_the_order(photo_folder, tmp_path, monkeypatch):
    import os

    from visrecur.recording import stimuli as stimuli_module
    from visrecur.recording import record
    from visrecur.artifacts.recordings import open_recording
    from visrecur.recording.stimuli import from_folder

    loaded_by = tmp_path / "pids"
    original = stimuli_module._Preprocessed.__getitem__

    def noted(self, i):  # which process decoded stimulus i (appended to a file: workers are processes)
        with open(loaded_by, "a") as f:
            f.write(f"{os.getpid()}\n")
        return original(self, i)
    monkeypatch.setattr(stimuli_module._Preprocessed, "__getitem__", noted)
    source, stimuli = recording_source(), from_folder(photo_folder)
    plain = record(source, stimuli, batch_size=4, progress=False, workers=0)
    assert set(loaded_by.read_text().split()) == {str(os.getpid())}
    loaded_by.unlink()
    parallel = record(source, stimuli, batch_size=4, progress=False, workers=2)
    pids = loaded_by.read_text().split()
    assert len(pids) == 11 and len(set(pids)) == 2 and str(os.getpid()) not in pids
    path = record(source, stimuli, tmp_path / "rec.nc", batch_size=4, progress=False, workers=2)
    assert list(parallel.stimulus.values) == [f"img{k:02d}.jpg" for k in range(11)]
    with open_recording(path) as stored:
        for name in ("V1", "V2", "V4", "IT", "logits", "probabilities"):
            np.testing.assert_array_equal(parallel[name].values, plain[name].values)
            np.testing.assert_array_equal(stored[name].values, plain[name].values)
    # each stimulus's own values, computed alone (the 11th is alone in its batch of 4, 4, 3)
    for k in (0, 5, 10):
        x = source.preprocess(stimuli.image(k))[None]
        with torch.no_grad():
            logits = source.model(x, readout_time=5)
        np.testing.assert_allclose(parallel.logits.isel(stimulus=k).sel(readout_time=5).values, logits[0].numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_bad_worker_counts_are_refused(photo_folder, tmp_path, capsys):
    from visrecur import InputError
    from visrecur.record import main
    from visrecur.recording import record
    from visrecur.recording.stimuli import from_folder

    with pytest.raises(InputError, match="workers -1 must be an integer of at least 0"):
        record(recording_source(), from_folder(photo_folder), workers=-1, progress=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--stimuli", str(photo_folder), "--workers", "-1", "--output", str(tmp_path / "r.nc")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: --workers -1 must be at least 0 (0: load in the main process)")
    assert not list(tmp_path.iterdir())


def test_cuda_graphs_need_one_process_and_no_compile(tiny_folder, tmp_path):
    from visrecur.training.loop import _check_options

    cfg = tiny_config(tiny_folder, tmp_path / "o", cuda_graphs=True)
    _check_options(cfg, "cuda:0", 1)  # one process on a GPU: accepted (checked without touching CUDA)
    with pytest.raises(TrainingError, match="with several processes .torchrun. drop --cuda-graphs"):
        _check_options(cfg, "cuda:0", 2)
    with pytest.raises(TrainingError, match="--cuda-graphs and --compile capture the step in two ways; choose one"):
        _check_options(tiny_config(tiny_folder, tmp_path / "o", cuda_graphs=True, compile=True), "cuda:0", 1)


def test_a_compile_failure_at_the_first_batch_is_one_line(tiny_folder, tmp_path, capsys, monkeypatch):
    import torch._dynamo.exc

    from visrecur.train import main

    def compiled(net):
        def forward(*args, **kwargs):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler found\nmore detail")
        return forward
    monkeypatch.setattr(torch, "compile", compiled)  # compilation happens at the first call, as torch's does
    out = tmp_path / "out"
    code = main(["--data-root", str(tiny_folder), "--out", str(out), "--no-progress", "--device", "cpu", "--compile",
                 "--model", "frnn_2state_shared", "--model-arg", "channels=[2,3]", "--model-arg", "input_size=8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --compile failed (TorchDynamoException: no C++ compiler found); drop --compile")
    assert not (out / "checkpoint.pt").exists()
