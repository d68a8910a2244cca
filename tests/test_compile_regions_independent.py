"""Regional compilation checked against the eager model, case by case, from the public API alone.

Each test builds a tiny model, compiles a deep copy with ``compile_regions`` and runs both on the same
inputs: outputs, every state at every step (observers), gradients, TSBN statistics per step and errors
must agree. Time steps are checked explicitly: the first step, the last trained step and the first step
past training (TSBN keeps statistics per step, Liao & Poggio 2016, Section 3.4).

The compiler backend counts the graphs it compiles and how often they run, so a test also sees that the
compiled regions run at all (one graph per block, reused at every step) rather than only that the
results agree. Most tests use the "aot_eager" backend (dynamo's tracing and AOT autograd, the parts that
decide what runs, without code generation: seconds instead of minutes on two cores); the SGD test uses
the real default, inductor.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.backends.registry import lookup_backend

from visrecur.architecture import zoo
from visrecur.nn.blocks import TransitionBlock, compile_regions
from visrecur.errors import TimeStepError
from visrecur.nn.retime import retime

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # inductor compiles

EXACT = dict(atol=1e-5, rtol=1e-4)  # aot_eager runs the same aten ops: only summation order may differ
INDUCTOR = dict(atol=1e-4, rtol=1e-3)  # fused kernels reorder floating-point sums


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Counting:
    """A torch.compile backend wrapping another one: counts graphs compiled and runs of compiled graphs."""

    def __init__(self, inner: str = "aot_eager"):
        self.inner, self.graphs, self.runs = lookup_backend(inner), 0, 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        compiled = self.inner(gm, example_inputs)

        def counted(*args, **kwargs):
            self.runs += 1
            return compiled(*args, **kwargs)

        counted._boxed_call = getattr(compiled, "_boxed_call", False)
        return counted


def build_pair(name, backend="aot_eager", seed=0, **overrides):
    """(eager model, compiled deep copy, counting backend). BN affine parameters, where present, are set
    to random values first, so that a block given another block's (or step's) parameters would show."""
    torch.manual_seed(seed)
    overrides.setdefault("input_size", 8)
    eager = zoo.build(name, **overrides)
    with torch.no_grad():
        for pname, p in eager.named_parameters():
            if "bn_weight" in pname or pname.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif "bn_bias" in pname or pname.endswith("norm.bias"):
                p.uniform_(-0.5, 0.5)
    compiled = copy.deepcopy(eager)
    counter = Counting(backend)
    n = compile_regions(compiled, backend=counter)
    assert n == len(compiled.blocks) == sum(isinstance(m, TransitionBlock) for m in compiled.modules())
    return eager, compiled, counter


def images(batch, seed, size=8, frames=None):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 3, size, size) if frames is None else (batch, frames, 3, size, size)
    return torch.randn(shape, generator=g)


def labels(batch, seed):
    return torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(seed + 1000))


def run(model, x, readouts, until=None):
    """{T: logits} and {(state, t): tensor} of one pass, the states seen through ``model.observe``."""
    states = {}

    def keep(name, t, value):
        assert (name, t) not in states
        states[name, t] = value.detach().clone()

    with model.observe(keep):
        logits = model(x, readout_time=list(readouts), until=until)
    return logits, states


def assert_same_pass(a, b, tol):
    (logits_a, states_a), (logits_b, states_b) = a, b
    assert logits_a.keys() == logits_b.keys()
    for t in logits_a:
        torch.testing.assert_close(logits_b[t], logits_a[t], **tol, msg=lambda m: f"readout t={t}: {m}")
    assert states_a.keys() == states_b.keys()
    for key in states_a:
        torch.testing.assert_close(states_b[key], states_a[key], **tol, msg=lambda m: f"state {key}: {m}")


def assert_same_state(eager, compiled, tol):
    """Parameters and every buffer (TSBN running statistics of each step, their batch counters)."""
    a, b = eager.state_dict(), compiled.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], **tol, msg=lambda m: f"{key}: {m}")


def assert_same_grads(eager, compiled, tol):
    grads_b = dict(compiled.named_parameters())
    for name, p in eager.named_parameters():
        q = grads_b[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, **tol, msg=lambda m: f"grad {name}: {m}")


def train_forward(model, x, y, readouts):
    logits, states = run(model, x, readouts)
    loss = sum(F.cross_entropy(logits[t], y) for t in readouts)
    loss.backward()
    return loss.detach(), (logits, states)


def block_calls(model, x, readouts, **kwargs):
    """How often each transition block runs in one pass of (a copy of) the eager model (forward hooks)."""
    model, calls = copy.deepcopy(model), {}
    hooks = [block.register_forward_hook(lambda m, i, o, k=key: calls.__setitem__(k, calls.get(k, 0) + 1))
             for key, block in model.blocks.items()]
    try:
        with torch.no_grad():
            model(x, readout_time=list(readouts), **kwargs)
    finally:
        for h in hooks:
            h.remove()
    return calls


# (model, overrides, readout times trained, block runs per pass counted by hand)
TRAINING_CASES = [
    # 2 states, all 4 transitions: step 1 runs h1->h1, h1->h2 (h2 is empty at t=0); step 2 runs all 4
    ("frnn_2state_shared", dict(channels=(2, 3), readout_time=3), [2, 3], 6),
    # TSBN off (the paper's ablation): one set of statistics updated by every step
    ("frnn_2state_shared", dict(channels=(2, 3), readout_time=3, time_specific_bn=False), [2, 3], 6),
    # time-variant weights: a block per (transition, step), each compiled on its own
    ("frnn_2state_unshared", dict(channels=(2, 3), readout_time=3), [2, 3], 6),
    # sequential multi-state ResNet: h1->h1 shared over N = 6 - 3 = 3 runs (t = 1..3), the projection
    # shortcut block h1->h2 at t = 4, h2->h2 at t = 5
    ("resnet_2state_shared", dict(channels=(2, 4), readout_time=6), [6], 5),
    # adjacent-only, BN affine per block: t1: h1->h1, h1->h2; t2: + h2->h1, h2->h2, h2->h3; t3: all 7
    ("frnn_3state_adjacent_shared", dict(channels=(2, 3, 4), readout_time=4, bn_affine=True), [3, 4], 14),
    # 4 states, all 16 transitions, two-octave bypasses resampled by pooling / upsampling (rest = 2):
    # t1: V1 -> all 4; t2, t3: 16 each
    ("frnn_4state_shared", dict(channels=(2, 2, 2, 2), readout_time=4, input_size=16), [4], 36),
]


@pytest.mark.parametrize("name,overrides,readouts,runs_per_pass", TRAINING_CASES,
                         ids=["frnn2", "frnn2_no_tsbn", "frnn2_unshared", "resnet2", "frnn3_adjacent_affine",
                              "frnn4_resampling"])
def test_training_passes_equal_and_one_graph_per_block(name, overrides, readouts, runs_per_pass):
    eager, compiled, counter = build_pair(name, **overrides)
    size = eager.spec.input_size[0]
    calls = block_calls(eager, images(4, 99, size), readouts)
    assert sum(calls.values()) == runs_per_pass
    eager.train(), compiled.train()
    for k in range(2):  # the second pass must reuse the graphs of the first
        x, y = images(4, k, size), labels(4, k)
        loss_a, pass_a = train_forward(eager, x, y, readouts)
        loss_b, pass_b = train_forward(compiled, x, y, readouts)
        torch.testing.assert_close(loss_b, loss_a, **EXACT)
        assert_same_pass(pass_a, pass_b, EXACT)
        assert_same_grads(eager, compiled, EXACT)
        assert_same_state(eager, compiled, EXACT)
        # one graph per block that runs, whatever the step; every block run goes through it
        assert counter.graphs == len(calls)
        assert counter.runs == (k + 1) * runs_per_pass
        eager.zero_grad(), compiled.zero_grad()
    # TSBN: the first step's statistics (t = 1) were updated by both batches, slot 0 by none
    norms = compiled.norms[next(iter(compiled.norms))][0]
    if norms.time_specific:
        assert int(norms.stats[1].num_batches_tracked) == 2
        assert int(norms.stats[0].num_batches_tracked) == 0


def test_sgd_steps_with_inductor_equal_eager():
    """Three SGD steps (momentum, weight decay) of the 1-state ResNet (one block shared by steps 1 and 2:
    one inductor compilation keeps this test short) with the loss over readouts 1-3, on the real backend:
    losses, gradients, weights, per-step statistics and the optimizer's momentum stay equal."""
    eager, compiled, counter = build_pair("resnet_1state_shared", backend="inductor", channels=2,
                                          readout_time=3, bn_affine=True)
    eager.train(), compiled.train()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4) for m in (eager, compiled)]
    for step in range(3):
        x, y = images(8, 10 + step), labels(8, 10 + step)
        for opt in opts:
            opt.zero_grad()
        loss_a, pass_a = train_forward(eager, x, y, [1, 2, 3])
        loss_b, pass_b = train_forward(compiled, x, y, [1, 2, 3])
        torch.testing.assert_close(loss_b, loss_a, **INDUCTOR)
        assert_same_pass(pass_a, pass_b, INDUCTOR)
        assert_same_grads(eager, compiled, INDUCTOR)
        for opt in opts:
            opt.step()
    assert counter.graphs == 1 and counter.runs == 3 * 2
    assert_same_state(eager, compiled, INDUCTOR)
    buffers = [[opt.state[p]["momentum_buffer"] for p in m.parameters()] for opt, m in zip(opts, (eager, compiled))]
    for a, b in zip(*buffers):
        torch.testing.assert_close(b, a, **INDUCTOR)
    # TSBN: the transition ran at steps 1 and 2 (3 batches each), never at 0; the post-net read out at 1-3
    for norm in compiled.norms["h1->h1"]:
        assert [int(s.num_batches_tracked) for s in norm.stats] == [0, 3, 3]
    assert [int(s.num_batches_tracked) for s in compiled.postnet.norm.stats] == [0, 3, 3, 3]
    # evaluation at the first readout, the last trained one and the first past training
    eager.eval(), compiled.eval()
    with torch.no_grad():
        x = images(5, 50)
        assert_same_pass(run(eager, x, [1, 3, 4]), run(compiled, x, [1, 3, 4]), INDUCTOR)


def trained_pair(name="frnn_2state_shared", passes=2, readouts=None, **overrides):
    """Eager and compiled models after ``passes`` identical training passes and SGD steps, the loss over
    ``readouts`` (default: every readout up to the spec's)."""
    overrides = {"channels": (2, 3), "readout_time": 3, **overrides}
    eager, compiled, counter = build_pair(name, **overrides)
    if readouts is None:
        readouts = list(range(eager.spec.graph.earliest_readout, eager.spec.readout_time + 1))
    eager.train(), compiled.train()
    for k in range(passes):
        x, y = images(8, 20 + k, eager.spec.input_size[0]), labels(8, 20 + k)
        for model in (eager, compiled):
            model.zero_grad()
            train_forward(model, x, y, readouts)
            with torch.no_grad():  # one identical plain SGD step
                for p in model.parameters():
                    if p.grad is not None:  # h2->h1 at the last step feeds no readout
                        p -= 0.1 * p.grad
    assert_same_state(eager, compiled, EXACT)
    return eager, compiled, counter


def test_evaluation_runs_the_compiled_region():
    eager, compiled, counter = trained_pair()
    runs = counter.runs
    compiled.eval()
    with torch.no_grad():
        compiled(images(4, 1), readout_time=3)
    assert counter.runs - runs == 6  # 2 + 4 block runs at steps 1 and 2
    assert counter.graphs == 4 + 4  # evaluation compiles once per block


def test_evaluation_past_training_and_until():
    """Readouts at the first (2), last trained (3) and first untrained (4) time, and states run on with
    ``until`` two steps past the last readout: equal at every step, in eval with beyond_trained='last'."""
    eager, compiled, _ = trained_pair()
    eager.eval(), compiled.eval()
    x = images(6, 7)
    with torch.no_grad():
        a, b = run(eager, x, [2, 3, 4], until=5), run(compiled, x, [2, 3, 4], until=5)
    assert_same_pass(a, b, EXACT)
    assert {t for _, t in a[1]} == set(range(6))  # t = 0..5 observed
    # and without observers: a single readout past training
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, readout_time=4, until=6), eager(x, readout_time=4), **EXACT)


def test_beyond_trained_error_raises_the_same_time_step_error():
    eager, compiled, _ = trained_pair(beyond_trained="error", passes=1, readouts=[3])
    eager.eval(), compiled.eval()
    x = images(4, 3)
    with torch.no_grad():
        # the trained readout: both run (transition steps 1 and 2, post-net step 3 are trained)
        torch.testing.assert_close(compiled(x, readout_time=3), eager(x, readout_time=3), **EXACT)
        # step 3 (first past training) of the transitions; the post-net at 4 (past training) and at 2
        # (a readout training never made)
        for kwargs in (dict(readout_time=3, until=3), dict(readout_time=4), dict(readout_time=2)):
            messages = []
            for model in (eager, compiled):
                with pytest.raises(TimeStepError) as err:
                    model(x, **kwargs)
                messages.append(str(err.value))
            assert messages[0] == messages[1], kwargs
            assert "beyond_trained='last'" in messages[0]
    # in training, a step past the statistics built for: the same error too
    eager.train(), compiled.train()
    messages = []
    for model in (eager, compiled):
        with pytest.raises(TimeStepError, match="extend_time") as err:
            model(x, readout_time=3, until=3)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_inhomogeneous_input_frames():
    """A 5-D input (a frame per step, Section 2.2) and a list with a missing frame: equal states and
    readouts in training and evaluation; the frames do change the states (the input is not ignored)."""
    eager, compiled, counter = build_pair("frnn_2state_shared", channels=(2, 3), readout_time=3)
    frames = images(4, 5, frames=3)
    y = labels(4, 5)
    eager.train(), compiled.train()
    loss_a, a = train_forward(eager, frames, y, [2, 3])
    loss_b, b = train_forward(compiled, frames, y, [2, 3])
    torch.testing.assert_close(loss_b, loss_a, **EXACT)
    assert_same_pass(a, b, EXACT)
    assert_same_grads(eager, compiled, EXACT)
    assert counter.runs == 6
    eager.eval(), compiled.eval()
    with torch.no_grad():
        seq = [frames[:, 0], None, frames[:, 2]]
        a, b = run(eager, seq, [2, 3, 4], until=4), run(compiled, seq, [2, 3, 4], until=4)
        assert_same_pass(a, b, EXACT)
        homogeneous = run(compiled, frames[:, 0], [3])[1]
    assert torch.equal(b[1]["h1", 1], homogeneous["h1", 1])  # no frame at t = 1
    assert not torch.allclose(b[1]["h1", 2], homogeneous["h1", 2])  # frame 2 enters at t = 2


def test_bf16_autocast_on_cpu_after_float32():
    """A float32 training pass, then a bf16-autocast one on the same compiled model: the second must not
    reuse the float32 graphs (autocast is part of what selects a graph) and must match eager bf16."""
    eager, compiled, counter = build_pair("frnn_2state_shared", channels=(2, 3), readout_time=3)
    eager.train(), compiled.train()
    x, y = images(8, 29), labels(8, 29)
    _, a = train_forward(eager, x, y, [2, 3])
    _, b = train_forward(compiled, x, y, [2, 3])
    assert_same_pass(a, b, EXACT)
    assert counter.graphs == 4
    eager.zero_grad(), compiled.zero_grad()
    x, y = images(8, 30), labels(8, 30)
    results = []
    for model in (eager, compiled):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, states = run(model, x, [2, 3])
            loss = sum(F.cross_entropy(logits[t].float(), y) for t in (2, 3))
        loss.backward()
        results.append((loss.detach(), logits, states))
    assert counter.graphs == 8 and counter.runs == 12  # a bf16 graph per block, run at every step
    (loss_a, logits_a, states_a), (loss_b, logits_b, states_b) = results
    assert {t: v.dtype for t, v in logits_b.items()} == {t: v.dtype for t, v in logits_a.items()}
    assert states_b["h2", 2].dtype == states_a["h2", 2].dtype == torch.bfloat16  # convolutions ran in bf16
    # bf16 keeps 8 bits of mantissa: rounding at other places than eager must stay within a few ulps
    bf16 = dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(loss_b, loss_a, **bf16)
    for t in (2, 3):
        torch.testing.assert_close(logits_b[t].float(), logits_a[t].float(), **bf16)
    for key in states_a:
        torch.testing.assert_close(states_b[key].float(), states_a[key].float(), **bf16)
    assert_same_grads(eager, compiled, dict(atol=2e-2, rtol=5e-2))
    for norm in compiled.norms["h1->h2"]:  # running statistics stay float32
        assert norm.stats[1].running_mean.dtype == torch.float32
    assert_same_state(eager, compiled, bf16)


def test_smaller_last_batch_and_other_batch_sizes():
    eager, compiled, counter = build_pair("frnn_2state_shared", channels=(2, 3), readout_time=3)
    eager.train(), compiled.train()
    for k, batch in enumerate((8, 8, 3, 8)):  # an epoch's short last batch, then the next epoch
        x, y = images(batch, 40 + k), labels(batch, 40 + k)
        loss_a, a = train_forward(eager, x, y, [2, 3])
        loss_b, b = train_forward(compiled, x, y, [2, 3])
        torch.testing.assert_close(loss_b, loss_a, **EXACT)
        assert_same_pass(a, b, EXACT)
        assert_same_grads(eager, compiled, EXACT)
        eager.zero_grad(), compiled.zero_grad()
    assert_same_state(eager, compiled, EXACT)
    assert counter.runs == 4 * 6
    assert counter.graphs == 2 * 4  # one graph per block and batch size, not per step
    eager.eval(), compiled.eval()
    with torch.no_grad():
        for batch in (1, 5):
            x = images(batch, 60 + batch)
            assert_same_pass(run(eager, x, [2, 3, 4]), run(compiled, x, [2, 3, 4]), EXACT)


def test_retime_a_compiled_resnet():
    """The 2-state ResNet trained at t = 6 (N = 3 runs of h1->h1) retimed to t = 5 (N = 2) and t = 8
    (N = 5: two runs past training) from the compiled model equals the one retimed from the eager model;
    compiling the retimed model changes nothing either."""
    eager, compiled, _ = trained_pair("resnet_2state_shared", channels=(2, 4), readout_time=6)
    x = images(4, 70)
    for readout in (5, 8):
        new_a, new_b = retime(eager, readout), retime(compiled, readout)
        new_a.eval(), new_b.eval()
        with torch.no_grad():
            assert_same_pass(run(new_a, x, [readout]), run(new_b, x, [readout]), EXACT)
        new_c = copy.deepcopy(new_a)
        counter = Counting()
        compile_regions(new_c, backend=counter)
        new_a.train(), new_c.train()
        y = labels(4, 70)
        loss_a, a = train_forward(new_a, x, y, [readout])
        loss_c, c = train_forward(new_c, x, y, [readout])
        assert_same_pass(a, c, EXACT)
        assert_same_grads(new_a, new_c, EXACT)
        assert counter.graphs == 3 and counter.runs == readout - 1  # N runs of h1->h1, h1->h2, h2->h2


def test_state_dict_round_trip():
    """A compiled model's state_dict has the eager model's keys only and, loaded into a fresh eager
    model, gives the same outputs at the first, last trained and first untrained readout; an eager
    state_dict loaded into a compiled model (after its own training) likewise."""
    eager, compiled, counter = trained_pair()
    state = compiled.state_dict()
    assert state.keys() == zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3,
                                     input_size=8).state_dict().keys()
    fresh = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8)
    fresh.load_state_dict(state)
    other_eager, other_compiled, _ = trained_pair(passes=1, beyond_trained="last")
    other_compiled.load_state_dict(eager.state_dict())
    x = images(4, 80)
    for model in (eager, compiled, fresh, other_compiled):
        model.eval()
    with torch.no_grad():
        reference = run(eager, x, [2, 3, 4], until=4)
        for model in (compiled, fresh, other_compiled):
            assert_same_pass(reference, run(model, x, [2, 3, 4], until=4), EXACT)
    # and training on from the loaded state goes through the compiled regions with equal results
    eager.train(), other_compiled.train()
    x, y = images(8, 81), labels(8, 81)
    eager.zero_grad(), other_compiled.zero_grad()
    _, a = train_forward(eager, x, y, [2, 3])
    _, b = train_forward(other_compiled, x, y, [2, 3])
    assert_same_pass(a, b, EXACT)
    assert_same_grads(eager, other_compiled, EXACT)


def test_recalibration_past_training_equal():
    """Statistics estimated for steps past training (model.recalibrate to readout 5) are equal, and
    so are the readouts at 3 (last trained), 4 and 5 afterwards."""
    eager, compiled, _ = trained_pair()
    batches = [images(8, 90 + k) for k in range(2)]
    steps_a = eager.recalibrate(batches, 5)
    steps_b = compiled.recalibrate(batches, 5)
    assert steps_a == steps_b == [3, 4, 5]
    assert_same_state(eager, compiled, EXACT)
    eager.eval(), compiled.eval()
    with torch.no_grad():
        x = images(4, 95)
        assert_same_pass(run(eager, x, [3, 4, 5]), run(compiled, x, [3, 4, 5]), EXACT)


def test_training_on_after_extend_time():
    """Trained at readout 3 (steps 1-2), extended to 5 and trained on at readouts 3 and 5: the new
    steps' statistics (3, 4) are new buffers of the same shapes, so the same graphs serve them."""
    eager, compiled, counter = build_pair("frnn_2state_shared", channels=(2, 3), readout_time=3)
    eager.train(), compiled.train()
    x, y = images(4, 13), labels(4, 13)
    for model in (eager, compiled):
        train_forward(model, x, y, [3])
        model.extend_time(5)
    _, a = train_forward(eager, x, y, [3, 5])
    _, b = train_forward(compiled, x, y, [3, 5])
    assert_same_pass(a, b, EXACT)
    assert_same_grads(eager, compiled, EXACT)
    assert_same_state(eager, compiled, EXACT)
    assert counter.graphs == 4 and counter.runs == 6 + 14  # steps 1-2, then 1-4 (2 + 4 + 4 + 4)
    for norm in compiled.norms["h2->h2"]:  # h2 first holds data at t = 1: h2->h2 runs from step 2
        assert [int(s.num_batches_tracked) for s in norm.stats] == [0, 0, 2, 1, 1]


def test_deepcopy_of_a_compiled_model_uses_its_own_weights():
    """A copy of a compiled model (as a training loop might keep) shares the compiled functions; with
    its weights changed it must still compute with its own weights, not the original's."""
    eager, compiled, counter = build_pair("frnn_2state_shared", channels=(2, 3), readout_time=3)
    clone = copy.deepcopy(compiled)
    eager_clone = copy.deepcopy(eager)
    with torch.no_grad():
        for model in (clone, eager_clone):
            for p in model.blocks.parameters():
                p.mul_(-1.5)
    x, y = images(4, 11), labels(4, 11)
    for model in (eager, compiled, clone, eager_clone):
        model.train()
    passes = [train_forward(m, x, y, [2, 3]) for m in (eager, compiled, eager_clone, clone)]
    assert_same_pass(passes[0][1], passes[1][1], EXACT)
    assert_same_pass(passes[2][1], passes[3][1], EXACT)
    assert not torch.allclose(passes[0][1][0][3], passes[2][1][0][3])
    assert_same_grads(eager_clone, clone, EXACT)
    assert counter.runs == 12


def test_channels_last_training():
    """--channels-last: the model and its inputs in channels-last memory format."""
    eager, compiled, counter = build_pair("resnet_2state_shared", channels=(2, 4), readout_time=6)
    for model in (eager, compiled):
        model.to(memory_format=torch.channels_last).train()
    x = images(4, 12).contiguous(memory_format=torch.channels_last)
    y = labels(4, 12)
    loss_a, a = train_forward(eager, x, y, [6])
    loss_b, b = train_forward(compiled, x, y, [6])
    assert_same_pass(a, b, EXACT)
    assert_same_grads(eager, compiled, EXACT)
    assert counter.runs == 5
