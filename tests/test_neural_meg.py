"""Time-resolved MEG: the two public layouts, generated with planted structure, and the step -> ms fit."""
import h5py
import numpy as np
import pytest

from visrecur.neural import ScoringError, model_rdms
from visrecur.neural import synthetic
from visrecur.neural.meg import (fit_step_latency, load_algonauts2019_meg, load_cichy2014_meg, meg_scores,
                                 peak_latencies)
from visrecur.neural.errors import NeuralDataError

IDS = [f"img{k:02d}" for k in range(16)]
TIMES = np.arange(-100.0, 250.0)  # the released file's first ms and 1 ms steps, a shorter range


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    ds = synthetic.recording(n_stimuli=16, states=(("V1", 4, 3), ("IT", 6, 2)), times=(0, 1, 2, 3, 4),
                             arrival=(0, 1), ids=IDS, seed=3)
    rdm = model_rdms(ds)
    values = synthetic.planted_meg(rdm.sel(state="V1").values, TIMES, onset_ms=60, ms_per_step=35, seed=1)
    path = tmp_path_factory.mktemp("meg") / "MEG_decoding_RDMs.mat"
    synthetic.write_cichy2014_meg(path, values)
    return rdm, values, path


def test_generated_file_has_the_released_layout(planted):
    _, values, path = planted
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    with h5py.File(path) as f:
        assert f["MEG_decoding_RDMs"].shape == (16, 16, 350, 2, 3)  # image x image x time x session x subject
        # subject 2, session 1, 130 ms, images 4 and 9
        assert f["MEG_decoding_RDMs"][4, 9, 230, 1, 2] == values[2, 1, 230, 4, 9]
        assert np.isnan(f["MEG_decoding_RDMs"][5, 5, 0, 0, 0])


def test_cichy_loader_windows_and_sessions(planted):
    _, values, path = planted
    meg = load_cichy2014_meg(path, time_window_ms=(0, 99.5), stimuli=IDS, average_sessions=False)
    assert meg.dims == ("subject", "session", "time_ms", "stimulus", "stimulus_b")
    assert meg.time_ms.values[0] == 0 and meg.time_ms.values[-1] == 99 and meg.sizes["time_ms"] == 100
    np.testing.assert_array_equal(meg.sel(subject="S03", session="session2", time_ms=42).values, values[2, 1, 142])
    mean = load_cichy2014_meg(path, time_window_ms=(42, 42), stimuli=IDS)
    np.testing.assert_allclose(mean[:, 0, 0].values, values[:, :, 142].mean(1))
    with pytest.raises(ScoringError, match=r"time window 200..400 ms lies outside .* \(-100..249 ms\)"):
        load_cichy2014_meg(path, time_window_ms=(200, 400), stimuli=IDS)
    with pytest.raises(NeuralDataError, match="16 images, not the 92-image set"):
        load_cichy2014_meg(path)
    with pytest.raises(NeuralDataError, match="MEG_decoding_RDMs.mat not found"):
        load_cichy2014_meg(path.with_name("nothing") / "MEG_decoding_RDMs.mat")


def test_fit_recovers_planted_ms_per_step_and_onset(planted):
    rdm, _, path = planted
    meg = load_cichy2014_meg(path, stimuli=IDS)
    scores = meg_scores(rdm, meg)
    assert scores.dims == ("state", "time", "time_ms") and scores.shape == (2, 5, 350)
    assert np.isnan(scores.sel(state="IT", time=0)).all()
    peaks = peak_latencies(scores)
    # planted: step t of V1 expressed at 60 + 35 t ms
    np.testing.assert_allclose(peaks.peak_ms.sel(state="V1"), [60, 95, 130, 165, 200], atol=4)
    fit = fit_step_latency(rdm, meg, "V1", n_boot=40, seed=0)
    assert fit["ms_per_step"] == pytest.approx(35, abs=1.5)  # tolerance: 1.5 ms per step, 5 ms onset
    assert fit["onset_ms"] == pytest.approx(60, abs=5)
    assert fit["ms_per_step_ci_low"] <= 35 <= fit["ms_per_step_ci_high"]
    assert fit["onset_ms_ci_low"] - 2 <= 60 <= fit["onset_ms_ci_high"] + 2
    assert fit["paper_relation"] == "inside" and f"{fit['ms_per_step']:.1f} ms x step" in fit["sentence"]
    with pytest.raises(ScoringError, match="'V4' is not in the model RDMs"):
        fit_step_latency(rdm, meg, "V4")


@pytest.mark.parametrize("sessions", [True, False])
@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_algonauts_layout_early_and_late(planted, tmp_path, sessions, suffix):
    rdm = planted[0]
    early_rdm, late_rdm = rdm.sel(state="V1", time=1).values, rdm.sel(state="IT", time=3).values
    rng = np.random.default_rng(0)

    def subjects(base):
        shape = (15, 2) if sessions else (15,)
        out = base + 0.05 * rng.standard_normal(shape + base.shape)
        return (out + np.swapaxes(out, -1, -2)) / 2 * (1 - np.eye(16))

    path = tmp_path / f"algonauts_meg{suffix}"
    synthetic.write_algonauts2019_meg(path, subjects(early_rdm), subjects(late_rdm))
    meg = load_algonauts2019_meg(path, stimuli=IDS)
    assert meg.sizes == {"subject": 15, "session": 2 if sessions else 1, "time_ms": 2, "stimulus": 16,
                         "stimulus_b": 16}
    assert list(meg.time_ms.values) == [80, 150] and list(meg.window_end_ms.values) == [90, 160]
    scores = meg_scores(rdm, meg)
    assert scores.sel(time_ms=80).argmax(...)["time"].item() == 1
    assert float(scores.sel(state="V1", time=1, time_ms=80)) > 0.9
    assert float(scores.sel(state="IT", time=3, time_ms=150)) > 0.9
