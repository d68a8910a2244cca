"""Recording: values equal the model's own tensors, NaN before arrival, round trips, resume, memory."""
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image

from visrecur import InputError, TimeStepError
from visrecur.architecture import zoo
from visrecur.artifacts.models import ModelSource
from visrecur.recording import record
from visrecur.artifacts.recordings import open_recording, state_array, to_neuroids
from visrecur.artifacts.io import data_root
from visrecur.recording.stimuli import from_array, from_folder, preprocess

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]


def small_source(**overrides):
    torch.manual_seed(0)
    spec = zoo.spec("frnn_4state_adjacent_shared", channels=(2, 3, 4, 5), **overrides)
    from visrecur import FRNN

    model = FRNN(spec).eval()
    return ModelSource(model, spec.name)


def random_stimuli(n, seed=0, size=32):
    rng = np.random.default_rng(seed)
    return from_array(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_values_equal_the_models_tensors_and_nan_before_arrival():
    source, stimuli = small_source(), random_stimuli(5)
    ds = record(source, stimuli, batch_size=2, progress=False)
    assert set(ds.data_vars) >= {"V1", "V2", "V4", "IT", "logits", "probabilities"}
    assert list(ds.time.values) == [0, 1, 2, 3, 4]  # the steps a readout at t = 5 is computed from
    # recompute independently: one image at a time through the model with an observer
    for k in (0, 4):
        x = preprocess(stimuli.image(k), (32, 32), source.mean, source.std)[None]
        seen = {}
        with torch.no_grad():
            logits = source.model(x, readout_time=5, observer=lambda n, t, v: seen.__setitem__((n, t), v))
        assert sorted({t for _, t in seen}) == [0, 1, 2, 3, 4]
        for (name, t), value in seen.items():
            np.testing.assert_allclose(state_array(ds, name).isel(stimulus=k).sel(time=t).values,
                                       value[0].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ds.logits.isel(stimulus=k).sel(readout_time=5).values, logits[0].numpy(), rtol=1e-4,
                                   atol=1e-5)
    # adjacent-only 4-state FRNN: V2 arrives at 1, V4 at 2, IT at 3 -> NaN exactly before
    for name, arrival in (("V1", 0), ("V2", 1), ("V4", 2), ("IT", 3)):
        values = ds[name].values
        assert ds[name].attrs["arrival_time"] == arrival
        assert np.isnan(values[:, :arrival]).all()
        assert not np.isnan(values[:, arrival:]).any()
    # logits at every readout time from the earliest (IT arrives at 3 -> readout 4) to the model's
    assert list(ds.readout_time.values) == [4, 5] and not np.isnan(ds.logits.values).any()
    np.testing.assert_allclose(ds.readout_latency_max_ms.values, [200, 250])
    np.testing.assert_allclose(ds.probabilities.sum("class"), 1.0, rtol=1e-5)


def test_coords_and_attrs():
    ds = record(small_source(), random_stimuli(3), progress=False, ms_per_step=(25, 40))
    for state in ds.state.values:  # every state's steps, from the one mapping stored whole in the attrs
        np.testing.assert_array_equal(ds.latency_min_ms.sel(state=state).values, 25 * ds.time.values)
        np.testing.assert_array_equal(ds.latency_max_ms.sel(state=state).values, 40 * ds.time.values)
    assert json.loads(ds.attrs["time_mapping"])["ms_per_step"] == [25, 40]
    for key in ("model", "model_spec", "checkpoint_sha256", "visrecur_version", "torch_version",
                "stimulus_set_sha256", "preprocessing", "reduction", "created", "trained", "warning"):
        assert key in ds.attrs
    assert ds.attrs["trained"] == "NO" and "UNTRAINED" in ds.attrs["warning"]
    assert len(ds.attrs["stimulus_set_sha256"]) == 64


@pytest.mark.parametrize("reduction,dims", [("mean", ("stimulus", "time", "V2_channel")),
                                            ("pool:2", ("stimulus", "time", "V2_channel", "V2_y", "V2_x")),
                                            ("srp:7", ("stimulus", "time", "V2_feature")),
                                            ("pca:3", ("stimulus", "time", "V2_feature"))])
def test_reductions(reduction, dims):
    source, stimuli = small_source(), random_stimuli(6)
    full = record(source, stimuli, progress=False)
    ds = record(source, stimuli, reduction=reduction, progress=False)
    assert ds["V2"].dims == dims
    if reduction == "mean":
        np.testing.assert_allclose(ds.V2.values, full.V2.mean(("V2_y", "V2_x")).values, rtol=1e-5)
    if reduction == "pool:2":  # V2 is 16x16 -> 2x2 blocks of 8x8
        expected = full.V2.values.reshape(6, 5, 3, 2, 8, 2, 8).mean(axis=(4, 6))
        np.testing.assert_allclose(ds.V2.values, expected, rtol=1e-5, atol=1e-6)
    if reduction == "srp:7":  # the same projection at every step and every batch
        again = record(source, stimuli, reduction=reduction, batch_size=2, progress=False)
        np.testing.assert_allclose(ds.V2.values, again.V2.values, rtol=1e-5)
    if reduction == "pca:3":  # components centred on the fitting set: mean over stimuli and steps ~ 0
        populated = ds.V2.values[:, 1:].reshape(-1, 3)
        np.testing.assert_allclose(populated.mean(0), 0, atol=1e-4)
    assert ds.attrs["reduction_spec"] == reduction


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_through_files(tmp_path, suffix):
    source, stimuli = small_source(), random_stimuli(7)
    memory = record(source, stimuli, batch_size=3, progress=False)
    path = record(source, stimuli, tmp_path / f"rec{suffix}", batch_size=3, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"rec{suffix}"]  # no .partial.nc/.zarr or .tmp left
    with open_recording(path) as ds:
        assert ds.V1.chunks is not None  # lazy (dask)
        for name in ("V1", "V2", "V4", "IT", "logits"):
            np.testing.assert_array_equal(ds[name].values, memory[name].values)
        assert list(ds.stimulus.values) == list(memory.stimulus.values)
        assert ds.attrs["model_spec"] == memory.attrs["model_spec"]


def test_netcdf_recording_needs_no_zarr(tmp_path, monkeypatch):
    # the GPU image had h5netcdf but not zarr: finalising a .nc file imported zarr all the same
    source, stimuli = small_source(), random_stimuli(3)
    memory = record(source, stimuli, progress=False)
    monkeypatch.setitem(sys.modules, "zarr", None)  # any "import zarr" now raises ImportError
    path = record(source, stimuli, tmp_path / "rec.nc", progress=False)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds.IT.values, memory.IT.values)


def test_resume_gives_the_same_file(tmp_path):
    source, stimuli = small_source(), random_stimuli(9)
    whole = record(source, stimuli, tmp_path / "whole.zarr", batch_size=2, progress=False)
    out = tmp_path / "resumed.zarr"
    with pytest.raises(KeyboardInterrupt):
        record(source, stimuli, out, batch_size=2, progress=False, stop_after_batches=2)
    assert not out.exists()
    partial = xr.open_zarr(tmp_path / "resumed.zarr.partial.zarr")
    assert int(partial.recorded.sum()) == 4
    with pytest.raises(InputError, match="--resume"):
        record(source, stimuli, out, batch_size=2, progress=False)
    calls = []
    original = source.model.forward
    source.model.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    record(source, stimuli, out, batch_size=2, progress=False, resume=True)
    assert sum(calls) == 5  # only the 5 stimuli not yet recorded
    a, b = open_recording(whole), open_recording(out)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_existing_output_is_refused(tmp_path):
    source, stimuli = small_source(), random_stimuli(2)
    path = record(source, stimuli, tmp_path / "r.nc", progress=False)
    with pytest.raises(InputError, match="--overwrite"):
        record(source, stimuli, path, progress=False)
    record(source, stimuli, path, progress=False, overwrite=True)


def test_peak_memory_does_not_grow_with_stimuli(tmp_path):
    source = small_source()
    peaks = []
    for n in (40, 320):
        stimuli = random_stimuli(n, size=32)
        tracemalloc.start()
        record(source, stimuli, tmp_path / f"m{n}.zarr", batch_size=20, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 8x the stimuli; an in-memory collector would need 8x the memory
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_unreachable_steps_and_bad_stimuli(tmp_path):
    unshared = ModelSource(zoo.build("frnn_2state_unshared", channels=(2, 3), readout_time=3).eval(), "u")
    with pytest.raises(TimeStepError, match="weights for steps up to"):
        record(unshared, random_stimuli(1), times=[0, 1, 2, 3, 4], progress=False)
    with pytest.raises(TimeStepError):
        record(small_source(), random_stimuli(1), times=[-1, 2], progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files"):
        from_folder(empty)
    (empty / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        from_folder(empty).image(0)


def test_image_conversions(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.new("L", (40, 20), 200).save(folder / "grey.png")
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.save(folder / "sub" / "clear.png")
    Image.new("RGB", (33, 17), (0, 0, 255)).save(folder / "odd.jpg")
    stimuli = from_folder(folder)
    assert stimuli.ids == ["grey.png", "odd.jpg", "sub/clear.png"]
    assert list(stimuli.metadata.category) == ["", "", "sub"]
    assert np.asarray(stimuli.image(0)).shape == (20, 40, 3)
    assert (np.asarray(stimuli.image(0)) == 200).all()  # grey repeated over RGB
    assert (np.asarray(stimuli.image(2)) == 128).all()  # fully transparent -> the grey background
    x = preprocess(stimuli.image(1), (32, 32), (0, 0, 0), (1, 1, 1))
    assert x.shape == (3, 32, 32)
    ds = record(small_source(), stimuli, progress=False)
    assert ds.sizes["stimulus"] == 3


def test_export_to_neuroids():
    ds = record(small_source(), random_stimuli(4), progress=False)
    flat = to_neuroids(ds, states=["V4", "IT"], times=[4])
    assert flat.dims == ("stimulus", "neuroid")
    assert flat.sizes["neuroid"] == 4 * 8 * 8 + 5 * 4 * 4
    pick = flat.isel(neuroid=list(flat.neuroid_id.values).index("IT.c2.y1.x3"))
    np.testing.assert_array_equal(pick.values, ds.IT.sel(time=4).isel(IT_channel=2, IT_y=1, IT_x=3).values)
    both = to_neuroids(ds, states=["IT"], times=[3, 4])
    assert both.dims == ("stimulus", "neuroid", "time")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "visrecur.record", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_cli_default_run(tmp_path):
    result = run_cli("--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outputs = list((tmp_path / "recordings").glob("*_builtin.nc"))
    assert len(outputs) == 1 and "recorded" in result.stdout
    # the README's first command says which file it writes
    assert f"It writes `recordings/{outputs[0].name}`" in (Path(__file__).parents[1] / "README.md").read_text()
    with open_recording(outputs[0]) as ds:
        assert ds.sizes["stimulus"] >= 20 and ds.attrs["states"] == "V1 V2 V4 IT"
    again = run_cli("--no-progress", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.skipif(not (data_root() / "92images").is_dir(), reason="92-image set not available")
@pytest.mark.slow
def test_cli_on_the_92_image_set(tmp_path):
    out = tmp_path / "r92.zarr"
    result = run_cli("--stimuli", "92images", "--reduction", "mean", "--output", str(out), "--no-progress",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open_recording(out) as ds:
        assert ds.sizes["stimulus"] == 92
        assert set(ds.stimulus_label.values) >= {"human face", "natural object"}


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    result = run_cli("--stimuli", str(tmp_path / "missing"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "does not exist" in result.stderr
    result = run_cli("--states", "V5", "--output", str(tmp_path / "x.nc"), cwd=tmp_path)
    assert result.returncode == 2 and "did you mean 'V4'" in result.stderr


@pytest.mark.slow
def test_torchrun_ranks_share_one_zarr_store(tmp_path):
    common = ["--model", "frnn_4state_adjacent_shared", "--stimuli", "builtin", "--batch-size", "5",
              "--reduction", "pool:2", "--no-progress"]
    single = run_cli(*common, "--output", str(tmp_path / "one.zarr"), cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "visrecur.record"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(launcher + common + ["--output", str(tmp_path / "two.zarr")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = open_recording(tmp_path / "one.zarr"), open_recording(tmp_path / "two.zarr")
    assert bool(b.recorded.all())
    for name in ("V1", "V2", "V4", "IT", "logits"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-5, atol=1e-6)
    assert b.attrs["stimulus_set_sha256"] == a.attrs["stimulus_set_sha256"]
    # netCDF output under torchrun: the ranks share a zarr store, converted to .nc at the end
    launcher[6] = str(free_port())
    nc = subprocess.run(launcher + common + ["--output", str(tmp_path / "two.nc")], cwd=tmp_path,
                        capture_output=True, text=True, timeout=600, env=env)
    assert nc.returncode == 0, nc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two.nc", "two.zarr"]
    with open_recording(tmp_path / "two.nc") as c:
        for name in ("V1", "V2", "V4", "IT", "logits"):
            np.testing.assert_allclose(a[name].values, c[name].values, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not (data_root() / "cifar10-jpeg").is_dir(), reason="CIFAR-10 JPEGs not available")
def test_cifar10_test_stimuli_are_class_balanced():
    from visrecur.recording.stimuli import cifar10_test

    stimuli = cifar10_test(limit=20)
    assert len(stimuli) == 20
    assert stimuli.metadata.label.value_counts().tolist() == [2] * 10
    assert np.asarray(stimuli.image(0)).shape == (32, 32, 3)


def test_resume_of_a_netcdf_recording(tmp_path):
    source, stimuli = small_source(), random_stimuli(7)
    whole = record(source, stimuli, batch_size=2, progress=False)
    out = tmp_path / "resumed.nc"
    with pytest.raises(KeyboardInterrupt):
        record(source, stimuli, out, batch_size=2, progress=False, stop_after_batches=2)
    assert not out.exists() and (tmp_path / "resumed.nc.partial.nc").is_file()
    calls = []
    original = source.model.forward
    source.model.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    record(source, stimuli, out, batch_size=2, progress=False, resume=True)
    assert sum(calls) == 3  # stimuli 4, 5, 6: the two finished batches are not recomputed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resumed.nc"]
    with open_recording(out) as ds:
        assert bool(ds.recorded.all())
        for name in ("V1", "V2", "V4", "IT", "logits"):
            np.testing.assert_array_equal(ds[name].values, whole[name].values)


def test_a_model_without_known_preprocessing_is_refused(tmp_path):
    from visrecur import Preprocess
    from visrecur.artifacts.checkpoint import load

    model, stimuli = small_source().model, random_stimuli(2)
    with pytest.raises(InputError, match="preprocess=visrecur.Preprocess"):
        record(model, stimuli, progress=False)
    told = Preprocess((32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    ds = record(model, stimuli, progress=False, preprocess=told)
    assert "mean (0.5, 0.5, 0.5) and std (0.25, 0.25, 0.25)" in ds.attrs["preprocessing"]
    for said in ("16-bit grey mapped linearly 0..65535 -> 0..255", "non-square image loses equal margins",
                 "antialiased", "centre-cropped to 32x32"):
        assert said in ds.attrs["preprocessing"]
    x = (torch.from_numpy(np.array(stimuli.image(1))).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        np.testing.assert_allclose(ds.logits.sel(readout_time=5).values[1], model(x[None])[0].numpy(), rtol=1e-4,
                                   atol=1e-5)
    # a model from visrecur.load carries its preprocessing (here built from an old "normalization" entry)
    default = load()
    assert default.preprocess == Preprocess((32, 32), (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616))
    ds = record(default, stimuli, progress=False, times=[0])  # V2..IT not reached at t = 0: NaN
    assert np.isnan(ds.IT.values).all() and not np.isnan(ds.V1.values).any()
    assert "mean (0.4914, 0.4822, 0.4465)" in ds.attrs["preprocessing"] and ds.attrs["trained"] == "yes"
    untrained = record(small_source(), stimuli, progress=False)
    assert "assumed for an untrained model" in untrained.attrs["preprocessing"]


@pytest.mark.parametrize("args,message", [
    (["--ms-per-step", "50", "20"], "give the smaller duration first"),
    (["--stimuli", "missing_list.txt"], "stimulus list 'missing_list.txt' does not exist"),
    (["--stimuli", "missing.npy"], "stimulus array 'missing.npy' does not exist"),
    (["--reduction", "pool"], "needs a positive size"),
    (["--batch-size", "0"], "--batch-size 0 must be at least 1"),
    (["--limit", "x"], "invalid int value"),
])
def test_command_line_errors_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    from visrecur.record import main

    monkeypatch.chdir(tmp_path)
    try:
        code = main([*args, "--model", "frnn_2state_shared", "--no-progress"])
    except SystemExit as exit_:  # argparse's own checks
        code = exit_.code
    err = capsys.readouterr().err.replace("WARNING: UNTRAINED", "").splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not list(tmp_path.rglob("*.nc"))


def test_attrs_say_which_steps_borrow_statistics_and_lie_past_training():
    """Trained at readouts 2, 3 (transition steps 1, 2): steps 0..2 are trained, step 3 borrows step 2's."""
    import warnings

    from visrecur import Preprocess
    from visrecur.architecture import zoo
    from visrecur.recording.recorder import ActivityWarning

    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).train()
    model(torch.randn(16, 3, 8, 8), readout_time=[2, 3])
    stimuli = from_array((np.random.default_rng(0).random((3, 8, 8, 3)) * 255).astype(np.uint8))
    preprocess = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)
    inside = record(model, stimuli, times=[0, 1, 2], progress=False, preprocess=preprocess)
    assert inside.attrs["last_trained_step"] == 2 and inside.attrs["steps_past_trained"] == ""
    assert "estimated for it" in inside.attrs["tsbn_statistics"] and inside.attrs["trained"] == "yes"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActivityWarning)  # nothing explodes one step past training
        past = record(model, stimuli, times=[0, 1, 2, 3], readout_time=4, progress=False, preprocess=preprocess)
    assert past.attrs["steps_past_trained"] == "3" and past.attrs["readout_times_past_trained"] == "4"
    assert "t3: step 2" in past.attrs["tsbn_statistics"] and "t4: step 3" in past.attrs["tsbn_statistics"]
    assert past.attrs["time_mapping_description"] == "20-50 ms per step"


def test_overflow_stops_at_its_first_step_and_explosion_is_warned_once():
    from visrecur.recording.recorder import ActivityMonitor, ActivityWarning

    monitor = ActivityMonitor(last_trained=2, factor=100)
    monitor("IT", 2, torch.tensor([1.0, -3.0]))          # the last trained step: reference size 3
    with pytest.warns(ActivityWarning, match="IT at step 4 is 1000 times its size at the last trained step 2"):
        monitor("IT", 4, torch.tensor([3000.0]))
    with pytest.raises(TimeStepError, match="state V1 overflowed .* at step 1, the first step"):
        monitor("V1", 1, torch.tensor([float("inf")]))
    with pytest.raises(TimeStepError, match="state V2 overflowed .* at step 5"):
        monitor("V2", 5, torch.tensor([0.0, float("nan")]))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActivityWarning)
        monitor("IT", 5, torch.tensor([5000.0]))  # once per state, not at every later step
        monitor("IT", 3, torch.tensor([200.0]))   # 67x: below the factor
