"""Model steps <-> milliseconds: hand-computed latencies, bins and overlap weights."""
import numpy as np
import pytest

from visrecur.timing import TimeMapping, TimeMappingError, check_bins, latency_ms


def test_latency_is_the_papers_20t_to_50t_by_default():
    low, high = TimeMapping().latency([0, 1, 5])
    assert low.tolist() == [0, 20, 100] and high.tolist() == [0, 50, 250]
    assert [v.tolist() for v in latency_ms(5, (25, 40))] == [125, 200]


def test_onsets_shift_latencies_and_bins():
    mapping = TimeMapping((30, 30), onset_ms=60, state_onset_ms={"IT": 10})
    assert [v.tolist() for v in mapping.latency(2)] == [120, 120]
    assert [v.tolist() for v in mapping.latency(2, state="IT")] == [130, 130]
    assert mapping.bins([0, 1, 4]).tolist() == [[60, 90], [90, 120], [180, 210]]
    assert mapping.bins([1], state="IT").tolist() == [[100, 130]]
    assert mapping.describe() == "30 ms per step, step 0 at 60 ms, state delays IT +10 ms"


def test_bins_use_the_midpoint_of_a_range():
    assert TimeMapping().step_ms == 35
    assert TimeMapping().bins([0, 1]).tolist() == [[0, 35], [35, 70]]
    assert TimeMapping().bins([2], step_ms=20).tolist() == [[40, 60]]


def test_steps_at_a_time():
    mapping = TimeMapping((20, 50))
    assert list(mapping.steps_at(100)) == [2, 3, 4, 5]  # 100/50 .. 100/20
    assert list(mapping.steps_at(0)) == [0]
    assert list(TimeMapping((20, 50), onset_ms=50).steps_at(10)) == []


def test_overlap_weights_by_hand():
    mapping = TimeMapping((10, 10))  # steps cover [0,10), [10,20), [20,30)
    weights = mapping.overlap_weights([[0, 10], [10, 25], [25, 27], [40, 50]], steps=[0, 1, 2])
    expected = [[1, 0, 0], [0, 10 / 15, 5 / 15], [0, 0, 1], [0, 0, 0]]
    np.testing.assert_allclose(weights, expected)
    # the first and the last step, and a bin past the last step
    assert weights[0, 0] == 1 and weights[2, 2] == 1 and weights[3].sum() == 0
    np.testing.assert_allclose(mapping.overlap_weights([[5, 15]], steps=[0, 1, 2]), [[0.5, 0.5, 0]])


def test_zero_length_bins_are_instants_and_bins_may_overlap():
    """(a, a) is the instant a: weight 1 on the step whose [start, end) holds it (the later one on a
    boundary); none before step 0 or past the last step; overlapping, unordered bins are each their own."""
    mapping = TimeMapping((10, 10), onset_ms=5)  # steps cover [5, 15), [15, 25), [25, 35)
    weights = mapping.overlap_weights([[5, 5], [14.9, 14.9], [15, 15], [34, 34], [35, 35], [0, 0], [20, 30], [10, 20]],
                                      steps=[0, 1, 2])
    expected = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, .5, .5], [.5, .5, 0]]
    np.testing.assert_allclose(weights, expected)
    per_state = TimeMapping((10, 10), state_onset_ms={"IT": 100}, state_ms_per_step={"IT": (20, 20)})
    np.testing.assert_allclose(per_state.overlap_weights([[120, 120], [110, 130]], [0, 1], "IT"), [[0, 1], [.5, .5]])
    with pytest.raises(TimeMappingError, match=r"time bin 0 \(20, 10\) must have start <= end"):
        mapping.overlap_weights([[20, 10]], steps=[0])


def test_states_a_model_lacks_are_named():
    mapping = TimeMapping(state_onset_ms={"V1": 50}, state_ms_per_step={"IT": (20, 20)})
    mapping.check_states(["V1", "IT"])
    with pytest.raises(TimeMappingError, match=r"state onset for state 'V1', which the model does not have "
                                               r"\(its states: h1, h2\)"):
        mapping.check_states(["h1", "h2"], "the model")


def test_the_shared_options_give_per_state_onsets_and_steps():
    from visrecur.cli import ArgumentParser, add_time_mapping, given_time_mapping

    parser = ArgumentParser(prog="x")
    add_time_mapping(parser)
    args = parser.parse_args(["--ms-per-step", "30", "--state-onset", "V1=50", "IT=100",
                              "--state-ms-per-step", "V4=50", "IT=20,50"])
    assert given_time_mapping(args) == TimeMapping((30, 30), 0, {"V1": 50, "IT": 100},
                                                   {"V4": (50, 50), "IT": (20, 50)})
    assert given_time_mapping(parser.parse_args([])) is None
    with pytest.raises(Exception, match=r"--state-ms-per-step 'IT=1,2,3' must be STATE=MS"):
        given_time_mapping(parser.parse_args(["--state-ms-per-step", "IT=1,2,3"]))


@pytest.mark.parametrize("bad,match", [
    ((50, 20), "low <= high"), ((0, 20), "0 < low"), ((1, 2, 3), "one duration or"), ("fast", "one duration or"),
    ((np.nan, 20), "low <= high"),
])
def test_bad_mappings_are_refused(bad, match):
    with pytest.raises(TimeMappingError, match=match):
        TimeMapping(bad)


@pytest.mark.parametrize("bins,match", [
    ([[10, 5]], "start < end"), ([[0, 10], [5, 20]], "overlap or are out of order"),
    ([[20, 30], [0, 10]], "out of order"), ([1, 2, 3], "pairs"),
])
def test_bad_bins_are_refused(bins, match):
    with pytest.raises(TimeMappingError, match=match):
        check_bins(bins)
