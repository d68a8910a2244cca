"""Effective parameters, depth and MACs per readout time against hand counts of a small model."""
import pandas as pd
import pytest

from analyses.parameters import first_readout_time, main, parameter_table

# frnn_2state with widths 2 and 4 at input 8: h1 8x8x2, h2 4x4x4; blocks BRCx2/BRDx2 of 3x3 convolutions
# with mid width (2 + 4) / 2 = 3 across states
F11 = 2 * 2 * 9 + 2 * 2 * 9          # h1->h1: 2-2-2                    72
F12 = 2 * 3 * 9 + 3 * 4 * 9          # h1->h2: 2-3-4, stride 2 first   162
F21 = 4 * 3 * 9 + 3 * 2 * 9          # h2->h1: 4-3-2, deconv up 2 first 162
F22 = 4 * 4 * 9 + 4 * 4 * 9          # h2->h2: 4-4-4                   288
PRE = 3 * 2 * 9                      # 3x3 conv, 3 -> 2                 54
POST = 2 * 4 + 4 * 10 + 10           # BN (2 x 4) + linear 4 -> 10      58
# MACs per use (output positions x weights; a deconvolution counts its input positions)
M11 = 64 * 36 + 64 * 36              # 8x8 both layers                4608
M12 = 16 * 54 + 16 * 108             # stride 2 first: 4x4 outputs     2592
M21 = 16 * 108 + 64 * 54             # deconv on 4x4 input, then 8x8   5184
M22 = 16 * 144 + 16 * 144            # 4x4 both layers                4608
M_PRE, M_FC = 64 * 54, 4 * 10


def small(sharing, **kwargs):
    return parameter_table(f"frnn_2state_{sharing}", channels=(2, 4), input_size=8, **kwargs).set_index("readout_time")


def test_effective_parameters_by_hand_shared():
    """Paper, Fig. 4 caption: "The number of parameters changes since at some t, some recurrent connections
    have not been contributing to the output". Shared 2-state FRNN: at t = 2 only h1->h2 (step 1) reaches
    h2(1); at t = 3 also h1->h1 and h2->h2; h2->h1 first reaches the output at t = 4 (h2->h1 at step 2 ->
    h1(2) -> h1->h2 at step 3). From then on the count stays while the held parameters never change."""
    table = small("shared", until=6)
    assert table.index.tolist() == [2, 3, 4, 5, 6]  # the first readout: h2 arrives at t = 1
    expected = {2: F12, 3: F11 + F12 + F22, 4: F11 + F12 + F21 + F22, 5: F11 + F12 + F21 + F22}
    for t, recurrent in expected.items():
        assert table.recurrent_effective_parameters[t] == recurrent
        assert table.effective_parameters[t] == PRE + POST + recurrent
    assert (table.parameters_held == PRE + POST + F11 + F12 + F21 + F22).all()
    assert table.effective_parameters[2] < table.effective_parameters[3] < table.effective_parameters[4]
    assert table.effective_parameters[4] == table.effective_parameters[6]


def test_effective_parameters_by_hand_unshared():
    """Unshared: every contributing (transition, step) use has its own weights. t = 3: f11@1, f12@1, f12@2,
    f22@2 (h2->h1 at step 2 does not reach h2(2)); t = 4 adds f11@2, f21@2, f12@3, f22@3 (h2(3) reads
    h1(2) and h2(2)); the model built for t holds a copy for every use up to step t - 1."""
    table = small("unshared", readout_times=[2, 3, 4])
    assert table.recurrent_effective_parameters.tolist() == [
        F12, F11 + 2 * F12 + F22, 2 * F11 + 3 * F12 + F21 + 2 * F22]
    assert table.built_for_readout_time.tolist() == [2, 3, 4]
    # held, built for t = 3: steps 1 (f11, f12) and 2 (all four)
    assert table.parameters_held[3] == PRE + POST + 2 * F11 + 2 * F12 + F21 + F22


def test_depth_and_macs_by_hand():
    """Depth (Table 1): pre-net conv + convolutions on the longest path + pooling + linear: each step adds a
    two-conv block. MACs: every use computed up to step t - 1, plus pre-net and the linear layer."""
    table = small("shared", until=4)
    assert table.depth_layers.tolist() == [1 + 2 + 2, 1 + 4 + 2, 1 + 6 + 2]
    assert table.macs[2] == M_PRE + M11 + M12 + M_FC  # step 1: h1->h1, h1->h2 (h2 is empty at t = 0)
    assert table.macs[3] == M_PRE + 2 * (M11 + M12) + M21 + M22 + M_FC
    assert table.macs[4] == M_PRE + 3 * (M11 + M12) + 2 * (M21 + M22) + M_FC
    assert table.transition_uses_computed.tolist() == [2, 6, 10]
    assert table.transition_uses_contributing.tolist() == [1, 4, 8]
    assert table.latency_min_ms.tolist() == [40, 60, 80] and table.latency_max_ms.tolist() == [100, 150, 200]


def test_models_built_for_their_readout_time():
    """resnet_2state unrolls its first state N = T - 3 times: counted as built for each T from T = 4 (N = 1);
    resnet_3state's schedule is fixed: read out past it, nothing more is computed."""
    assert first_readout_time("resnet_2state_shared") == 4
    two = parameter_table("resnet_2state_unshared", readout_times=[4, 5]).set_index("readout_time")
    assert two.built_for_readout_time.tolist() == [4, 5]
    block16 = 2 * 16 * 16 * 9  # one more h1->h1 use (16 -> 16 -> 16): N = 2 instead of 1
    assert two.recurrent_effective_parameters[5] - two.recurrent_effective_parameters[4] == block16
    three = parameter_table("resnet_3state_shared", until=12).set_index("readout_time")
    assert (three.built_for_readout_time == 10).all() and three.index[0] == 8
    assert three.macs[10] == three.macs[12] and three.effective_parameters[10] == three.effective_parameters[12]


def test_command_writes_every_zoo_model(tmp_path):
    out = tmp_path / "parameters.csv"
    assert main(["--out", str(out)]) == 0
    table = pd.read_csv(out)
    from visrecur.architecture import zoo

    assert sorted(table.model.unique()) == zoo.list_models()
    default = table[table.model == "frnn_4state_shared"].set_index("readout_time")
    assert default.index.tolist() == list(range(2, 11))  # default readout 5: up to 10
    # the docs/zoo.md rows come from the same function
    assert "| 5 | 100-250 | 13 | 327,618 | 48,384,640 |" in (
        __import__("pathlib").Path(__file__).parents[1] / "docs" / "zoo.md").read_text()
    assert default.effective_parameters[5] == 327_618 and default.macs[5] == 48_384_640
    assert default.depth_layers[5] == 13


@pytest.mark.parametrize("args, message", [
    (["--model", "frnn_5state_shared"], "unknown model 'frnn_5state_shared'"),
    (["--models", "frnn_4state_adjacent_shared", "--until", "3"], "first read out at t = 4"),
    (["--ms-per-step", "50", "20"], "give the smaller duration first"),
])
def test_bad_input_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "out" / "parameters.csv"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error:")
    assert not out.parent.exists()
