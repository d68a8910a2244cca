"""Independent checks written from Liao & Poggio (2016) and visrecur's public API / docs only.

Every expectation below is derived by hand (hand-written unrolls, hand counts); the library is only
used for the model's own weights and for the thing under test.
"""
from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import visrecur
from visrecur.artifacts.io import data_root
from visrecur import FRNN, Graph, ModelSpec, State, Transition
from visrecur.nn.blocks import TimeSpecificBatchNorm
from visrecur.errors import SpecError, TimeStepError

torch.set_num_threads(1)
EPS = 1e-5
REPO = Path(__file__).resolve().parents[1]
DATA = data_root() / "cifar10-jpeg"


# ----------------------------------------------------------------------------------------------
# helpers: a hand-written unroll, independent of FRNN.forward / TransitionBlock.forward / TSBN.slot
# ----------------------------------------------------------------------------------------------
def two_state(readout=4, time_steps=None, beyond="last", c=(4, 8), size=8, windows=None):
    states = [State("h1", c[0], size), State("h2", c[1], size // 2)]
    trs = [Transition("h1", "h1"), Transition("h1", "h2"), Transition("h2", "h1", windows=windows),
           Transition("h2", "h2")]
    return ModelSpec(Graph(states, trs), readout_time=readout, time_steps=time_steps, input_size=(size, size),
                     beyond_trained=beyond)


def four_state(readout=3, c=(2, 2, 4, 4), size=16, **kw):
    return visrecur.spec("frnn_4state_shared", channels=c, input_size=size, readout_time=readout, **kw)


def my_slot(norm: TimeSpecificBatchNorm, t: int) -> int:
    """Docs: own trained statistics; else the last trained step before t; else the first trained step;
    a never-trained model uses every built step as it is."""
    trained = [s for s, bn in enumerate(norm.stats) if int(bn.num_batches_tracked) > 0]
    if not trained:
        return t
    if t in trained:
        return t
    before = [s for s in trained if s < t]
    return before[-1] if before else trained[0]


def my_bn(x, norm, t, training, weight=None, bias=None, record=None):
    if record is not None:
        record[(id(norm), t)] = [x.detach().clone()]  # each norm is fed once per step
    if training:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
    else:
        s = norm.stats[my_slot(norm, t)]
        mean, var = s.running_mean, s.running_var
    y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + EPS)
    if weight is not None:
        y = y * weight[None, :, None, None] + bias[None, :, None, None]
    return y


def my_block(model, tr, x, t, training, record=None):
    graph = model.spec.graph
    blk, norms = model.blocks[graph.weight_key(tr, t)], model.norms[tr.key]
    src, tgt = graph.state(tr.source).size[0], graph.state(tr.target).size[0]
    up = tgt > src
    factor = max(src, tgt) // min(src, tgt)
    strides = [conv.stride[0] for conv in blk.convs]
    rest = factor // math.prod(strides)
    if rest > 1 and not up:
        x = F.avg_pool2d(x, rest)
    for k, conv in enumerate(blk.convs):
        w = b = None
        if blk.bn_weight is not None:
            w, b = blk.bn_weight[k], blk.bn_bias[k]
        x = conv(F.relu(my_bn(x, norms[k], t, training, w, b, record)))
    if rest > 1 and up:
        x = F.interpolate(x, scale_factor=rest, mode="nearest")
    return x


def my_arrivals(graph):
    """Paper: 'at t=0 all states are empty except the first'; a transition starts when its input is
    populated; each transition takes time 1."""
    names = [s.name for s in graph.states]
    arrival = {n: None for n in names}
    arrival[names[0]] = 0
    for t in range(1, 50):
        for tr in graph.transitions:
            if arrival[tr.source] is not None and arrival[tr.source] <= t - 1 and tr.active(t) \
                    and arrival[tr.target] is None:
                arrival[tr.target] = t
    return arrival


def my_unroll(model, x, T, training, record=None):
    """h_j(t) = h_j(t-1) + mean_i f_ij(h_i(t-1)); post-net reads h_last(T-1) with its step-T statistics."""
    graph = model.spec.graph
    names = [s.name for s in graph.states]
    arrival = my_arrivals(graph)
    h = {n: None for n in names}
    h[names[0]] = model.prenet(x)
    for t in range(1, T):
        new = dict(h)
        for tgt in names:
            outs = [my_block(model, tr, h[tr.source], t, training, record) for tr in graph.transitions
                    if tr.target == tgt and tr.active(t) and arrival[tr.source] <= t - 1]
            if outs:
                agg = sum(outs) / len(outs) if graph.aggregation == "mean" else sum(outs)
                new[tgt] = agg + (h[tgt] if h[tgt] is not None else 0)
        h = new
    pn = model.postnet.norm
    z = F.relu(my_bn(h[names[-1]], pn, T, training, pn.weight, pn.bias, record))
    return model.postnet.fc(z.mean(dim=(2, 3)))


def train_steps(model, x, y, times, n=3, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(n):
        out = model(x, readout_time=list(times))
        loss = sum(F.cross_entropy(out[t], y) for t in times)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def data(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


# ----------------------------------------------------------------------------------------------
# 1. time semantics
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [2, 3, 5])
def test_manual_unroll_two_state_train_mode(T):
    """README/Section 1: at t=0 only the first state holds data; a transition runs at t when its source
    was populated at t-1; h_j(t) = h_j(t-1) + mean_i f_ij(h_i(t-1)); readout T reads the last state at
    T-1. Train mode (batch statistics)."""
    torch.manual_seed(0)
    model = FRNN(two_state(readout=5))
    x, _ = data()
    model.train()
    with torch.no_grad():
        expected = my_unroll(model, x, T, training=True)
        got = model(x, readout_time=T)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("T", [2, 3, 4])
def test_manual_unroll_two_state_eval_after_training(T):
    """Same semantics in eval mode after training at readout times [2, 3, 4]: each step uses its own
    trained TSBN statistics (Section 1 'time-specific normalization')."""
    torch.manual_seed(1)
    model = FRNN(two_state(readout=4))
    x, y = data()
    train_steps(model, x, y, [2, 3, 4])
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=T), my_unroll(model, x, T, False), rtol=1e-4, atol=1e-5)


def test_manual_unroll_with_time_window():
    """Transition matrix (i, j, t): a feedback transition blocked before t=3 does not run at t=2."""
    torch.manual_seed(2)
    model = FRNN(two_state(readout=5, windows=((3, None),)))
    x, _ = data()
    model.train()
    m = model.spec.graph.transition_matrix(4)
    assert not m[1, 0, :3].any() and m[1, 0, 3:].all()
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=4), my_unroll(model, x, 4, True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_manual_unroll_four_state_with_bypass_resampling(mode):
    """4-state FRNN of Fig. 3 (tiny widths): every-to-every transitions incl. V1->IT (pool + 2 stride-2
    convs) and IT->V1 (2 stride-2 deconvs + nearest x2), mean aggregation, +I, readout at T-1."""
    torch.manual_seed(3)
    model = FRNN(four_state(readout=4))
    x, y = data(size=16)
    if mode == "eval":
        train_steps(model, x, y, [2, 3, 4], n=2)
    model.train(mode == "train")
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=4), my_unroll(model, x, 4, mode == "train"),
                                   rtol=1e-4, atol=1e-5)


def test_readout_reads_last_state_at_T_minus_1_via_observer():
    """'readout time T reads the last state as it is at T-1': logits(T) == postnet(h_last(T-1), T)."""
    torch.manual_seed(4)
    model = FRNN(two_state(readout=4)).eval()
    x, _ = data()
    seen = {}
    with torch.no_grad(), model.observe(lambda s, t, v: seen.__setitem__((s, t), v.clone())):
        logits = model(x, readout_time=4)
        direct = model.postnet(seen[("h2", 3)], 4)
    torch.testing.assert_close(logits, direct)
    assert [k for k in seen if k[1] == 0] == [("h1", 0)]
    assert max(t for _, t in seen) == 3


def test_arrival_times_and_earliest_readout():
    """Paper: only the first state at t=0; each transition takes 1 step. 4-state FRNN (bypasses):
    V2, V4, IT arrive at 1; adjacent-only: 1, 2, 3, so its earliest readout is 4."""
    full = four_state().graph
    adj = visrecur.spec("frnn_4state_adjacent_shared", channels=(2, 2, 4, 4), input_size=16).graph
    assert [full.arrival_time(n) for n in ("V1", "V2", "V4", "IT")] == [0, 1, 1, 1]
    assert [adj.arrival_time(n) for n in ("V1", "V2", "V4", "IT")] == [0, 1, 2, 3]
    assert full.earliest_readout == 2 and adj.earliest_readout == 4
    with pytest.raises(SpecError):
        visrecur.spec("frnn_4state_adjacent_shared", readout_time=3)


def test_transition_matrix_adjacent_four_state():
    """Transition matrix (i, j, t) = active and source populated at t-1 (hand-computed arrivals)."""
    g = visrecur.spec("frnn_4state_adjacent_shared").graph
    arrival = [0, 1, 2, 3]
    m = g.transition_matrix(6)
    expected = np.zeros_like(m)
    for i in range(4):
        for j in range(4):
            for t in range(1, 7):
                expected[i, j, t] = abs(i - j) <= 1 and arrival[i] <= t - 1
    np.testing.assert_array_equal(m, expected)
    assert not m[:, :, 0].any()


@pytest.mark.parametrize("T", [4, 7, 13])
def test_fig4a_two_state_resnet_unrolls_first_state_T_minus_3(T):
    """Fig. 5A caption: 'trained with readout time t=13 (i.e., 1st state unrolling factor N=t-3=10)';
    Fig. 4A: the second state is unrolled once. The last transition runs at T-1."""
    g = visrecur.spec("resnet_2state_shared", readout_time=T).graph
    m = g.transition_matrix(T + 5)
    assert m[0, 0].sum() == T - 3
    assert m[0, 1].sum() == 1 and m[1, 1].sum() == 1
    assert np.nonzero(m[0, 0])[0].tolist() == list(range(1, T - 2))
    assert np.nonzero(m.any(axis=(0, 1)))[0].max() == T - 1


def test_fig4a_model_output_depends_on_last_state_at_T_minus_1():
    """2-state ResNet built at T: the h2 state observed at T-1 is what the post-net reads."""
    torch.manual_seed(5)
    model = visrecur.build("resnet_2state_shared", readout_time=5, channels=(2, 4), input_size=8).eval()
    x, _ = data()
    seen = {}
    with torch.no_grad(), model.observe(lambda s, t, v: seen.__setitem__((s, t), v.clone())):
        logits = model(x)
        torch.testing.assert_close(logits, model.postnet(seen[("h2", 4)], 5))
    assert min(t for s, t in seen if s == "h2") == 3  # N = 2 self steps at 1..2, h1->h2 at 3


def test_table1_depths():
    """Table 1: 3-state FRNN depth 13 at readout t=5 and 23 at t=10."""
    assert visrecur.spec("frnn_3state_shared").depth(5) == 13
    assert visrecur.spec("frnn_3state_shared", readout_time=10).depth(10) == 23


# ----------------------------------------------------------------------------------------------
# 2. TSBN past the trained steps
# ----------------------------------------------------------------------------------------------
def trained_two_state(beyond="last", seed=6):
    torch.manual_seed(seed)
    model = FRNN(two_state(readout=3, beyond=beyond))  # time_steps = 3: transitions 1..2, post-net ..3
    x, y = data()
    train_steps(model, x, y, [2, 3])
    return model, x


def n_tracked(norm, t):
    return int(norm.stats[t].num_batches_tracked) if t < len(norm.stats) else 0


def test_tsbn_every_used_slot_is_trained():
    """docs/conventions.md: a step's statistics are trained once estimated from data; training at
    readout times [2, 3] must update every slot a forward pass at t <= 3 uses, and only those."""
    model, _ = trained_two_state()
    g = model.spec.graph
    for tr in g.transitions:
        for norm in model.norms[tr.key]:
            for t in range(len(norm.stats)):
                uses = 1 <= t <= 2 and g.runs(tr, t)
                assert (n_tracked(norm, t) > 0) == uses, (tr.key, t)
    pn = model.postnet.norm
    assert [n_tracked(pn, t) > 0 for t in range(len(pn.stats))] == [False, False, True, True]
    assert model.untrained_steps(3) == []
    assert "every step up to readout 3 uses statistics estimated for it" in model.describe_statistics(3)
    assert model.untrained_steps(4) == [3, 4]


def test_tsbn_first_step_past_training_uses_last_trained_statistics():
    """README: 'last' (default) normalises with the last trained step's statistics past training.
    Hand unroll at T=4 (transition step 3 -> step 2's statistics, post-net 4 -> 3's) == model."""
    model, x = trained_two_state()
    with torch.no_grad():
        got = model(x, readout_time=4)
        torch.testing.assert_close(got, my_unroll(model, x, 4, False), rtol=1e-4, atol=1e-5)
        # perturbing the last trained step's statistics changes the output at T=4 ...
        m2 = copy.deepcopy(model)
        m2.norms["h1->h1"][0].stats[2].running_mean += 3.0
        assert not torch.allclose(m2(x, readout_time=4), got)
        # ... and perturbing an untrained slot (after extend_time) does not
        m3 = copy.deepcopy(model)
        m3.extend_time(4)
        for norm in [n for ns in m3.norms.values() for n in ns]:
            norm.stats[3].running_mean += 5.0
            norm.stats[3].running_var *= 7.0
        m3.postnet.norm.stats[4].running_mean += 5.0
        torch.testing.assert_close(m3(x, readout_time=4), got)
        # first and last trained steps are unaffected by perturbing the slot past them
        torch.testing.assert_close(m3(x, readout_time=2), model(x, readout_time=2))
        torch.testing.assert_close(m3(x, readout_time=3), model(x, readout_time=3))


def test_tsbn_error_refuses_exactly_at_first_untrained_step():
    """README: beyond_trained='error' refuses at the first step without trained statistics."""
    model, x = trained_two_state(beyond="error")
    with torch.no_grad():
        model(x, readout_time=2)
        model(x, readout_time=3)
        with pytest.raises(TimeStepError):
            model(x, readout_time=4)
        with pytest.raises(TimeStepError):
            model(x, readout_time=[2, 3, 4])
    assert "refused" in model.describe_statistics(4)


def _snapshot(model, steps_trans, steps_post):
    snap = {}
    for key, ns in model.norms.items():
        for k, n in enumerate(ns):
            for t in steps_trans:
                if n_tracked(n, t):
                    snap[(key, k, t)] = (n.stats[t].running_mean.clone(), n.stats[t].running_var.clone())
    for t in steps_post:
        s = model.postnet.norm.stats[t]
        snap[("post", 0, t)] = (s.running_mean.clone(), s.running_var.clone())
    return snap


def _check_recalibrated(model, x, slots):
    """Every recalibrated (norm, t) slot holds mean / unbiased variance of the inputs an evaluation-mode
    unroll (my_unroll, final statistics) feeds it."""
    record = {}
    with torch.no_grad():
        for T in (2, 3, 4):  # post-net slots are fed by the readout at T only
            my_unroll(model, x, T, False, record)
    by_id = {id(n): n for ns in model.norms.values() for n in ns}
    by_id[id(model.postnet.norm)] = model.postnet.norm
    checked = 0
    for (nid, t), inputs in record.items():
        norm = by_id[nid]
        if (nid, t) not in slots:
            continue
        inp = torch.cat(inputs)  # one norm may be fed at a step by one use only
        assert len(inputs) == 1
        torch.testing.assert_close(norm.stats[t].running_mean, inp.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(norm.stats[t].running_var, inp.var(dim=(0, 2, 3), unbiased=True),
                                   rtol=1e-4, atol=1e-5)
        checked += 1
    assert checked == len(slots)


def test_recalibration_estimates_missing_steps_from_evaluation_inputs():
    """README: model.recalibrate estimates every missing step's statistics, in time order, from
    inputs computed exactly as evaluation computes them; trained statistics stay as they are."""
    model, x = trained_two_state()
    before = _snapshot(model, [1, 2], [2, 3])
    steps = model.recalibrate([x], 4)
    assert steps == [3, 4]
    after = _snapshot(model, [1, 2], [2, 3])
    assert before.keys() == after.keys()
    for k in before:
        torch.testing.assert_close(before[k][0], after[k][0], rtol=0, atol=0)
        torch.testing.assert_close(before[k][1], after[k][1], rtol=0, atol=0)
    slots = {(id(n), 3) for ns in model.norms.values() for n in ns}
    slots.add((id(model.postnet.norm), 4))
    _check_recalibrated(model, x, slots)
    assert model.untrained_steps(4) == []


def test_recalibration_of_first_last_and_past_steps():
    """model.recalibrate(..., steps=[1, 2, 3]) re-estimates the first step, the last trained step and
    the first step past it, each consistent with an evaluation unroll using the final statistics."""
    model, x = trained_two_state()
    model.recalibrate([x], 4, steps=[1, 2, 3])
    g = model.spec.graph
    slots = set()
    for tr in g.transitions:
        for n in model.norms[tr.key]:
            slots |= {(id(n), t) for t in (1, 2, 3) if g.runs(tr, t)}
    slots |= {(id(model.postnet.norm), t) for t in (2, 3)}
    _check_recalibrated(model, x, slots)


def test_recalibration_two_batches_is_cumulative_average():
    """Docstring: statistics are accumulated as a cumulative average over the batches."""
    model, x = trained_two_state()
    xa, xb = x[:3], x[3:]
    model.recalibrate([xa, xb], 4)
    n = model.norms["h1->h1"][0]
    recs = []
    for part in (xa, xb):
        r = {}
        with torch.no_grad():
            my_unroll(model, part, 4, False, r)
        recs.append(r[(id(n), 3)][0])
    torch.testing.assert_close(n.stats[3].running_mean, sum(r.mean(dim=(0, 2, 3)) for r in recs) / 2,
                               rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# 3. resampling, parameter counts and MACs
# ----------------------------------------------------------------------------------------------
ZOO_SMALL = {
    "frnn_2state_shared": dict(channels=(2, 4), input_size=16),
    "frnn_3state_shared": dict(channels=(2, 4, 4), input_size=16),
    "frnn_3state_adjacent_shared": dict(channels=(2, 4, 4), input_size=16),
    "frnn_4state_shared": dict(channels=(2, 2, 4, 4), input_size=16),
    "frnn_4state_adjacent_shared": dict(channels=(2, 2, 4, 4), input_size=16),
    "resnet_2state_shared": dict(channels=(2, 4), input_size=16),
    "resnet_3state_shared": dict(channels=(2, 4, 4), input_size=16),
    "resnet_4state_imagenet_shared": dict(channels=(2, 4, 4, 8), input_size=32),
}


@pytest.mark.parametrize("name", sorted(ZOO_SMALL))
def test_every_pixel_read_and_written(name):
    """docs/zoo.md 'Resampling between states': every input pixel reaches the output and every output
    pixel is written, for every zoo transition between states of different sizes."""
    model = visrecur.build(name, **ZOO_SMALL[name]).eval()
    g = model.spec.graph
    inp = model.spec.input_size[0] / g.first.size[0]
    checked = 0
    for tr in g.transitions:
        src, tgt = g.state(tr.source), g.state(tr.target)
        if src.size == tgt.size:
            continue
        blk = model.blocks[g.weight_key(tr, 1) if g.weight_key(tr, 1) in model.blocks else tr.key]
        blk = copy.deepcopy(blk)
        for p in blk.parameters():
            p.data.fill_(0.1)
        x = torch.ones(1, src.channels, *src.size, requires_grad=True)
        out = blk(x, model.norms[tr.key], max(1, g.arrival_time(tr.source) + 1))
        assert out.shape[-2:] == tgt.size, tr.key
        assert (out > 0).all(), f"{tr.key}: {(out <= 0).sum().item()} output values not written"
        out.sum().backward()
        assert (x.grad[0, 0] != 0).all(), f"{tr.key}: {(x.grad[0, 0] == 0).sum().item()} input pixels unread"
        checked += 1
    assert checked > 0 and inp >= 1


def _conv_params(cin, cout, k=3):
    return cin * cout * k * k


def _hand_frnn_block(cs, ct):
    mid = round((cs + ct) / 2)
    return _conv_params(cs, mid) + _conv_params(mid, ct)


def test_param_counts_frnn_4state_by_hand():
    """Fig. 2C: BRCx2/BRDx2, intermediate width the mean of input and output widths; pre-net of three
    convs with BN; post-net BN + FC. Hand count for the 4-state FRNN of Fig. 3 (8/16/32/64)."""
    c = [8, 16, 32, 64]
    rec = sum(_hand_frnn_block(a, b) for a in c for b in c)
    prenet = _conv_params(3, 8) + 2 * _conv_params(8, 8) + 2 * 2 * 8
    post = 2 * 64 + 64 * 10 + 10
    spec = visrecur.spec("frnn_4state_shared")
    assert spec.total_parameters() == prenet + rec + post
    assert sum(p.numel() for p in FRNN(spec).parameters()) == prenet + rec + post
    # at T=2 only V1->IT (of t=1's transitions) reaches the post-net
    assert spec.effective_parameters(2) == prenet + post + _hand_frnn_block(8, 64)


def test_param_counts_resnet_2state_by_hand():
    """Fig. 4A 2-state ResNet (16/32 widths, conv pre-net): h1->h1, h1->h2 (+1x1 projection), h2->h2;
    unshared holds one h1->h1 copy per unrolling step (N = 10)."""
    h11, h12, h22 = 2 * _conv_params(16, 16), _conv_params(16, 32) + _conv_params(32, 32) + 16 * 32, \
        2 * _conv_params(32, 32)
    pre, post = _conv_params(3, 16), 2 * 32 + 32 * 10 + 10
    assert visrecur.spec("resnet_2state_shared").total_parameters() == pre + h11 + h12 + h22 + post
    assert visrecur.spec("resnet_2state_unshared").total_parameters() == pre + 10 * h11 + h12 + h22 + post
    assert sum(p.numel() for p in visrecur.build("resnet_2state_unshared").parameters()) == \
        pre + 10 * h11 + h12 + h22 + post


def test_macs_frnn_4state_T2_by_hand():
    """MACs = sum over convs of output positions x cin x cout x 9 (plus FC); at T=2 the transitions of
    t=1 run: V1->V1, V1->V2 (stride 2), V1->V4 (two stride-2 convs), V1->IT (2x2 pool + two stride 2)."""
    pre = 32 * 32 * (_conv_params(3, 8) + 2 * _conv_params(8, 8))
    v1v1 = 32 * 32 * 2 * _conv_params(8, 8)
    v1v2 = 16 * 16 * (_conv_params(8, 12) + _conv_params(12, 16))
    v1v4 = 16 * 16 * _conv_params(8, 20) + 8 * 8 * _conv_params(20, 32)
    v1it = 8 * 8 * _conv_params(8, 36) + 4 * 4 * _conv_params(36, 64)
    assert visrecur.spec("frnn_4state_shared").macs(2) == pre + v1v1 + v1v2 + v1v4 + v1it + 64 * 10


def test_macs_resnet_2state_by_hand():
    """2-state ResNet at T=13: 10 h1 blocks at 32x32, the downsampling block (+projection) at 16x16,
    one h2 block; FC."""
    pre = 1024 * _conv_params(3, 16)
    total = pre + 10 * 1024 * 2 * _conv_params(16, 16) + 256 * (_conv_params(16, 32) + _conv_params(32, 32)
                                                                 + 16 * 32) + 256 * 2 * _conv_params(32, 32) + 320
    assert visrecur.spec("resnet_2state_shared").macs(13) == total


def test_spec_without_resampling_key_loads_as_strided():
    """docs/zoo.md: checkpoints of visrecur 0.1 (spec without `resampling`) load as 'strided'."""
    spec = four_state()
    d = spec.to_dict()
    assert d["graph"]["resampling"] == "stride2"
    del d["graph"]["resampling"]
    old = ModelSpec.from_dict(d)
    assert old.graph.resampling == "strided"
    it = old.graph.transition(*"V1 IT".split())
    assert old.graph.resample_rest(it) == 1
    assert [layer.stride for layer in old.graph.layers(it)] == [4, 2]
    # and a round trip keeps the field
    assert ModelSpec.from_dict(spec.to_dict()).graph.resampling == "stride2"


# ----------------------------------------------------------------------------------------------
# 4. checkpoints written by python -m visrecur.train
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip("CIFAR-10 JPEG copy not available")
    out = tmp_path_factory.mktemp("chk") / "run"
    cmd = [sys.executable, "-m", "visrecur.train", "--data-root", str(DATA), "--limit-train", "64",
           "--limit-val", "32", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--no-progress",
           "--threads", "1", "--workers", "0"]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return out / "checkpoint.pt"


@pytest.mark.slow  # a training run in a subprocess (fixture)
def test_checkpoint_load_round_trip(trained_checkpoint, tmp_path):
    """README: visrecur.load(path) rebuilds the model from the file alone, in eval mode; the same weights
    and statistics; a re-saved file loads to the same behaviour."""
    model, payload = visrecur.load(trained_checkpoint, with_checkpoint=True)
    assert not model.training
    assert model.spec.to_dict() == payload.spec
    state = model.state_dict()
    assert state.keys() == payload.model.keys()
    for k, v in payload.model.items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=0)
    x, _ = data(n=4, size=32)
    with torch.no_grad():
        a = model(x, readout_time=[2, 3, 4, 5])
    torch.save({**payload.to_payload(), "model": model.state_dict()}, tmp_path / "again.pt")
    again = visrecur.load(tmp_path / "again.pt")
    with torch.no_grad():
        b = again(x, readout_time=[2, 3, 4, 5])
    for t in a:
        torch.testing.assert_close(a[t], b[t])
    # training at readout 5 trained transition steps 1..4 and the post-net at 5
    assert model.untrained_steps(5) == []
    assert model.untrained_steps(6) == [5, 6]


@pytest.mark.slow  # a training run in a subprocess (fixture)
def test_checkpoint_reproduces_recorded_validation_error(trained_checkpoint):
    """The loaded model, evaluated on the same 32 validation images, gives the validation errors the
    training run recorded in the checkpoint's metrics at every readout time."""
    from visrecur.training import data as vdata

    model, payload = visrecur.load(trained_checkpoint, with_checkpoint=True)
    x, y, _ = vdata.decode_folder(vdata.find_split(DATA, "val"), 32, 0, False)
    x = vdata.normalize(x, payload.preprocess["mean"], payload.preprocess["std"])
    row = payload.metrics[-1]
    with torch.no_grad():
        out = model(x, readout_time=[2, 3, 4, 5])
    for t in (2, 3, 4, 5):
        err = (out[t].argmax(1) != y).float().mean().item()
        assert err == pytest.approx(row[f"val_err_t{t}"]), t


@pytest.mark.slow  # a training run in a subprocess (fixture)
def test_checkpoint_past_training_matches_hand_unroll(trained_checkpoint):
    """Loaded model at the first step past training (T=6) == hand unroll with the last trained step's
    statistics (README 'last' rule) — the loaded TSBN caches must reflect the file."""
    model = visrecur.load(trained_checkpoint)
    x, _ = data(n=4, size=32)
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=6), my_unroll(model, x, 6, False), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x, readout_time=5), my_unroll(model, x, 5, False), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# further checks
# ----------------------------------------------------------------------------------------------
SHARED_BUILT_AT_EARLIEST = [("frnn_2state_shared", dict(channels=(2, 4), input_size=8), 2),
                            ("frnn_3state_adjacent_shared", dict(channels=(2, 4, 4), input_size=8), 3),
                            ("frnn_4state_adjacent_shared", dict(channels=(2, 2, 4, 4), input_size=16), 4)]


@pytest.mark.parametrize("name, kw, T", SHARED_BUILT_AT_EARLIEST)
def test_shared_model_reads_out_past_its_readout_time(name, kw, T):
    """Paper Sec. 'Generalization Across Readout Time': 'As a RNN, our model supports training and
    testing with different readout times'; README TSBN: past the trained steps evaluation uses the last
    trained step's statistics ('last'); extend_time: 'Let a time-invariant model run and read out up to
    time_steps'; model.recalibrate: 'The model is extended to readout_time first if needed'."""
    torch.manual_seed(7)
    model = visrecur.build(name, readout_time=T, **kw)
    x, y = data(size=kw["input_size"])
    train_steps(model, x, y, [T], n=1)
    with torch.no_grad():
        out = model(x, readout_time=T + 1)  # 'last' rule past training
    assert out.shape == (x.shape[0], 10)
    model.extend_time(T + 1)
    model.recalibrate([x], T + 1)
    assert model.untrained_steps(T + 1) == []


def test_shared_model_built_with_more_time_steps_reads_out_past_training():
    """Control for the xfail above: with time_steps > readout_time every transition has weights."""
    torch.manual_seed(8)
    model = visrecur.build("frnn_2state_shared", channels=(2, 4), input_size=8, readout_time=2, time_steps=3)
    x, y = data()
    train_steps(model, x, y, [2], n=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=3), my_unroll(model, x, 3, False), rtol=1e-4, atol=1e-5)


def test_error_mode_refuses_readout_time_never_trained():
    """README: a readout time the loss never used has no trained post-net statistics; 'error' refuses."""
    torch.manual_seed(9)
    model = FRNN(two_state(readout=3, beyond="error"))
    x, y = data()
    train_steps(model, x, y, [3], n=1)
    with torch.no_grad():
        model(x, readout_time=3)
        with pytest.raises(TimeStepError):
            model(x, readout_time=2)
    model.set_beyond_trained("last")
    with torch.no_grad():  # 'last' for a step before every trained one: the first trained (3)
        torch.testing.assert_close(model(x, readout_time=2), my_unroll(model, x, 2, False), rtol=1e-4, atol=1e-5)


def test_recalibration_in_error_mode_then_evaluation():
    """model.recalibrate works on a beyond_trained='error' model and afterwards evaluation at the new
    readout time no longer refuses; the model's beyond setting is restored."""
    model, x = trained_two_state(beyond="error")
    model.recalibrate([x], 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=4), my_unroll(model, x, 4, False), rtol=1e-4, atol=1e-5)
        with pytest.raises(TimeStepError):
            model(x, readout_time=5)


def test_recalibration_of_never_trained_model():
    """Docstring: for a model never trained, every statistic up to readout_time is estimated, in time
    order, each from evaluation-mode inputs."""
    torch.manual_seed(10)
    model = FRNN(two_state(readout=3))
    x, _ = data()
    model.recalibrate([x], 4)
    g = model.spec.graph
    slots = set()
    for tr in g.transitions:
        for n in model.norms[tr.key]:
            slots |= {(id(n), t) for t in (1, 2, 3) if g.runs(tr, t)}
    slots |= {(id(model.postnet.norm), t) for t in (2, 3, 4)}
    _check_recalibrated(model, x, slots)


def test_time_varying_input_frame_enters_first_state():
    """Sec. 2.2 / README: frame t >= 1 (through the pre-net) is added to the first state's update at
    step t; frame 0 is h(0)."""
    torch.manual_seed(11)
    model = FRNN(two_state(readout=4)).eval()
    x0, _ = data(seed=1)
    x1, _ = data(seed=2)
    seen_a, seen_b = {}, {}
    with torch.no_grad():
        with model.observe(lambda s, t, v: seen_a.__setitem__((s, t), v.clone())):
            model(x0, readout_time=3)
        with model.observe(lambda s, t, v: seen_b.__setitem__((s, t), v.clone())):
            model([x0, x1], readout_time=3)
        torch.testing.assert_close(seen_b[("h1", 0)], seen_a[("h1", 0)])
        torch.testing.assert_close(seen_b[("h1", 1)], seen_a[("h1", 1)] + model.prenet(x1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(seen_b[("h2", 1)], seen_a[("h2", 1)])


def test_macs_scale_with_input_size():
    """Convolution MACs scale with the number of pixels: 2x the input side gives 4x conv MACs
    (the FC layer's 10 x C stays)."""
    s = four_state(readout=3)
    fc = s.graph.last.channels * s.num_classes
    assert s.macs(3, (32, 32)) - fc == 4 * (s.macs(3) - fc)


def test_effective_parameters_unshared_frnn_2state_by_hand():
    """Fig. 4 caption: count only transitions that contributed by t. 2-state unshared FRNN at T=3:
    f11@1, f12@1, f12@2, f22@2 (h2->h1 at 2 does not reach h2(2)); shared: f11, f12, f22."""
    f11, f12, f22 = 2 * _conv_params(64, 64), _hand_frnn_block(64, 128), 2 * _conv_params(128, 128)
    pre, post = _conv_params(3, 64), 2 * 128 + 128 * 10 + 10
    assert visrecur.spec("frnn_2state_unshared").effective_parameters(3) == pre + post + f11 + 2 * f12 + f22
    assert visrecur.spec("frnn_2state_shared").effective_parameters(3) == pre + post + f11 + f12 + f22
    assert visrecur.spec("frnn_2state_shared").effective_parameters(2) == pre + post + f12


def test_tsbn_decay_lists_only_steps_run_in_training():
    """analyses/tsbn_decay.py docstring: 'one row per (transition, BN position, channel, step) ... for the
    steps at which that transition ran during training'. Model built for 5 steps, trained at readout 3:
    transitions ran at steps 1..2 only."""
    from analyses.tsbn_decay import tsbn_statistics

    torch.manual_seed(12)
    model = FRNN(two_state(readout=3, time_steps=5))
    x, y = data()
    train_steps(model, x, y, [3], n=1)
    table = tsbn_statistics(model)
    assert sorted(table.time.unique().tolist()) == [1, 2]


def test_resnet20_schedule_and_depth():
    """docs/conventions.md: a pre-activation ResNet-20 (resnet_3state_unshared, blocks=3) read out at
    T = 3*3+1 = 10 has depth 21 (20 weighted layers + pooling); Fig. 4B: stages run one after another."""
    spec = visrecur.spec("resnet_3state_unshared")
    assert spec.readout_time == 10 and spec.depth(10) == 21
    m = spec.graph.transition_matrix(10)
    per_step = [(int(i), int(j)) for t in range(1, 10) for i, j in zip(*np.nonzero(m[:, :, t]))]
    assert per_step == [(0, 0)] * 3 + [(0, 1)] + [(1, 1)] * 2 + [(1, 2)] + [(2, 2)] * 2
    assert not m[:, :, 10].any()


def test_strided_spec_builds_and_matches_documented_macs():
    """docs/zoo.md: the 0.1 'strided' scheme is kept so that its checkpoints load as what they are; its
    MACs for frnn_4state_shared at T=3 are 19,612,288 (table), and a model builds and runs."""
    d = visrecur.spec("frnn_4state_shared").to_dict()
    del d["graph"]["resampling"]
    old = ModelSpec.from_dict(d)
    assert old.macs(3) == 19_612_288 and old.macs(5) == 49_877_632
    assert old.total_parameters() == visrecur.spec("frnn_4state_shared").total_parameters()
    d = four_state().to_dict()
    del d["graph"]["resampling"]
    model = FRNN(ModelSpec.from_dict(d)).eval()
    with torch.no_grad():
        assert model(data(size=16)[0], readout_time=3).shape == (6, 10)


def test_load_state_dict_into_used_model_refreshes_trained_steps():
    """TSBN trained-ness is read from the buffers: loading trained weights into a model that already ran
    (untrained) must make it behave as the trained one, including past training."""
    model, x = trained_two_state()
    fresh = FRNN(two_state(readout=3)).eval()
    with torch.no_grad():
        fresh(x, readout_time=4)
        fresh.load_state_dict(model.state_dict())
        for T in (2, 3, 4):
            torch.testing.assert_close(fresh(x, readout_time=T), model(x, readout_time=T))


def test_recalibrated_model_survives_checkpoint(tmp_path):
    """A model extended and recalibrated to T=5 and saved in the checkpoint format loads with
    visrecur.load to the same outputs at T=5 and keeps the recalibrated steps trained."""
    from visrecur.artifacts import checkpoint as ck

    model, x = trained_two_state()
    model.recalibrate([x], 5)
    torch.save({"format": ck.FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict()},
                   tmp_path / "c.pt")
    loaded = visrecur.load(tmp_path / "c.pt")
    assert loaded.untrained_steps(5) == []
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, readout_time=5), model(x, readout_time=5))
        torch.testing.assert_close(loaded(x, readout_time=5), my_unroll(loaded, x, 5, False), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # a training run in a subprocess (fixture)
def test_exported_weights_load_like_the_checkpoint(trained_checkpoint, tmp_path):
    """README: export_weights writes an inference-only file that visrecur.load reads like the checkpoint."""
    from visrecur.artifacts.checkpoint import export_weights

    export_weights(trained_checkpoint, tmp_path / "w.pt")
    a, b = visrecur.load(trained_checkpoint), visrecur.load(tmp_path / "w.pt")
    x, _ = data(n=3, size=32)
    with torch.no_grad():
        for T in (2, 5, 6):
            torch.testing.assert_close(a(x, readout_time=T), b(x, readout_time=T))


@pytest.mark.slow  # a training run in a subprocess (fixture)
def test_checkpoint_recalibration_past_training(trained_checkpoint):
    """Loaded checkpoint, recalibrated to T=7: transition steps 5, 6 and post-net 6, 7 become trained,
    trained statistics unchanged, output equals the hand unroll."""
    model = visrecur.load(trained_checkpoint)
    x, _ = data(n=8, size=32)
    before = _snapshot(model, [1, 2, 3, 4], [2, 3, 4, 5])
    assert model.recalibrate([x], 7) == [5, 6, 7]
    after = _snapshot(model, [1, 2, 3, 4], [2, 3, 4, 5])
    for k in before:
        assert torch.equal(before[k][0], after[k][0]) and torch.equal(before[k][1], after[k][1])
    with torch.no_grad():
        torch.testing.assert_close(model(x, readout_time=7), my_unroll(model, x, 7, False), rtol=1e-4, atol=1e-4)


def test_extended_shared_model_checkpoint_round_trip(tmp_path):
    """extend_time: 'Let a time-invariant model run and read out up to time_steps'; visrecur.load
    rebuilds the architecture stored in the file."""
    from visrecur.artifacts import checkpoint as ck

    torch.manual_seed(13)
    model = visrecur.build("frnn_2state_shared", channels=(2, 4), input_size=8, readout_time=2)
    x, y = data()
    train_steps(model, x, y, [2], n=1)
    model.extend_time(3)
    torch.save({"format": ck.FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict()},
                   tmp_path / "c.pt")
    loaded = visrecur.load(tmp_path / "c.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, readout_time=2), model(x, readout_time=2))


def test_v01_checkpoint_with_extra_untrained_slot(tmp_path):
    """docs/conventions.md: visrecur 0.1 checkpoints kept an untrained slot at step time_steps for every
    transition (mean 0, variance 1), and had no `resampling` field; they load as 'strided', with that
    slot present but never used: past training the last trained step's statistics normalise."""
    from visrecur.artifacts import checkpoint as ck

    torch.manual_seed(14)
    d = four_state(readout=3).to_dict()
    del d["graph"]["resampling"]
    model = FRNN(ModelSpec.from_dict(d))
    x, y = data(size=16)
    train_steps(model, x, y, [2, 3], n=1)
    state = model.state_dict()
    T = model.spec.time_steps
    for key, ns in model.norms.items():
        for k in range(len(ns)):
            prefix = f"norms.{key}.{k}.stats.{T}."
            c = ns[k].num_features
            state[prefix + "running_mean"] = torch.zeros(c)
            state[prefix + "running_var"] = torch.ones(c)
            state[prefix + "num_batches_tracked"] = torch.tensor(0)
    torch.save({"format": ck.FORMAT, "model": state, "spec": d}, tmp_path / "old.pt")
    loaded = visrecur.load(tmp_path / "old.pt")
    assert loaded.spec.graph.resampling == "strided"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, readout_time=4), model(x, readout_time=4))
        torch.testing.assert_close(loaded(x, readout_time=4), my_unroll(loaded, x, 4, False), rtol=1e-4, atol=1e-5)
    assert loaded.untrained_steps(4) == [3, 4]


def test_param_counts_frnn_3state_affine_by_hand():
    """Table 1's 3-state FRNN (64/128/256, BN learnable parameters on, shared over time): 9 BRCx2/BRDx2
    blocks with mean-width middles, each BN with scale+shift for its input channels; conv3 pre-net."""
    c = [64, 128, 256]
    rec = 0
    for a in c:
        for b in c:
            mid = (a + b) // 2
            rec += _conv_params(a, mid) + _conv_params(mid, b) + 2 * (a + mid)
    pre = _conv_params(3, 64) + 2 * _conv_params(64, 64) + 2 * 2 * 64
    post = 2 * 256 + 256 * 10 + 10
    spec = visrecur.spec("frnn_3state_shared")
    assert spec.bn_affine
    assert spec.total_parameters() == pre + rec + post
    tiny = visrecur.spec("frnn_3state_shared", channels=(2, 4, 8), input_size=8)
    assert sum(p.numel() for p in FRNN(tiny).parameters()) == tiny.total_parameters()


def _recording(times):
    from visrecur.recording import record
    from visrecur.recording.stimuli import from_array

    model, _ = trained_two_state()
    arr = (np.random.default_rng(0).random((4, 8, 8, 3)) * 255).astype(np.uint8)
    from visrecur import Preprocess

    return model, record(model, from_array(arr), times=times, progress=False,
                         preprocess=Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3))


def test_recording_time_axes():
    """README Recording: states at steps 0..T-1 by default, logits at every readout time from the
    earliest to T; a state not yet reached at t is NaN, with its arrival time in its attrs."""
    model, ds = _recording(None)
    assert ds.time.values.tolist() == [0, 1, 2] and ds.readout_time.values.tolist() == [2, 3]
    assert bool(ds.h2.isel(time=0).isnull().all()) and not bool(ds.h2.isel(time=1).isnull().any())
    assert ds.h2.attrs["arrival_time"] == 1


def test_recording_attrs_state_borrowed_statistics():
    """README TSBN: 'model.describe_statistics(T) says which steps borrow whose statistics (recordings
    store it in their attrs)'. Model trained at readout 2, 3 (transition steps 1, 2) recorded at steps
    0..3: step 3 normalises with step 2's statistics, which the attrs must say."""
    model, ds = _recording([0, 1, 2, 3])
    text = " ".join(str(v) for v in ds.attrs.values())
    assert "t3: step 2" in text
    assert ds.attrs.get("time_specific_bn_past_trained_steps", "") != "not used"


def test_recording_of_trained_module_is_not_labelled_untrained():
    """README Recording: 'An untrained model says so in its output and attrs' — a trained one must not."""
    _, ds = _recording(None)
    assert ds.attrs["trained"] != "NO" and not ds.attrs["warning"]
