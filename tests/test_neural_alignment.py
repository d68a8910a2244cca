"""The neural alignment command on a planted recording: outputs, verdict, MEG fit, and one-line refusals
that write nothing."""
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from analyses.neural_alignment import main
from visrecur import Preprocess
from visrecur.architecture import zoo
from visrecur.neural import model_rdms, upper_triangle
from visrecur.neural import synthetic
from visrecur.recording import record
from visrecur.recording.stimuli import from_array

IDS = [f"92img_{k:02d}" for k in range(1, 17)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    ds = synthetic.recording(n_stimuli=16, states=(("V1", 4, 3), ("V2", 5, 2), ("IT", 6, 1)), times=(0, 1, 2, 3, 4),
                             arrival=(0, 1, 2), seed=4)
    ds.attrs["model"] = "planted"
    ds.to_netcdf(folder / "rec.nc", engine="h5netcdf")
    rdm = model_rdms(ds)
    for name, (state, t) in {"early": ("V1", 1), "late": ("IT", 4)}.items():
        subjects = synthetic.subject_rdms(rdm.sel(state=state, time=t).values, 4, 0.05, 0, IDS)
        np.savez(folder / f"{name}.npz", rdms=subjects.values, stimulus_ids=np.array(IDS))
    values = synthetic.planted_meg(rdm.sel(state="V2").values, np.arange(-100.0, 250.0), 60, 35, seed=2)
    synthetic.write_cichy2014_meg(folder / "meg.mat", values)
    (folder / "ids.txt").write_text("\n".join(IDS))
    return folder


def test_command_writes_scores_ceilings_cis_verdict_and_meg_fit(inputs, tmp_path, capsys):
    out = tmp_path / "results"
    rc = main(["--recording", str(inputs / "rec.nc"), "--targets", str(inputs / "early.npz"), str(inputs / "late.npz"),
               "--contrast", "early", "late", "--bootstrap", "40", "--out-dir", str(out), "--meg",
               str(inputs / "meg.mat"), "--target-stimuli", str(inputs / "ids.txt"), "--meg-bootstrap", "20"])
    assert rc == 0
    table = pd.read_csv(out / "neural_alignment.csv")
    assert len(table) == 2 * 3 * 5
    row = table[(table.target == "early") & (table.state == "V1") & (table.time == 1)].iloc[0]
    assert row.score > 0.9 and row.score_ci_low <= row.score <= row.score_ci_high
    assert row.latency_min_ms == 20 and row.latency_max_ms == 50 and row.n_subjects == 4
    assert row.noise_ceiling_lower < row.noise_ceiling_upper
    assert not table[(table.state == "IT") & (table.time == 1)].reached.any()  # IT arrives at t = 2
    assert table[(table.state == "IT") & (table.time == 2)].reached.all()
    ds = xr.load_dataset(out / "neural_alignment.nc")
    assert ds.score.dims == ("target", "state", "time") and "V2@t=0" in ds.attrs["skipped"]
    contrast = pd.read_csv(out / "neural_alignment_contrast.csv").iloc[0]
    assert contrast.time_difference == -3 and contrast.time_difference_ci_high < 0
    assert "early's peak comes earlier than late's" in capsys.readouterr().out
    fit = pd.read_csv(out / "neural_alignment_meg_fit.csv").set_index("state")
    assert fit.loc["V2", "ms_per_step"] == pytest.approx(35, abs=3)
    assert fit.loc["V2", "onset_ms"] == pytest.approx(60, abs=10)
    # the Cichy layout is fitted on whole time courses, intervals over its 3 subjects (coverage of planted
    # values is validated on 16 subjects by benchmarks/validate_meg_time.py; 3 subjects make narrow intervals)
    assert fit.loc["V2", "fit"] == "joint warp over whole time courses" and fit.loc["V2", "n_subjects"] == 3
    assert fit.loc["V2", "ms_per_step_ci_low"] <= fit.loc["V2", "ms_per_step"] <= fit.loc["V2", "ms_per_step_ci_high"]
    meg = xr.load_dataset(out / "neural_alignment_meg.nc")
    assert meg.meg_score.dims == ("state", "time", "time_ms")
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


@pytest.mark.parametrize("extra, message", [
    (["--targets", "{inputs}/early.npz", "--target-stimuli", "{inputs}/wrong_ids.txt"], "'92img_16' is not in early"),
    (["--targets", "{inputs}/asym.npy", "--target-stimuli", "{inputs}/ids.txt"], "not symmetric"),
    (["--targets", "{inputs}/early.npz", "--states", "V4"], "state 'V4' is not in this recording"),
    (["--targets", "{inputs}/early.npz", "--times", "0", "7"], "time step 7 is not in the recording"),
    (["--targets", "--meg", "{inputs}/meg.mat", "--meg-window", "0", "900", "--target-stimuli", "{inputs}/ids.txt"],
     "time window 0..900 ms lies outside"),
    (["--targets", "{inputs}/missing.npz"], "missing.npz' does not exist"),
    (["--targets", "{inputs}/early.npz", "{inputs}/single.npy", "--target-stimuli", "{inputs}/ids.txt",
      "--noise-ceiling", "all"], "single has 1 subject(s); a noise ceiling needs at least 3"),
    (["--targets", "{inputs}/early.npz", "--seed", "-1"], "--seed -1 must be a whole number from 0"),
    (["--targets", "{inputs}/early.npz", "--meg-window", "100", "0"], "--meg-window without --meg has no effect"),
    (["--targets", "{inputs}/early.npz", "--meg-bootstrap", "5"], "--meg-bootstrap without --meg has no effect"),
    (["--targets", "cichy2014_fmri_IT", "--target-stimuli", "{inputs}/ids.txt"], "neither is given: drop it"),
    (["--targets", "{inputs}/early.npz", "--name", "../x"], "--name '../x' must be a plain file name stem"),
])
def test_bad_input_is_one_line_and_nothing_is_written(inputs, tmp_path, capsys, extra, message):
    (inputs / "wrong_ids.txt").write_text("\n".join(IDS[:-1] + ["92img_99"]))
    asym = np.stack([np.ones((16, 16)) - np.eye(16)] * 3)
    asym[:, 2, 5] = 3
    np.save(inputs / "asym.npy", asym)
    np.save(inputs / "single.npy", np.add.outer(np.arange(16.0), np.arange(16.0)) * (1 - np.eye(16)))  # not constant
    out = tmp_path / "results"
    try:
        rc = main(["--recording", str(inputs / "rec.nc"), "--bootstrap", "5", "--out-dir", str(out)]
                  + [a.format(inputs=inputs) for a in extra])
    except SystemExit as stop:  # refused while parsing the arguments
        rc = stop.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists() or not list(out.iterdir())


def test_scores_a_real_recording_layout():
    """model_rdms reads what visrecur.recording.recorder writes: first step, arrival boundary, last step."""
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=4, input_size=8).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    ds = record(model, from_array(images, ids=IDS[:6]), progress=False,
                preprocess=Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3))
    first, second = ds.attrs["states"].split()
    arrival = ds[second].attrs["arrival_time"]
    rdm = model_rdms(ds)
    assert rdm.attrs["skipped"] == " ".join(f"{second}@t={t}" for t in range(arrival))
    for state, t in ((first, 0), (second, arrival), (second, 3), (first, 3)):
        x = ds[state].sel(time=t).values.reshape(6, -1).astype(float)
        np.testing.assert_allclose(upper_triangle(rdm.sel(state=state, time=t).values),
                                   upper_triangle(1 - np.corrcoef(x)), atol=1e-9)


def test_command_reads_algonauts_meg(inputs, tmp_path):
    rdm = model_rdms(xr.load_dataset(inputs / "rec.nc", engine="h5netcdf"))
    early = np.stack([rdm.sel(state="V1", time=1).values] * 15)
    late = np.stack([rdm.sel(state="IT", time=4).values] * 15)
    synthetic.write_algonauts2019_meg(tmp_path / "meg.mat", early, late)
    out = tmp_path / "results"
    assert main(["--recording", str(inputs / "rec.nc"), "--targets", "--meg", str(tmp_path / "meg.mat"),
                 "--meg-format", "algonauts2019", "--target-stimuli", str(inputs / "ids.txt"),
                 "--meg-bootstrap", "5", "--out-dir", str(out)]) == 0
    meg = xr.load_dataset(out / "neural_alignment_meg.nc")
    assert list(meg.time_ms.values) == [80, 150]
    assert float(meg.meg_score.sel(state="V1", time=1, time_ms=80)) == pytest.approx(1)
    assert float(meg.meg_score.sel(state="IT", time=4, time_ms=150)) == pytest.approx(1)
    assert sorted(p.name for p in out.iterdir()) == ["neural_alignment_meg.nc", "neural_alignment_meg_fit.csv",
                                                     "neural_alignment_meg_fit.csv-metadata.json"]
