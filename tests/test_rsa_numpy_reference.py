"""visrecur.neural's RSA table and bootstrap equal the plain numpy/scipy implementation that
benchmarks/bench_rsa.py times them against (benchmarks/numpy_rsa.py, written without visrecur): a speed
comparison between two different computations would measure nothing."""
import sys
from pathlib import Path

import numpy as np
import pytest

from visrecur.neural import bootstrap_scores, model_rdms, rsa_scores, synthetic, upper_triangle
from visrecur.neural.rsa import rsa_tables

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
IDS = [f"92img_{k + 1:02d}" for k in range(14)]


@pytest.fixture(scope="module")
def numpy_rsa():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import numpy_rsa
    finally:
        sys.path.remove(str(BENCHMARKS))
    return numpy_rsa


@pytest.fixture(scope="module")
def data():
    # V1 reached from step 0, V2 from step 2: the first step, the last and the steps before arrival
    ds = synthetic.recording(n_stimuli=14, states=(("V1", 4, 3), ("V2", 6, 2)), times=(0, 1, 2, 3),
                             arrival=(0, 2), ids=IDS, seed=2)
    base = np.random.default_rng(1).random((14, 14))
    targets = [synthetic.subject_rdms(base, 5, 0.2, 0, IDS, "five"),
               synthetic.subject_rdms(base, 1, 0.2, 1, IDS, "one")]
    # ties, as behavioural and rounded RDMs have: ranks must average them alike
    targets.append(synthetic.subject_rdms(np.round(base, 1), 3, 0.0, 2, IDS, "tied").round(1))
    return ds, targets


def test_table_equals_numpy(numpy_rsa, data):
    ds, targets = data
    rdm = model_rdms(ds)
    ours = rsa_tables(rdm, targets)
    theirs = numpy_rsa.table({s: ds[s].values for s in ("V1", "V2")}, {str(t.name): t.values for t in targets})
    for scores, target in zip(ours, targets):
        score, subject_mean, lower, upper = theirs[str(target.name)]
        np.testing.assert_allclose(scores.score.values, score, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(scores.subject_mean.values, subject_mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose([float(scores.noise_ceiling_lower), float(scores.noise_ceiling_upper)],
                                   [lower, upper], rtol=1e-10, atol=1e-13, equal_nan=True)
        xr_one = rsa_scores(rdm, target)  # the one-target call is the same computation
        np.testing.assert_array_equal(xr_one.score.values, scores.score.values)
    assert np.isnan(ours[0].score.sel(state="V2", time=[0, 1])).all()
    assert np.isfinite(ours[0].score.sel(state="V2", time=[2, 3])).all()


def test_model_rdms_equal_scipy_pdist(data):
    from scipy.spatial.distance import pdist
    ds = data[0]
    rdm = model_rdms(ds)
    for state, t in (("V1", 0), ("V1", 3), ("V2", 2)):
        x = ds[state].sel(time=t).values.reshape(14, -1).astype(np.float64)
        np.testing.assert_allclose(upper_triangle(rdm.sel(state=state, time=t).values), pdist(x, "correlation"),
                                   rtol=1e-12, atol=1e-13)


def test_bootstrap_equals_numpy(numpy_rsa, data):
    ds, targets = data
    rdm = model_rdms(ds)
    ours = bootstrap_scores(rdm, targets, n_boot=4, seed=3)
    m = upper_triangle(rdm.values).reshape(-1, 14 * 13 // 2)
    score, subject_mean, ceilings = numpy_rsa.bootstrap(m, {str(t.name): t.values for t in targets}, 4, seed=3)
    np.testing.assert_allclose(ours.score.values.reshape(4, 3, -1), score, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ours.subject_mean.values.reshape(4, 3, -1), subject_mean, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.stack([ours.noise_ceiling_lower, ours.noise_ceiling_upper], -1), ceilings,
                               rtol=1e-10, atol=1e-13)


def test_average_ranks_equal_scipy_rankdata():
    from scipy.stats import rankdata

    from visrecur.neural.rsa import average_ranks
    x = np.random.default_rng(0).random((6, 500))
    for values in (x, np.round(x, 1), np.zeros((2, 7)), np.array([[3.0, 1.0, 3.0, 2.0, 1.0]])):
        np.testing.assert_array_equal(average_ranks(values), rankdata(values, axis=-1))
