"""The graph formalism against hand-computed schedules, counts and the paper's own numbers."""
import pytest

from visrecur import Graph, ModelSpec, SpecError, State, Transition
from visrecur.architecture import zoo


def chain3(**kwargs):
    states = [State("a", 4, 8), State("b", 6, 4), State("c", 8, 2)]
    transitions = [Transition("a", "a"), Transition("a", "b"), Transition("b", "c")]
    return Graph(states, transitions, **kwargs)


def test_arrival_times_follow_the_shortest_path():
    g = chain3()
    assert [g.arrival_time(s) for s in "abc"] == [0, 1, 2]
    assert g.earliest_readout == 3


def test_windows_block_transitions_and_delay_arrival():
    states = [State("a", 4, 8), State("b", 4, 8)]
    g = Graph(states, [Transition("a", "a", windows=((1, 2),)), Transition("a", "b", windows=((4, None),))])
    assert g.arrival_time("b") == 4
    m = g.transition_matrix(5)
    assert m.shape == (2, 2, 6)
    # a->a runs at 1 and 2 only; a->b from 4 on; nothing ever runs at t = 0
    assert m[0, 0].tolist() == [False, True, True, False, False, False]
    assert m[0, 1].tolist() == [False, False, False, False, True, True]
    assert not m[:, :, 0].any()


def test_feedback_waits_for_its_source():
    g = zoo.frnn_2state_spec(channels=(4, 8)).graph
    fb = g.transition("h2", "h1")
    # h2 arrives at t=1, so h2->h1 runs from t=2 on
    assert [g.runs(fb, t) for t in range(1, 4)] == [False, True, True]


def test_sequential_schedule_of_fig4a():
    # Fig. 4A: first state unrolled N = T - 3 times; T = 13 gives N = 10
    spec = zoo.resnet_2state_spec(readout_time=13)
    g = spec.graph
    self1 = g.transition("h1", "h1")
    assert [t for t in range(1, 14) if g.runs(self1, t)] == list(range(1, 11))
    assert [t for t in range(1, 14) if g.runs(g.transition("h1", "h2"), t)] == [11]
    assert [t for t in range(1, 14) if g.runs(g.transition("h2", "h2"), t)] == [12]
    assert spec.readout_time == 13 and g.earliest_readout == 12


def test_table1_depths():
    # Table 1: the 3-state FRNN has depth 13 at readout t=5 and 23 at t=10 (three-conv pre-net,
    # two convolutions per transition, global pooling and the linear layer).
    spec = zoo.frnn_3state_spec(time_steps=10)
    assert spec.depth(5) == 13
    assert spec.depth(10) == 23


def test_resnet20_layout():
    spec = zoo.resnet_3state_spec(blocks=3)
    # 1 conv + 9 blocks x 2 convs + linear = ResNet-20's 20 weighted layers, + 1 pooling layer
    assert spec.depth() == 21
    assert spec.readout_time == 10


def test_effective_parameters_by_hand():
    # two states a (4 channels) -> b (8 channels, half size); mean width (4+8)/2 = 6
    states = [State("a", 4, 8), State("b", 8, 4)]
    trs = [Transition("a", "a"), Transition("a", "b"), Transition("b", "a"), Transition("b", "b")]
    g = Graph(states, trs)
    aa = 4 * 4 * 9 * 2                     # 4->4->4
    ab = 4 * 6 * 9 + 6 * 8 * 9             # 4->6->8 (stride 2)
    ba = 8 * 6 * 9 + 6 * 4 * 9             # deconv 8->6->4
    bb = 8 * 8 * 9 * 2
    # readout 2 reads b(1) = f_ab(a(0)): only a->b contributed
    assert g.effective_parameters(2) == ab
    # readout 3 reads b(2) = b(1) + mean(f_ab(a(1)), f_bb(b(1))), a(1) = a(0) + f_aa(a(0)):
    # b->a first runs at t=2 and cannot reach b by t=2
    assert g.effective_parameters(3) == ab + aa + bb
    assert g.effective_parameters(4) == ab + aa + bb + ba
    # unshared: a copy per step that contributed; at readout 3: a->b at 1 and 2, a->a at 1, b->b at 2
    gu = Graph(states, trs, weight_sharing="unshared")
    assert gu.effective_parameters(3) == 2 * ab + aa + bb
    # BN affine adds scale and shift for each BN (one per convolution, width = its input)
    assert g.effective_parameters(2, affine=True) == ab + 2 * (4 + 6)


def test_model_spec_counts_include_pre_and_post_net():
    spec = ModelSpec(chain3(), readout_time=3, num_classes=5, input_size=8)
    pre = 3 * 4 * 9
    post = 2 * 8 + 8 * 5 + 5
    assert spec.effective_parameters(3) == pre + post + chain3().effective_parameters(3)


def test_macs_by_hand():
    g = Graph([State("a", 2, 4)], [Transition("a", "a")])
    spec = ModelSpec(g, readout_time=3, num_classes=3, input_size=4)
    conv = 4 * 4 * 2 * 2 * 9  # per 3x3 conv at 4x4, 2 -> 2 channels
    pre = 4 * 4 * 3 * 2 * 9
    assert spec.macs(3) == pre + 2 * 2 * conv + 2 * 3
    assert spec.macs(3, input_size=8) == 4 * (pre + 2 * 2 * conv) + 2 * 3


def test_strides_and_deconvs_match_sizes():
    spec = zoo.frnn_4state_spec()
    g = spec.graph
    assert g.resampling == "stride2"
    v1_it = g.layers(g.transition("V1", "IT"))
    # 32 -> 4: two stride-2 convolutions after a 2x2 average pool of the input
    assert [layer.stride for layer in v1_it] == [2, 2] and g.resample_rest(g.transition("V1", "IT")) == 2
    assert g.block_name(g.transition("V1", "IT")) == "avgpool /2 + BRCx2 down /4"
    it_v1 = g.layers(g.transition("IT", "V1"))
    assert {layer.kind for layer in it_v1} == {"deconv"}
    assert [layer.stride for layer in it_v1] == [2, 2] and g.resample_rest(g.transition("IT", "V1")) == 2
    assert g.block_name(g.transition("IT", "V1")) == "BRDx2 up x4 + upsample x2"
    v1_v4 = g.transition("V1", "V4")  # factor 4 fits two stride-2 layers: no pooling
    assert [layer.stride for layer in g.layers(v1_v4)] == [2, 2] and g.resample_rest(v1_v4) == 1
    assert [layer.out_channels for layer in v1_it] == [36, 64]  # mid width = mean(8, 64)
    # visrecur 0.1's scheme, kept for its checkpoints: the factor in the strides, largest first
    old = zoo.frnn_4state_spec(resampling="strided").graph
    assert [layer.stride for layer in old.layers(old.transition("V1", "IT"))] == [4, 2]
    assert old.resample_rest(old.transition("V1", "IT")) == 1
    assert Graph.from_dict({k: v for k, v in old.to_dict().items() if k != "resampling"}).resampling == "strided"


def test_serialisation_round_trip():
    for name in zoo.list_models():
        spec = zoo.spec(name)
        again = ModelSpec.from_dict(spec.to_dict())
        assert again.to_dict() == spec.to_dict()
        assert again.total_parameters() == spec.total_parameters()


def test_tie_groups():
    states = [State("a", 4, 8), State("b", 4, 8)]
    trs = [Transition("a", "a"), Transition("a", "b"), Transition("b", "b")]
    g = Graph(states, trs, weight_sharing="unshared", tie_groups=[[("a", "a", 1), ("b", "b", 2)]])
    assert g.weight_key(g.transition("a", "a"), 1) == g.weight_key(g.transition("b", "b"), 2) == "tie0"
    assert g.weight_key(g.transition("a", "a"), 2) == "a->a@2"


def test_summary_lists_states_transitions_and_matrix():
    text = zoo.frnn_4state_spec().summary()
    for word in ("V1", "IT", "bypass", "feedback", "transition matrix", "effective params", "100-250"):
        assert word in text


# --- bad input: one clear error naming the problem and the fix -----------------------------------
def test_typo_in_state_name_suggests_the_right_one():
    with pytest.raises(SpecError, match=r"unknown state 'V5'.*did you mean 'V4'\?"):
        Graph([State("V1", 4, 8), State("V4", 4, 4)], [Transition("V1", "V5")])


def test_unreachable_state():
    with pytest.raises(SpecError, match="can never receive data"):
        Graph([State("a", 4, 8), State("b", 4, 4)], [Transition("a", "a")])


def test_sizes_that_cannot_be_matched():
    with pytest.raises(SpecError, match="non-integer"):
        Graph([State("a", 4, 8), State("b", 4, 3)], [Transition("a", "b")])


def test_readout_time_too_small_or_negative():
    with pytest.raises(SpecError, match="earliest|>= 3"):
        ModelSpec(chain3(), readout_time=2, input_size=8)
    with pytest.raises(SpecError, match="too early"):
        ModelSpec(chain3(), readout_time=-1, input_size=8)
    with pytest.raises(SpecError, match="integer"):
        ModelSpec(chain3(), readout_time=2.5, input_size=8)


def test_unknown_model_and_override():
    with pytest.raises(SpecError, match="did you mean"):
        zoo.spec("frnn_4state_shraed")
    with pytest.raises(SpecError, match="does not take"):
        zoo.spec("frnn_4state_shared", readout_tme=3)


def test_sequential_rejects_feedback():
    states = [State("a", 4, 8), State("b", 4, 4)]
    with pytest.raises(SpecError, match="concurrent"):
        Graph(states, [Transition("a", "b"), Transition("b", "a")], execution="sequential",
              self_steps={"a": 0, "b": 0})


def test_macs_agree_with_torch_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for name in ("frnn_4state_shared", "resnet_3state_unshared", "frnn_2state_unshared"):
        spec = zoo.spec(name)
        model = zoo.build(name).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
        assert counter.get_total_flops() == 2 * spec.macs(), name


def test_zoo_docs_are_current():
    from pathlib import Path

    from visrecur.architecture.zoo_table import zoo_table

    docs = Path(__file__).parents[1] / "docs" / "zoo.md"
    assert docs.read_text().strip() == zoo_table().strip(), "regenerate: python -m visrecur.architecture.zoo_table > docs/zoo.md"
