"""Encoding models on a planted linear map with a planted latency; ceilings against their formula."""
import numpy as np
import pytest

from visrecur.neural import ScoringError
from visrecur.neural import synthetic
from visrecur.neural.encoding import encoding_scores, peak_steps, split_half_consistency
from visrecur.neural.errors import NeuralDataError, RDMError


@pytest.fixture(scope="module")
def planted():
    ds = synthetic.recording(n_stimuli=60, states=(("V1", 3, 2), ("IT", 4, 1)), times=(0, 1, 2, 3),
                             arrival=(0, 1), seed=5)
    # neural time bin 0 (70-90 ms) reads V1 at step 1, bin 1 (90-110 ms) V1 at step 3
    assembly, reliability = synthetic.planted_assembly(ds, "V1", [1, 3], n_neuroids=6, repetitions=4, noise=0.5)
    return ds, assembly, reliability


def test_split_half_ceiling_matches_spearman_brown_expectation(planted):
    _, assembly, reliability = planted  # 1 / (1 + 0.25 / 4) = 0.941
    ceiling = split_half_consistency(assembly, n_splits=20)
    assert ceiling.shape == (6, 2)
    assert float(np.median(ceiling)) == pytest.approx(reliability, abs=0.04)


@pytest.mark.parametrize("kind", ["ridge", "pls"])
def test_encoding_finds_planted_latency(planted, kind):
    ds, assembly, reliability = planted
    scores = encoding_scores(ds, assembly, kind=kind, n_components=12)
    assert list(peak_steps(scores, "V1")) == [1, 3]
    assert float(scores.score.sel(state="V1", time=1, time_bin=0)) > 0.85
    assert float(scores.score.sel(state="V1", time=0, time_bin=0)) < 0.5
    assert np.isnan(scores.score.sel(state="IT", time=0)).all()  # IT arrives at step 1
    assert np.isfinite(scores.score.sel(state="IT", time=3)).all()
    np.testing.assert_allclose(scores.ceiling, reliability, atol=0.05)
    assert list(scores.time_bin_start.values) == [70, 90]


def test_encoding_bad_input(planted):
    ds, assembly, _ = planted
    with pytest.raises(NeuralDataError, match="presentation x neuroid x time_bin"):
        encoding_scores(ds, assembly.rename(neuroid="unit"))
    with pytest.raises(RDMError, match="'other' is not in the recording"):
        bad = assembly.assign_coords(stimulus_id=("presentation", ["other"] + list(assembly.stimulus_id.values[1:])))
        encoding_scores(ds, bad)
    with pytest.raises(ScoringError, match="at least 2 repetitions"):
        split_half_consistency(assembly.isel(presentation=slice(0, 60)))
    with pytest.raises(ScoringError, match="time step 7"):
        encoding_scores(ds, assembly, times=[7])
