"""RDMs, their comparison, noise ceilings: against hand-computed values, the literature's formulas and
scipy's own statistics."""
import numpy as np
import pytest
from scipy.spatial.distance import squareform
from scipy.stats import kendalltau, spearmanr

from visrecur.neural import (RDMError, ScoringError, as_rdm, compare, model_rdms, noise_ceiling, peak,
                             rsa_scores, upper_triangle)
from visrecur.neural import synthetic


def test_kendall_tau_a_by_hand_with_ties():
    x, y = [1, 2, 2, 3], [1, 3, 2, 2]
    # pairs: (0,1) +1, (0,2) +1, (0,3) +1, (1,2) tie in x, (1,3) -1, (2,3) tie in y -> 2 of 6 pairs
    assert compare(x, y, "kendall_tau_a")[0, 0] == pytest.approx(2 / 6)
    # tau-b divides by sqrt((6 - 1)(6 - 1)) instead: the two differ exactly where there are ties
    assert kendalltau(x, y).statistic == pytest.approx(2 / 5)


def test_kendall_tau_a_matches_the_pair_count_on_random_ties():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, (3, 30)), rng.integers(0, 4, (2, 30))
    i, j = np.triu_indices(30, 1)
    expected = [[np.mean(np.sign(u[i] - u[j]) * np.sign(v[i] - v[j])) for v in b] for u in a]
    np.testing.assert_allclose(compare(a, b, "kendall_tau_a"), expected)
    np.testing.assert_allclose(compare(a[:2], b, "kendall_tau_a", paired=True), np.diag(expected[:2]))


def test_spearman_and_pearson_match_scipy_with_ties_and_nan_rows():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 5, (3, 40)).astype(float), rng.normal(size=(2, 40))
    a[1] = np.nan
    got = compare(a, b, "spearman")
    assert np.isnan(got[1]).all()
    for r in (0, 2):
        for c in range(2):
            assert got[r, c] == pytest.approx(spearmanr(a[r], b[c]).statistic)
            assert compare(a[r], b[c], "pearson")[0, 0] == pytest.approx(np.corrcoef(a[r], b[c])[0, 1])


def test_noise_ceiling_follows_nili_2014():
    rng = np.random.default_rng(3)
    subjects = rng.normal(size=(4, 15)) + rng.normal(size=15)
    mean = subjects.mean(0)
    upper = np.mean([spearmanr(s, mean).statistic for s in subjects])
    lower = np.mean([spearmanr(s, np.delete(subjects, k, 0).mean(0)).statistic for k, s in enumerate(subjects)])
    assert noise_ceiling(subjects) == pytest.approx((lower, upper))
    assert lower < upper
    with pytest.raises(ScoringError, match="2 subject.*at least 3"):
        noise_ceiling(subjects[:2])


def test_model_rdms_at_first_last_and_arrival_steps():
    ds = synthetic.recording(n_stimuli=7, times=(0, 1, 2, 3), arrival=(0, 2))
    rdm = model_rdms(ds)
    assert rdm.attrs["skipped"] == "V2@t=0 V2@t=1"
    assert np.isnan(rdm.sel(state="V2", time=1)).all()
    for state, t in (("V1", 0), ("V1", 3), ("V2", 2), ("V2", 3)):  # first step, boundary, last step
        x = ds[state].sel(time=t).values.reshape(7, -1).astype(float)
        np.testing.assert_allclose(rdm.sel(state=state, time=t), 1 - np.corrcoef(x), atol=1e-12)
    x = ds["V1"].sel(time=3).values.reshape(7, -1).astype(float)
    z = (x - x.mean(0)) / x.std(0)
    np.testing.assert_allclose(model_rdms(ds, ["V1"], [3], "euclidean", zscore=True)[0, 0],
                               np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1)), atol=1e-10)
    cos = 1 - (x @ x.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(model_rdms(ds, ["V1"], [3], "cosine")[0, 0], cos, atol=1e-12)
    assert list(rdm.latency_max_ms.sel(state="V1").values) == [0, 50, 100, 150]


def test_scores_join_by_id_not_position():
    ds = synthetic.recording(n_stimuli=8, times=(0, 1, 2), arrival=(0, 1))
    rdm = model_rdms(ds)
    ids = list(rdm.stimulus.values)
    planted = rdm.sel(state="V2", time=2).values
    target = synthetic.subject_rdms(planted, 5, 0.02, 0, ids, "planted")
    shuffled = target.isel(stimulus=[7, 3, 1, 0, 2, 6, 5, 4], stimulus_b=[7, 3, 1, 0, 2, 6, 5, 4])
    scores = rsa_scores(rdm, shuffled)
    assert peak(scores.score) == ("V2", 2)
    assert np.isnan(scores.score.sel(state="V2", time=0)) and "V2@t=0" in scores.attrs["skipped"]
    vec = upper_triangle(target.values)
    by_subject = [spearmanr(upper_triangle(planted), v).statistic for v in vec]
    assert scores.subject_mean.sel(state="V2", time=2) == pytest.approx(np.mean(by_subject))
    assert scores.subject_sem.sel(state="V2", time=2) == pytest.approx(np.std(by_subject, ddof=1) / np.sqrt(5))
    assert scores.score.sel(state="V2", time=2) == pytest.approx(
        spearmanr(upper_triangle(planted), vec.mean(0)).statistic)
    assert (scores.noise_ceiling_lower, scores.noise_ceiling_upper) == pytest.approx(noise_ceiling(vec))


def test_bad_rdms_and_requests_are_refused_in_one_line():
    ids = [f"92img_{k:02d}" for k in range(1, 6)]
    good = squareform(np.arange(1.0, 11.0))
    with pytest.raises(RDMError, match="square"):
        as_rdm(np.zeros((2, 5, 4)), ids)
    bad = good.copy()
    bad[1, 3] += 1
    with pytest.raises(RDMError, match=r"not symmetric \(entry \[1, 3\]"):
        as_rdm(bad, ids)
    ds = synthetic.recording(n_stimuli=5)
    other = as_rdm(np.stack([good] * 3), ids[:4] + ["92img_99"], {"subject": ["a", "b", "c"]}, "other")
    with pytest.raises(RDMError, match="'92img_05' is not in other"):
        rsa_scores(model_rdms(ds), other)
    with pytest.raises(ScoringError, match="'IT' is not in this recording"):
        model_rdms(ds, ["IT"])
    with pytest.raises(ScoringError, match="time step 9 is not in the recording"):
        model_rdms(ds, times=[0, 9])
    with pytest.raises(ScoringError, match="1 subject"):
        rsa_scores(model_rdms(ds), as_rdm(good[None], ids, {"subject": ["g"]}, "g"), ceiling=True)


def test_against_rsatoolbox():
    try:  # rsatoolbox 0.3 fails to import under scikit-learn < 1.6 with errors other than ImportError
        from rsatoolbox.data import Dataset
    except Exception as err:
        pytest.skip(f"rsatoolbox not importable here ({type(err).__name__}); pip install '.[test]'")
    from rsatoolbox.rdm import RDMs, calc_rdm
    from rsatoolbox.rdm import compare as rsa_compare

    ds = synthetic.recording(n_stimuli=10, times=(1, 2), arrival=(0, 1))
    x = ds["V2"].sel(time=2).values.reshape(10, -1).astype(float)
    data = Dataset(x)
    ours = model_rdms(ds, ["V2"], [2], "correlation")[0, 0].values
    np.testing.assert_allclose(upper_triangle(ours), calc_rdm(data, "correlation").dissimilarities[0], atol=1e-10)
    # rsatoolbox's euclidean is the squared distance per channel
    eu = model_rdms(ds, ["V2"], [2], "euclidean")[0, 0].values
    np.testing.assert_allclose(upper_triangle(eu) ** 2 / x.shape[1], calc_rdm(data, "euclidean").dissimilarities[0])
    rng = np.random.default_rng(0)
    a, b = upper_triangle(ours), np.round(rng.normal(size=(3, 45)), 1)  # rounding makes ties
    for ours_method, theirs in (("spearman", "spearman"), ("kendall_tau_a", "tau-a")):
        expected = rsa_compare(RDMs(a[None]), RDMs(b), method=theirs)
        np.testing.assert_allclose(compare(a, b, ours_method), expected, atol=1e-10)
