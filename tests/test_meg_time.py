"""The whole-time-course MEG fit: planted onset and ms per step recovered at a weak (realistic) signal with
neighbouring steps alike, subject-bootstrap intervals covering them, and the streamed Cichy file read
block by block with its time axis checked."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from visrecur.neural import model_rdms, synthetic
from visrecur.neural.errors import NeuralDataError
from visrecur.neural.meg_time import fit_time_warp, scores_from_blocks, subject_scores

N_IMAGES, SUBJECTS = 40, [f"S{k + 1:02d}" for k in range(16)]
IDS = [f"img{k:02d}" for k in range(N_IMAGES)]
TIMES = np.arange(-100.0, 401.0)
NOISE = 27.7  # subject-mean RDM correlation ~0.2 at the peak, one subject's ~0.05


@pytest.fixture(scope="module")
def rdm():
    # neighbouring steps' RDMs correlate ~0.6: the case where each step's peak time is pulled to its neighbours'
    return model_rdms(synthetic.correlated_recording(n_stimuli=N_IMAGES, channels=16, size=2, n_steps=5,
                                                     step_correlation=0.8, ids=IDS, seed=0))


def planted_scores(rdm, onset, ms_per_step, seed, step_slice=slice(None)):
    step_rdms = rdm.sel(state="IT").values[step_slice]
    steps = rdm["time"].values[step_slice]
    blocks = (v.mean(1) for v in synthetic.planted_meg_vectors(step_rdms, TIMES, onset, ms_per_step, noise=NOISE,
                                                               seed=seed, steps=steps))
    return scores_from_blocks(rdm, TIMES, SUBJECTS, blocks)


@pytest.mark.parametrize(("onset", "ms_per_step"), [(40, 15), (85, 27), (120, 50)])
def test_weak_signal_recovers_planted_warp(rdm, onset, ms_per_step):
    scores = planted_scores(rdm, onset, ms_per_step, seed=onset)
    fit = fit_time_warp(scores, "IT", n_boot=20)
    assert fit["ms_per_step"] == pytest.approx(ms_per_step, abs=4)
    assert fit["onset_ms"] == pytest.approx(onset, abs=20)
    assert fit["ms_per_step_ci_low"] <= ms_per_step <= fit["ms_per_step_ci_high"]
    assert fit["onset_ms_ci_low"] <= onset <= fit["onset_ms_ci_high"]
    assert fit["ms_per_step_ci_high"] - fit["ms_per_step_ci_low"] < 15
    assert fit["steps"] == "0 1 2 3 4" and f"{fit['ms_per_step']:.1f} ms x step" in fit["sentence"]


def test_state_arriving_late_uses_only_its_steps(rdm):
    """Steps 1..4 reached (step 0 not): onset is the warp's time of step 0, extrapolated."""
    late = rdm.copy()
    late.loc[dict(state="IT", time=0)] = np.nan
    scores = planted_scores(late, 70, 30, seed=5, step_slice=slice(1, None))
    assert np.isnan(scores.sel(state="IT", time=0)).all()
    fit = fit_time_warp(scores, "IT", n_boot=0)
    assert fit["steps"] == "1 2 3 4"
    assert fit["ms_per_step"] == pytest.approx(30, abs=4) and fit["onset_ms"] == pytest.approx(70, abs=20)


def test_streamed_file_scores_equal_scipy(rdm, tmp_path):
    times = np.arange(-100.0, 20.0)
    path = tmp_path / "MEG_decoding_RDMs.mat"
    synthetic.write_planted_cichy2014_meg(path, rdm.sel(state="IT").values, times, 0, 20, noise=1.0,
                                          n_subjects=3, seed=0)
    scores = subject_scores(rdm, path, stimuli=IDS, last_ms=19, block=7)  # blocks that do not divide the window
    assert scores.dims == ("subject", "state", "time", "time_ms") and scores.shape == (3, 1, 5, 120)
    # independent: h5py read of one subject's two sessions at 10 ms, scipy's Spearman against step 2
    import h5py
    with h5py.File(path) as f:
        meg = f["MEG_decoding_RDMs"][:, :, 110, :, 1].mean(-1)
    i, j = np.triu_indices(N_IMAGES, 1)
    expected = spearmanr(rdm.sel(state="IT", time=2).values[i, j], meg[i, j]).statistic
    assert float(scores.sel(subject="S02", state="IT", time=2, time_ms=10)) == pytest.approx(expected, abs=1e-12)
    # a window streams only its part, equal to the whole file's scores there
    part = subject_scores(rdm, path, stimuli=IDS, last_ms=19, time_window_ms=(0, 9))
    np.testing.assert_allclose(part.values, scores.sel(time_ms=slice(0, 9)).values)


def test_time_axis_not_matching_its_stated_range_is_refused(rdm, tmp_path):
    path = tmp_path / "MEG_decoding_RDMs.mat"
    synthetic.write_planted_cichy2014_meg(path, rdm.sel(state="IT").values, np.arange(-100.0, 20.0), 0, 20,
                                          n_subjects=2, seed=0)
    with pytest.raises(NeuralDataError, match=r"^MEG_decoding_RDMs.mat: its time axis has 120 points, but "
                                              r"-100..1200 ms in 1 ms steps needs 1301; state the file's real range"):
        subject_scores(rdm, path, stimuli=IDS)
