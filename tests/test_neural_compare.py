"""Paired model comparison (compare_models) against an independent numpy/scipy implementation, on planted
data: a model planted closer to the target wins, identical models tie (difference 0, p = 1), and a whole
state x time table is tested with a Benjamini-Hochberg correction."""
import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

from visrecur.neural import as_rdm, model_rdms, synthetic
from visrecur.neural.compare import compare_models, summarise
from visrecur.neural.errors import RDMError, ScoringError

N = 18
IDS = [f"s{k:02d}" for k in range(N)]


def _symmetric(rng, n=N):
    x = rng.random((n, n))
    x = (x + x.T) / 2
    np.fill_diagonal(x, 0)
    return x


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(3)
    truth = _symmetric(rng)
    subjects = np.stack([truth + 0.1 * _symmetric(rng) for _ in range(5)])
    good = truth + 0.05 * _symmetric(rng)
    poor = truth + 0.6 * _symmetric(rng)
    target = as_rdm(subjects, IDS, {"subject": [f"S{k}" for k in range(5)]}, "planted")
    return target, as_rdm(good, IDS, name="good"), as_rdm(poor, IDS, name="poor")


def reference_resamples(n, s, n_boot, seed, by_stimuli=True, by_subjects=True):
    """(rows, cols, chosen subjects) of each resample, drawn in the documented order: the square-matrix
    pairs of distinct drawn stimuli, and the drawn subjects."""
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    for _ in range(n_boot):
        drawn = rng.integers(0, n, n) if by_stimuli else np.arange(n)
        chosen = rng.integers(0, s, s) if by_subjects else np.arange(s)
        keep = drawn[i] != drawn[j]
        yield drawn[i][keep], drawn[j][keep], chosen


def independent_differences(a, b, subjects, n_boot, seed, by_stimuli=True, by_subjects=True):
    """The same resamples drawn in the documented order, computed on square matrices with scipy."""
    out = []
    for rows, cols, chosen in reference_resamples(a.shape[0], len(subjects), n_boot, seed, by_stimuli, by_subjects):
        group = subjects[chosen].mean(0)
        out.append(spearmanr(a[rows, cols], group[rows, cols])[0] - spearmanr(b[rows, cols], group[rows, cols])[0])
    return np.array(out)


@pytest.mark.parametrize("resample, flags", [("both", (True, True)), ("stimuli", (True, False)),
                                             ("subjects", (False, True))])
def test_differences_match_an_independent_implementation(planted, resample, flags):
    target, good, poor = planted
    result = compare_models(good, poor, target, resample=resample, n_boot=40, seed=7, samples=True)
    expected = independent_differences(good.values, poor.values, target.values, 40, 7, *flags)
    np.testing.assert_allclose(result.difference_samples.values, expected, atol=1e-12)
    group = target.values.mean(0)
    i, j = np.triu_indices(N, 1)
    observed = spearmanr(good.values[i, j], group[i, j])[0] - spearmanr(poor.values[i, j], group[i, j])[0]
    assert float(result.difference) == pytest.approx(observed, abs=1e-12)
    low, high = np.percentile(expected, [2.5, 97.5])
    assert float(result.difference_ci_low) == pytest.approx(low) and float(result.difference_ci_high) == pytest.approx(high)
    below, above = (expected <= 0).sum(), (expected >= 0).sum()
    assert float(result.p_value) == pytest.approx(min(1, 2 * min(below + 1, above + 1) / 41))


def test_planted_better_model_is_significantly_better_and_identical_models_tie(planted):
    target, good, poor = planted
    better = compare_models(good, poor, target, n_boot=200, seed=0)
    assert float(better.difference) > 0.1 and float(better.difference_ci_low) > 0
    assert float(better.p_value) == pytest.approx(2 / 201)  # no resample reverses the order
    assert float(compare_models(poor, good, target, n_boot=200, seed=0).difference_ci_high) < 0
    same = compare_models(good, good.copy(), target, n_boot=100, seed=0)
    assert float(same.difference) == 0 and float(same.p_value) == 1
    assert float(same.difference_ci_low) == 0 == float(same.difference_ci_high)


def test_one_subject_target_resamples_stimuli_only(planted):
    target, good, poor = planted
    single = target.isel(subject=[0])
    assert compare_models(good, poor, single, n_boot=5).attrs["resampled"] == "stimuli"
    with pytest.raises(ScoringError, match="1 subject\\(s\\): subjects cannot be resampled"):
        compare_models(good, poor, single, resample="both", n_boot=5)


def test_different_stimuli_are_refused_naming_the_first_that_differs(planted):
    target, good, poor = planted
    other = as_rdm(poor.values, IDS[:5] + ["x99"] + IDS[6:], name="other")
    with pytest.raises(RDMError, match="stimulus 6 is 's05' in a but 'x99' in b"):
        compare_models(good, other, target, n_boot=5)
    shuffled = poor.sel(stimulus=IDS[::-1], stimulus_b=IDS[::-1])  # same stimuli, other order: joined by id
    assert float(compare_models(good, shuffled, target, n_boot=5).difference) == pytest.approx(
        float(compare_models(good, poor, target, n_boot=5).difference))


def test_whole_state_by_time_table_against_a_control_with_fdr():
    ds = synthetic.recording(n_stimuli=N, states=(("V1", 4, 3), ("IT", 6, 1)), times=(0, 1, 2, 3), arrival=(0, 1),
                             seed=2, ids=IDS)
    rdm = model_rdms(ds)
    rng = np.random.default_rng(0)
    truth = rdm.sel(state="V1", time=3).values
    target = as_rdm(np.stack([truth + 0.05 * _symmetric(rng) for _ in range(4)]), IDS,
                    {"subject": list("ABCD")}, "v1late")
    control = as_rdm(_symmetric(rng), IDS, name="pixels")
    table = compare_models(rdm, control, target, n_boot=400, seed=1)  # smallest p: 2 / 401
    assert table.difference.dims == ("state", "time")
    assert list(table.time.values) == [0, 1, 2, 3]  # the first and the last recorded step
    for state, t in (("V1", 0), ("V1", 3), ("IT", 1), ("IT", 3)):
        expected = independent_differences(rdm.sel(state=state, time=t).values, control.values, target.values, 400, 1)
        cell = table.sel(state=state, time=t)
        assert float(cell.difference_ci_low) == pytest.approx(np.percentile(expected, 2.5))
    assert np.isnan(table.p_value.sel(state="IT", time=0))  # IT arrives at step 1: not tested
    assert np.isnan(table.p_fdr.sel(state="IT", time=0))
    p = table.p_value.values[np.isfinite(table.p_value.values)]
    from scipy.stats import false_discovery_control
    np.testing.assert_allclose(np.sort(table.p_fdr.values[np.isfinite(table.p_fdr.values)]),
                               np.sort(false_discovery_control(p)))
    assert float(table.sel(state="V1", time=3).p_fdr) < 0.05  # the planted cell beats random pixels
    with pytest.raises(ScoringError, match="time step 4 is not in the recording"):
        model_rdms(ds, times=[0, 3, 4])  # one past the last step


def test_seed_dim_is_averaged_and_mismatched_tables_refused(planted):
    target, good, poor = planted
    seeds = xr.concat([poor, good], "seed").assign_coords(seed=[0, 1])
    result = compare_models(good, seeds, target, n_boot=20, seed=0)
    single = [float(compare_models(good, x, target, n_boot=20).score_b) for x in (poor, good)]
    assert float(result.score_b) == pytest.approx(np.mean(single))
    a = good.expand_dims(state=["V1"]).copy()
    b = poor.expand_dims(state=["h1"]).copy()
    with pytest.raises(ScoringError, match="both have dim 'state' but with different values"):
        compare_models(a, b, target, n_boot=5)


def test_summary_sentence_names_the_winner_and_whether_it_holds(planted):
    target, good, poor = planted
    text = summarise(compare_models(good, poor, target, n_boot=50), "good", "poor")
    assert "good scores higher, the difference holds" in text and "paired bootstrap over stimuli and subjects" in text


def test_pearson_path_matches_an_independent_implementation(planted):
    from scipy.stats import pearsonr

    target, good, poor = planted
    result = compare_models(good, poor, target, method="pearson", n_boot=20, seed=2, samples=True)
    expected = []
    for r, c, chosen in reference_resamples(N, 5, 20, 2):
        group = target.values[chosen].mean(0)
        expected.append(pearsonr(good.values[r, c], group[r, c])[0] - pearsonr(poor.values[r, c], group[r, c])[0])
    np.testing.assert_allclose(result.difference_samples.values, expected, atol=1e-12)


def test_subject_mean_measure_averages_the_drawn_subjects_scores(planted):
    target, good, poor = planted
    result = compare_models(good, poor, target, measure="subject_mean", n_boot=10, seed=5, samples=True)
    expected = []
    for r, c, chosen in reference_resamples(N, 5, 10, 5):
        expected.append(np.mean([spearmanr(good.values[r, c], target.values[k][r, c])[0]
                                 - spearmanr(poor.values[r, c], target.values[k][r, c])[0] for k in chosen]))
    np.testing.assert_allclose(result.difference_samples.values, expected, atol=1e-12)


def test_recordings_on_different_stimuli_are_refused(planted):
    target = planted[0]
    a = synthetic.recording(n_stimuli=N, ids=IDS, seed=0)
    b = synthetic.recording(n_stimuli=N, ids=IDS[:-1] + ["other"], seed=1)
    with pytest.raises(RDMError, match=f"stimulus {N} is 's17' in a but 'other' in b"):
        compare_models(a, b.isel(), target, n_boot=5)
