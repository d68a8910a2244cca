"""Regional compilation (visrecur.nn.blocks.compile_regions, train --compile-regions): each transition block's
tensor work is compiled once and reused at every time step, while which statistics a step uses stays in
Python; the compiled model computes what the eager one does, at the first step, the last trained step and
the first step past training, in training, evaluation and recalibration."""
import copy

import pytest
import torch
import torch.nn.functional as F

from visrecur.architecture import zoo
from visrecur.nn.blocks import compile_regions
from visrecur.training import TrainingError

from training_fixtures import colour_folder, tiny_config, train_in_process

pytestmark = pytest.mark.slow  # inductor compiles

torch._dynamo = pytest.importorskip("torch._dynamo")


@pytest.fixture()
def pair():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # process-wide: other tests' compilations would count too
    torch.manual_seed(0)
    eager = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8)
    compiled = copy.deepcopy(eager)
    assert compile_regions(compiled) == len(compiled.blocks) == 4  # h1->h1, h1->h2, h2->h1, h2->h2
    yield eager, compiled
    torch._dynamo.reset()


def close(a, b, tol=1e-5):
    return float((a - b).abs().max()) <= tol


def test_training_step_equals_eager_and_compiles_once_per_block(pair):
    from torch._dynamo.utils import counters

    eager, compiled = pair
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 10, (6,))
    for model in pair:
        model.train()
        logits = model(x, readout_time=[2, 3])  # transitions run at steps 1 and 2
        sum(F.cross_entropy(out, y) for out in logits.values()).backward()
    # four blocks, each used at steps 1 and 2: four graphs, the second step reuses the first's
    assert counters["stats"]["unique_graphs"] == 4
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert close(a.grad, b.grad), name
    for a, b in zip(eager.tsbn_layers(), compiled.tsbn_layers()):  # the post-net's by readout time too
        assert a.trained_steps() == b.trained_steps()  # counted in Python, as before
        for step in a.trained_steps():
            assert close(a.stats[step].running_mean, b.stats[step].running_mean)
            assert close(a.stats[step].running_var, b.stats[step].running_var)
    steps = {step for norms in compiled.norms.values() for norm in norms for step in norm.trained_steps()}
    assert steps == {1, 2}  # readout 3 runs the transitions at steps 1 and 2


def test_evaluation_at_first_last_trained_and_past_steps_equals_eager(pair):
    eager, compiled = pair
    batches = [torch.randn(8, 3, 8, 8) for _ in range(3)]
    for model in pair:
        model.train()
        for x in batches:
            model(x, readout_time=[2, 3])
        model.eval()
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        for t in (2, 3, 4):  # first readout, last trained, first past (step 3 uses step 2's statistics)
            assert close(eager(x, readout_time=t), compiled(x, readout_time=t)), t


def test_recalibration_runs_eagerly_and_gives_the_same_statistics(pair):
    eager, compiled = pair
    batches = [(torch.randn(8, 3, 8, 8), torch.zeros(8, dtype=torch.long)) for _ in range(2)]
    for model in pair:
        model.train()
        model(batches[0][0], readout_time=[2, 3])
        model.eval()
        model.recalibrate(batches, readout_time=5)  # estimates steps 3 and 4 (cumulative averages)
    for a, b in zip(eager.tsbn_layers(), compiled.tsbn_layers()):
        assert a.trained_steps() == b.trained_steps() and {3, 4} <= set(a.trained_steps())
        for step in (3, 4):
            assert close(a.stats[step].running_mean, b.stats[step].running_mean)
    with torch.no_grad():
        x = torch.randn(4, 3, 8, 8)
        assert close(eager(x, readout_time=5), compiled(x, readout_time=5))


def test_training_with_compile_regions_matches_eager_training(tmp_path_factory):
    root = colour_folder(tmp_path_factory.mktemp("colours"))
    torch._dynamo.reset()
    plain = train_in_process(tiny_config(root, tmp_path_factory.mktemp("plain")))
    regions = train_in_process(tiny_config(root, tmp_path_factory.mktemp("regions"), compile_regions=True))
    torch._dynamo.reset()
    a, b = plain.metrics[-1], regions.metrics[-1]
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert {k: v for k, v in a.items() if "err" in k} == {k: v for k, v in b.items() if "err" in k}
    for name, value in plain.model.items():
        assert torch.allclose(value.float(), regions.model[name].float(), atol=1e-4), name


def test_compile_and_compile_regions_together_are_refused(tmp_path):
    with pytest.raises(TrainingError, match="choose one"):
        train_in_process(tiny_config(tmp_path / "none", tmp_path / "out", compile=True, compile_regions=True))
    assert not (tmp_path / "out").exists()
