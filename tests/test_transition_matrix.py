"""The transition matrix over time as tables: which transition runs at which step, and arrival times."""
import pandas as pd
import pytest

from analyses.transition_matrix import main, model_spec, transition_schedule
from visrecur.architecture import zoo


def test_two_state_schedule_by_hand():
    """frnn_2state read out at T = 4: h1 holds data from t = 0, h2 from t = 1 (h1->h2 at step 1). Step 1
    runs only what leaves h1 (h1->h1, h1->h2); steps 2 and 3 run all four; nothing runs at T = 4 itself
    (the post-net reads h2 at T - 1)."""
    transitions, states = transition_schedule(zoo.spec("frnn_2state_shared"), readout_time=4)
    assert states.set_index("state").arrival_time.to_dict() == {"h1": 0, "h2": 1}
    assert (states.readout_time == 4).all() and (states.earliest_readout == 2).all()
    by_step = transitions.groupby("step").transition.apply(sorted).to_dict()
    assert by_step == {1: ["h1->h1", "h1->h2"], 2: ["h1->h1", "h1->h2", "h2->h1", "h2->h2"],
                       3: ["h1->h1", "h1->h2", "h2->h1", "h2->h2"]}
    kinds = transitions.drop_duplicates("transition").set_index("transition").kind.to_dict()
    assert kinds == {"h1->h1": "self", "h1->h2": "feedforward", "h2->h1": "feedback", "h2->h2": "self"}
    first = transitions[transitions.step == 1].iloc[0]
    assert (first.latency_min_ms, first.latency_max_ms) == (20, 50)


def test_windows_and_sequential_schedules():
    """A sequential ResNet runs one stage after another (resnet_3state, blocks=3: h1 self at 1-3, h1->h2 at
    4, h2 self at 5-6, h2->h3 at 7, h3 self at 8-9), so h2 arrives at 4 and h3 at 7."""
    transitions, states = transition_schedule(zoo.spec("resnet_3state_shared"))
    assert states.set_index("state").arrival_time.to_dict() == {"h1": 0, "h2": 4, "h3": 7}
    assert transitions.sort_values("step").transition.tolist() == (
        ["h1->h1"] * 3 + ["h1->h2"] + ["h2->h2"] * 2 + ["h2->h3"] + ["h3->h3"] * 2)


def test_shipped_spec_is_read_from_the_checkpoint():
    spec = model_spec("frnn_4state_adjacent_cifar10")
    _, states = transition_schedule(spec, model="adjacent")
    assert states.arrival_time.tolist() == [0, 1, 2, 3] and (states.model == "adjacent").all()


def test_command_writes_both_tables(tmp_path):
    assert main(["--models", "frnn_2state_shared", "resnet_1state_shared", "--out-dir", str(tmp_path)]) == 0
    transitions = pd.read_csv(tmp_path / "transition_matrix.csv")
    states = pd.read_csv(tmp_path / "transition_matrix_states.csv")
    assert set(transitions.model) == set(states.model) == {"frnn_2state_shared", "resnet_1state_shared"}
    # resnet_1state read out at its default T = 10: one self-transition at steps 1..9
    assert transitions[transitions.model == "resnet_1state_shared"].step.tolist() == list(range(1, 10))


@pytest.mark.parametrize("args, message", [
    (["--model", "frnn_9state_shared"], "unknown model 'frnn_9state_shared'"),
    (["--models", "frnn_4state_adjacent_shared", "--readout-time", "3"], "readout_time=3 is too early"),
    (["--ms-per-step", "50", "20"], "give the smaller duration first"),
])
def test_bad_input_one_line(args, message, tmp_path, capsys):
    assert main([*args, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error:")
    assert not (tmp_path / "out").exists()
