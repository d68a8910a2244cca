"""FRNN against hand-written references (Eq. 4, a standard pre-activation ResNet) and the paper's rules."""
import pytest
import torch
import torch.nn.functional as F

import visrecur
from visrecur import FRNN, Graph, InputError, ModelSpec, State, TimeStepError, Transition
from visrecur.architecture import zoo

from reference_resnet import PreActResNet, SharedResidualStage, copy_into_resnet


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def randomize(model, seed=0):
    """Non-trivial values everywhere (BN scale/shift too), so a wrong mapping cannot pass by luck."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.4 - 0.2)
    return model


def test_one_state_shared_model_is_eq4():
    steps = 4
    model = randomize(FRNN(zoo.resnet_1state_spec(channels=6, readout_time=steps + 1, input_size=8)))
    ref = SharedResidualStage(6, steps)
    block = model.blocks["h1->h1"]
    with torch.no_grad():
        ref.conv.weight.copy_(model.prenet.net.weight)
        ref.conv1.weight.copy_(block.convs[0].weight)
        ref.conv2.weight.copy_(block.convs[1].weight)
        ref.bn.weight.copy_(model.postnet.norm.weight)
        ref.bn.bias.copy_(model.postnet.norm.bias)
        ref.fc.load_state_dict(model.postnet.fc.state_dict())
    x = torch.randn(5, 3, 8, 8)
    for mode in ("train", "eval"):  # train: batch statistics; eval: the running statistics both kept
        model.train(mode == "train"), ref.train(mode == "train")
        torch.testing.assert_close(model(x), ref(x))
    # one set of weights, used `steps` times
    assert len(model.blocks) == 1


def test_time_variant_multistate_resnet_is_a_standard_preact_resnet20():
    model = randomize(FRNN(zoo.resnet_3state_spec(shared=False, blocks=3, bn_affine=True)))
    ref = PreActResNet(n=3)
    copy_into_resnet(model, ref)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(4, 3, 32, 32)
    for mode in ("train", "eval"):
        model.train(mode == "train"), ref.train(mode == "train")
        torch.testing.assert_close(model(x), ref(x))


def test_tied_gradient_is_the_sum_of_its_uses():
    kwargs = dict(channels=(3, 4), readout_time=4, input_size=8)
    shared = randomize(FRNN(zoo.frnn_2state_spec(shared=True, **kwargs)))
    unshared = FRNN(zoo.frnn_2state_spec(shared=False, **kwargs))
    with torch.no_grad():
        for key, block in unshared.blocks.items():
            block.load_state_dict(shared.blocks[key.split("@")[0]].state_dict())
        unshared.prenet.load_state_dict(shared.prenet.state_dict())
        unshared.postnet.load_state_dict(shared.postnet.state_dict())
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    for model in (shared, unshared):
        F.cross_entropy(model(x), y).backward()
    for key, block in shared.blocks.items():
        for name, p in block.named_parameters():
            copies = [dict(b.named_parameters())[name].grad for k, b in unshared.blocks.items()
                      if k.split("@")[0] == key and dict(b.named_parameters())[name].grad is not None]
            assert len(copies) >= 2 or key == "h2->h1"
            torch.testing.assert_close(p.grad, torch.stack(copies).sum(0))


def small_two_state(aggregation, identity=True):
    states = [State("a", 3, 8, identity=identity), State("b", 4, 4, identity=identity)]
    trs = [Transition("a", "a"), Transition("a", "b"), Transition("b", "b"), Transition("b", "a")]
    return FRNN(ModelSpec(Graph(states, trs, aggregation=aggregation), readout_time=4, input_size=8)).eval()


@pytest.mark.parametrize("aggregation", ["mean", "sum"])
def test_mean_and_sum_aggregation(aggregation):
    model = randomize(small_two_state(aggregation), seed=3)
    for m in model.modules():  # non-trivial running statistics for eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 1.5)
    seen = {}
    x = torch.randn(2, 3, 8, 8)
    model(x, observer=lambda name, t, value: seen.__setitem__((name, t), value))
    blk = lambda key, src, t: model.blocks[key](src, model.norms[key], t)
    a0, a1, b1 = seen[("a", 0)], seen[("a", 1)], seen[("b", 1)]
    # t=1: only a is populated before, so a gets a->a only and b gets a->b only (one input: no averaging)
    torch.testing.assert_close(a1, a0 + blk("a->a", a0, 1))
    torch.testing.assert_close(b1, blk("a->b", a0, 1))
    # t=2: two inputs each
    combine = (lambda u, v: (u + v) / 2) if aggregation == "mean" else (lambda u, v: u + v)
    torch.testing.assert_close(seen[("a", 2)], a1 + combine(blk("a->a", a1, 2), blk("b->a", b1, 2)))
    torch.testing.assert_close(seen[("b", 2)], b1 + combine(blk("a->b", a1, 2), blk("b->b", b1, 2)))


def test_observer_sees_every_populated_state_and_step():
    model = small_two_state("mean")
    seen = []
    with model.observe(lambda name, t, value: seen.append((name, t))):
        model(torch.randn(1, 3, 8, 8), readout_time=4)
    assert seen == [("a", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]


def test_several_readout_times_from_one_pass():
    model = small_two_state("mean")
    x = torch.randn(2, 3, 8, 8)
    together = model(x, readout_time=[2, 3, 4])
    for t in (2, 3, 4):
        torch.testing.assert_close(together[t], model(x, readout_time=t))


def test_time_varying_input_enters_the_first_state():
    model = small_two_state("mean")
    x0, x1 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    seen = {}
    model([x0, x1], readout_time=3, observer=lambda n, t, v: seen.__setitem__((n, t), v))
    static = {}
    model(x0, readout_time=3, observer=lambda n, t, v: static.__setitem__((n, t), v))
    torch.testing.assert_close(seen[("a", 1)], static[("a", 1)] + model.prenet(x1))
    torch.testing.assert_close(seen[("b", 1)], static[("b", 1)])  # x1 reaches b only at t=2
    assert not torch.allclose(seen[("b", 2)], static[("b", 2)])
    # a 5-D tensor (batch, steps, C, H, W) is the same sequence
    torch.testing.assert_close(model(torch.stack([x0, x1], 1), readout_time=3),
                               model([x0, x1], readout_time=3))


def test_any_input_size_that_divides():
    torch.set_default_dtype(torch.float32)
    model = zoo.build("frnn_4state_shared", readout_time=3).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    with pytest.raises(InputError, match="multiples of 8"):
        model(torch.randn(1, 3, 30, 30))
    with pytest.raises(InputError, match="expects"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(InputError, match="dtype"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_readout_time_checks():
    model = small_two_state("mean")
    with pytest.raises(visrecur.SpecError, match="too early"):
        model(torch.randn(1, 3, 8, 8), readout_time=1)


def test_tsbn_beyond_trained_steps():
    model = small_two_state("mean")  # built for t <= 4
    x = torch.randn(2, 3, 8, 8)
    out = model(x, readout_time=6)  # policy "last": reuses step 4's statistics in eval
    assert torch.isfinite(out).all()
    model.train()
    with pytest.raises(TimeStepError, match="extend_time"):
        model(x, readout_time=6)


def test_unshared_model_refuses_steps_without_weights():
    model = FRNN(zoo.frnn_2state_spec(shared=False, channels=(3, 4), readout_time=3, input_size=8)).eval()
    with pytest.raises(TimeStepError, match="no weights for step"):
        model(torch.randn(1, 3, 8, 8), readout_time=5)


def test_total_parameters_match_torch():
    for name in visrecur.list_models():
        spec = zoo.spec(name)
        if spec.input_size[0] > 32:
            continue
        model = FRNN(spec)
        assert sum(p.numel() for p in model.parameters()) == spec.total_parameters(), name

