"""Bootstrap over stimuli and the hierarchy contrast, on planted structure."""
import numpy as np
import pytest

from visrecur.neural import bootstrap_scores, model_rdms, peak_contrast, resampled_pairs, rsa_scores
from visrecur.neural import synthetic
from visrecur.neural.bootstrap import percentile_ci
import xarray as xr


class FixedDraw:
    def integers(self, low, high, size):
        return np.array([2, 0, 2, 3])


def test_resampled_pairs_drop_self_pairs_and_keep_repeats():
    drawn, pairs = resampled_pairs(4, FixedDraw())
    # drawn 2, 0, 2, 3: pairs of positions (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) -> stimuli (2,0) (2,2) (2,3)
    # (0,2) (0,3) (2,3); (2,2) is a stimulus with itself and goes; (0,2) and (2,3) stay twice
    condensed = {(0, 1): 0, (0, 2): 1, (0, 3): 2, (1, 2): 3, (1, 3): 4, (2, 3): 5}
    expected = [condensed[p] for p in [(0, 2), (2, 3), (0, 2), (0, 3), (2, 3)]]
    assert sorted(pairs) == sorted(expected)


def _planted(seed=0):
    ds = synthetic.recording(n_stimuli=20, states=(("V1", 4, 3), ("V2", 5, 2), ("IT", 6, 1)),
                             times=(0, 1, 2, 3, 4), arrival=(0, 1, 2), seed=seed)
    rdm = model_rdms(ds)
    ids = list(rdm.stimulus.values)
    early = synthetic.subject_rdms(rdm.sel(state="V1", time=1).values, 6, 0.05, 1, ids, "early")
    late = synthetic.subject_rdms(rdm.sel(state="IT", time=4).values, 6, 0.05, 2, ids, "late")
    return rdm, early, late


def test_bootstrap_ci_and_hierarchy_contrast_find_the_planted_order():
    rdm, early, late = _planted()
    boot = bootstrap_scores(rdm, [early, late], n_boot=60, seed=0)
    assert boot.score.sizes == {"bootstrap": 60, "target": 2, "state": 3, "time": 5}
    assert np.isnan(boot.score.sel(state="IT", time=1)).all()  # not reached: skipped in every resample
    low, high = percentile_ci(boot.score.sel(target="early", state="V1", time=1))
    full = rsa_scores(rdm, early).score.sel(state="V1", time=1)
    assert low < full < high or np.isclose(full, high)
    scores = xr.concat([rsa_scores(rdm, t).expand_dims(target=[t.name]) for t in (early, late)], "target")
    c = peak_contrast(scores, boot, "early", "late")
    assert (c["peak_state_a"], c["peak_time_a"], c["peak_state_b"], c["peak_time_b"]) == ("V1", 1, "IT", 4)
    assert c["time_difference"] == -3 and c["state_difference"] == -2
    assert c["time_difference_ci_high"] < 0 and c["state_difference_ci_high"] < 0
    assert "early's peak comes earlier than late's" in c["verdict"]
    assert "lies in an earlier state" in c["verdict"]
    same = peak_contrast(scores, boot, "early", "early")
    assert "not distinguishable in time" in same["verdict"]


def test_bootstrap_of_a_perfect_model_stays_perfect_and_ceiling_recomputed():
    rdm, early, _ = _planted()
    exact = synthetic.subject_rdms(rdm.sel(state="V2", time=3).values, 3, 0.0, 0, list(rdm.stimulus.values), "exact")
    boot = bootstrap_scores(rdm, [exact], n_boot=10, seed=1)
    np.testing.assert_allclose(boot.score.sel(state="V2", time=3), 1.0)
    np.testing.assert_allclose(boot.noise_ceiling_lower, 1.0)


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall_tau_a"])
def test_fast_resampled_scores_equal_scoring_each_resample_directly(method):
    """The sorted-once ranks give what scoring the resampled RDM vectors from scratch gives."""
    from scipy.stats import spearmanr
    from visrecur.neural import compare, noise_ceiling, upper_triangle

    rdm, early, late = _planted(seed=2)
    rdm = rdm.isel(time=[0, 2, 4])
    # ties in the target: rounded dissimilarities
    early = early.copy(data=np.round(early.values, 1))
    n_boot = 3 if method == "kendall_tau_a" else 5
    boot = bootstrap_scores(rdm, [early, late], method, n_boot=n_boot, seed=7)
    rng = np.random.default_rng(7)
    m = upper_triangle(rdm.values).reshape(-1, 190)
    for k in range(n_boot):
        _, pairs = resampled_pairs(20, rng)
        for j, target in enumerate((early, late)):
            subj = upper_triangle(target.values)[:, pairs]
            expected = compare(m[:, pairs], subj.mean(0, keepdims=True), method)[:, 0].reshape(3, 3)
            np.testing.assert_allclose(boot.score[k, j].values, expected, atol=1e-10)
            np.testing.assert_allclose(boot.subject_mean[k, j].values,
                                       compare(m[:, pairs], subj, method).mean(1).reshape(3, 3), atol=1e-10)
            np.testing.assert_allclose([boot.noise_ceiling_lower[k, j], boot.noise_ceiling_upper[k, j]],
                                       noise_ceiling(subj, method), atol=1e-10)
            if method == "spearman" and j == 0:
                r = spearmanr(m[0, pairs], subj.mean(0)).statistic  # the V1, t=0 cell against scipy itself
                assert boot.score[k, 0, 0, 0] == pytest.approx(r)
