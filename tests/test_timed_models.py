"""Timed models (visrecur.timed): the adapter's per-area, per-step activations against hand-written
unrolls of the same modules (exact in float64), Brain-Score's CORnet-S time table, the public CORnet
key names, step functions and the one-line refusals."""
from __future__ import annotations

import ast
import glob
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import visrecur
from visrecur.errors import InputError, VisrecurError
from visrecur.recording.preprocess import Preprocess
from visrecur.timed import StepModel, TimedModelError, adapt
from visrecur.timed.reference import CORNET_S_BRAINSCORE, build, cornet_s_time_mapping

SIZE = 64  # small inputs keep each test well under a second


def _recorded(model, images):
    """{(area, step): activation} and {step: logits} through the protocol's observer."""
    seen = {}

    def observer(area, t, value):
        assert (area, t) not in seen, f"{area} step {t} seen twice"
        seen[(area, t)] = value.clone()

    with torch.no_grad():
        logits = model.run(images, observer)
    return seen, logits


def _double(name, **options):
    model = build(name, input_size=SIZE, **options)
    model.double()
    images = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, model.module, images


def _bn(x, bn):  # eval-mode batch norm from its parameters
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _gn(x, gn):
    return F.group_norm(x, gn.num_groups, gn.weight, gn.bias, gn.eps)


def _compare(seen, expected):
    assert set(seen) == set(expected), sorted(set(seen) ^ set(expected))
    for key, value in expected.items():
        assert seen[key].dtype == torch.float64
        assert float((seen[key] - value).abs().max()) == 0.0, key


# --- hand-written unrolls -------------------------------------------------------------------------
@pytest.mark.slow  # CORnet-S / ResNet-18 at full width: a few seconds on a shared CPU
def test_cornet_s_adapter_equals_hand_unroll():
    model, net, x = _double("cornet_s")
    with torch.no_grad():
        v1 = net.V1
        h = F.relu(_bn(F.conv2d(x, v1.conv1.weight, stride=2, padding=3), v1.norm1))
        h = F.max_pool2d(h, 3, 2, 1)
        h = F.relu(_bn(F.conv2d(h, v1.conv2.weight, padding=1), v1.norm2))
        expected = {("V1", 0): h}
        for area in ("V2", "V4", "IT"):
            block = getattr(net, area)
            h = F.conv2d(h, block.conv_input.weight)
            for t in range(block.times):
                stride = 2 if t == 0 else 1
                skip = _bn(F.conv2d(h, block.skip.weight, stride=2), block.norm_skip) if t == 0 else h
                y = F.relu(_bn(F.conv2d(h, block.conv1.weight), getattr(block, f"norm1_{t}")))
                y = F.relu(_bn(F.conv2d(y, block.conv2.weight, stride=stride, padding=1), getattr(block, f"norm2_{t}")))
                y = _bn(F.conv2d(y, block.conv3.weight), getattr(block, f"norm3_{t}"))
                h = F.relu(y + skip)
                expected[(area, t)] = h
        logits = F.linear(h.mean((2, 3)), net.decoder.linear.weight, net.decoder.linear.bias)
    seen, out = _recorded(model, x)
    _compare(seen, expected)
    # first, last and one past each area's steps: V1 0; V2 0..1; V4 0..3; IT 0..1
    assert model.steps == {"V1": (0,), "V2": (0, 1), "V4": (0, 1, 2, 3), "IT": (0, 1)}
    assert ("V4", 4) not in seen and ("IT", 2) not in seen and ("V1", 1) not in seen
    assert list(out) == [1] and float((out[1] - logits).abs().max()) == 0.0


def test_cornet_rt_adapter_equals_hand_unroll():
    model, net, x = _double("cornet_rt")
    areas = ("V1", "V2", "V4", "IT")
    with torch.no_grad():
        def block_input(block, inp):
            pad = block.kernel_size // 2
            return F.relu(_gn(F.conv2d(inp, block.conv_input.weight, block.conv_input.bias, block.stride, pad),
                              block.norm_input))

        def recur(block, drive):
            return F.relu(_gn(F.conv2d(drive, block.conv1.weight, padding=1), block.norm1))

        expected, state, size = {}, {}, SIZE
        for area in areas:  # step 0: V1 sees the image, the others zero input
            block = getattr(net, area)
            size = (size + 2 * (block.kernel_size // 2) - block.kernel_size) // block.stride + 1
            drive = block_input(block, x) if area == "V1" else x.new_zeros(2, block.out_channels, size, size)
            state[area] = expected[(area, 0)] = recur(block, drive)
        for t in range(1, 5):  # each area: its input from the area below at t - 1, plus its own state
            below = {"V1": x, "V2": state["V1"], "V4": state["V2"], "IT": state["V4"]}
            state = {a: recur(getattr(net, a), block_input(getattr(net, a), below[a]) + state[a]) for a in areas}
            expected.update({(a, t): state[a] for a in areas})
    seen, out = _recorded(model, x)
    _compare(seen, expected)
    assert all(model.steps[a] == (0, 1, 2, 3, 4) for a in areas) and ("IT", 5) not in seen
    assert list(out) == [4]


def test_cornet_z_adapter_equals_hand_unroll_time_is_depth():
    model, net, x = _double("cornet_z")
    expected, h = {}, x
    with torch.no_grad():
        for depth, area in enumerate(("V1", "V2", "V4", "IT")):
            block = getattr(net, area)
            h = F.max_pool2d(F.relu(F.conv2d(h, block.conv.weight, block.conv.bias, block.conv.stride,
                                             block.conv.padding)), 3, 2, 1)
            expected[(area, depth)] = h
    seen, out = _recorded(model, x)
    _compare(seen, expected)
    assert model.steps == {"V1": (0,), "V2": (1,), "V4": (2,), "IT": (3,)} and list(out) == [3]


def _blnet_unroll(net, frames):
    """BL-net by hand: layer k at step t from the pooled layer k - 1 at t (frame t for layer 1) and, from
    t = 1, its own output at t - 1; a batch norm per layer and step; the readout at every step."""
    expected, logits, previous = {}, {}, [None] * len(net.layers)
    with torch.no_grad():
        for t, x in enumerate(frames):
            below = x
            for k, layer in enumerate(net.layers):
                inp = below if k == 0 else F.max_pool2d(below, 2)
                pad = layer.bottom_up.kernel_size[0] // 2
                drive = F.conv2d(inp, layer.bottom_up.weight, padding=pad)
                if t > 0:
                    drive = drive + F.conv2d(previous[k], layer.lateral.weight, padding=pad)
                below = previous[k] = expected[(f"layer{k + 1}", t)] = F.relu(_bn(drive, layer.norms[t]))
            logits[t] = F.linear(below.mean((2, 3)), net.readout[2].weight, net.readout[2].bias)
    return expected, logits


def test_blnet_adapter_equals_hand_unroll_and_reads_out_every_step():
    model, net, x = _double("blnet", widths=(8, 8, 16, 16, 16, 32, 32), num_classes=5)
    expected, logits = _blnet_unroll(net, [x] * 8)
    seen, out = _recorded(model, x)
    _compare(seen, expected)
    assert model.readout_steps == tuple(range(8)) and ("layer7", 8) not in seen
    assert all(float((out[t] - logits[t]).abs().max()) == 0.0 for t in range(8))


def test_blnet_step_function_gives_the_adapters_values():
    model, net, x = _double("blnet", widths=(8, 8, 8, 8, 8, 8, 8), num_classes=3)
    stepped = StepModel(net.step, areas=model.areas, steps=model.steps, readout_steps=range(8), modules=net,
                        preprocess=model.preprocess, name="blnet_steps")
    a, la = _recorded(model, x)
    b, lb = _recorded(stepped, x)
    _compare(b, a)
    assert all(torch.equal(la[t], lb[t]) for t in range(8))


@pytest.mark.slow  # CORnet-S / ResNet-18 at full width: a few seconds on a shared CPU
def test_blnet_takes_a_frame_per_step_stimulus_then_mask():
    from visrecur.timed.reference.blnet import frame_model

    model, net, x = _double("blnet", widths=(8, 8, 8, 8, 8, 8, 8), num_classes=3)
    framed = frame_model(model)
    mask = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(5))
    for k in (1, 7):  # the stimulus for the first k steps (first step only; all but the last), then the mask
        frames = [x] * k + [mask] * (8 - k)
        expected, logits = _blnet_unroll(net, frames)
        seen, out = _recorded(framed, torch.stack(frames, 1))
        _compare(seen, expected)
        assert all(float((out[t] - logits[t]).abs().max()) == 0.0 for t in range(8))
    same, _ = _recorded(framed, x)  # one image: the same input at every step, as the adapted module
    _compare(same, _recorded(model, x)[0])
    with pytest.raises(InputError, match="runs 8 steps and takes a frame for each; got 7 frames"):
        framed.run(torch.stack([x] * 7, 1))
    with pytest.raises(InputError, match="takes one image per pass .* not a frame per step") as err:
        model.run(torch.stack([x] * 8, 1))
    assert "\n" not in str(err.value)


def test_resnet18_time_is_depth_equals_torchvision_stages():
    model, net, x = _double("resnet18_time", num_classes=7)
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        expected = {("stem", 0): h}
        for depth in range(1, 5):
            h = getattr(net, f"layer{depth}")(h)
            expected[(f"layer{depth}", depth)] = h
        logits = net.fc(torch.flatten(net.avgpool(h), 1))
    seen, out = _recorded(model, x)
    _compare(seen, expected)
    assert list(out) == [4] and float((out[4] - logits).abs().max()) == 0.0


# --- Brain-Score's CORnet-S time table --------------------------------------------------------------
def _brainscore_cornet_s():
    found = sorted(glob.glob("/work/main/.venv-compat/lib/python3*/site-packages/brainscore_vision/models/cornet_s"))
    if not found:
        pytest.skip("the brainscore-vision environment is not installed")
    folder = Path(found[0])
    model = ast.parse((folder / "model.py").read_text())
    table = next(ast.literal_eval(node.value) for node in model.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", "") == "TIME_MAPPINGS" for t in node.targets))
    layers_fn = next(node for node in model.body if isinstance(node, ast.FunctionDef) and node.name == "get_layers")
    helpers = (folder / "helpers" / "helpers.py").read_text()
    build_fn = next(node for node in ast.parse(helpers).body
                    if isinstance(node, ast.FunctionDef) and node.name == "_build_time_mappings")
    namespace: dict = {}
    # Brain-Score's own functions, run as written in the wheel (no brainscore import needed)
    exec(compile(ast.Module([build_fn, layers_fn], []), str(folder), "exec"), namespace)  # noqa: S102
    return table, namespace["_build_time_mappings"](table), namespace["get_layers"]("CORnet-S")


@pytest.mark.slow  # CORnet-S / ResNet-18 at full width: a few seconds on a shared CPU
def test_cornet_s_reproduces_brainscore_time_table():
    table, bins, layers = _brainscore_cornet_s()
    assert {a: tuple(v) for a, v in table.items()} == CORNET_S_BRAINSCORE
    model = build("cornet_s", input_size=SIZE)
    mapping = model.time_mapping
    assert mapping == cornet_s_time_mapping()
    for area, by_step in bins.items():
        steps = model.steps[area]
        assert list(steps) == sorted(by_step), area  # the adapter's call count = Brain-Score's timesteps
        first, last = steps[0], steps[-1]
        for t in (first, last):
            assert tuple(mapping.bins([t], area)[0]) == by_step[t], (area, t)
            assert mapping.latency(t, area)[0] == by_step[t][0]
        assert last + 1 not in by_step  # one past: Brain-Score has no bin, the model no step
    # Brain-Score's layer names '<area>.output-t<k>' are our areas' modules at call k
    labels = model.pass_labels()
    for layer in layers[:-1]:
        module, k = layer.rsplit("-t", 1)
        area = module.split(".")[0]
        assert labels[(area, int(k))] == visrecur.timed.pass_label(module, int(k))


# --- public CORnet checkpoints' keys -----------------------------------------------------------------
def _cornet_s_public_keys():
    """The public CORnet-S checkpoint's state-dict keys and shapes, written from its layout: V1 (conv1 7x7
    3->64, norm1, conv2 3x3 64->64, norm2); V2/V4/IT bottleneck blocks with a norm per step; decoder."""
    bn = lambda prefix, c: {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}
    keys = {"V1.conv1.weight": (64, 3, 7, 7), **bn("V1.norm1", 64), "V1.conv2.weight": (64, 64, 3, 3),
            **bn("V1.norm2", 64)}
    for area, cin, cout, times in (("V2", 64, 128, 2), ("V4", 128, 256, 4), ("IT", 256, 512, 2)):
        keys.update({f"{area}.conv_input.weight": (cout, cin, 1, 1), f"{area}.skip.weight": (cout, cout, 1, 1),
                     **bn(f"{area}.norm_skip", cout), f"{area}.conv1.weight": (4 * cout, cout, 1, 1),
                     f"{area}.conv2.weight": (4 * cout, 4 * cout, 3, 3), f"{area}.conv3.weight": (cout, 4 * cout, 1, 1)})
        for t in range(times):
            keys.update({**bn(f"{area}.norm1_{t}", 4 * cout), **bn(f"{area}.norm2_{t}", 4 * cout),
                         **bn(f"{area}.norm3_{t}", cout)})
    keys.update({"decoder.linear.weight": (1000, 512), "decoder.linear.bias": (1000,)})
    return keys


def test_cornet_s_loads_a_public_checkpoint_state_dict_by_its_keys():
    from visrecur.timed.reference.cornet import CORnetS, load_cornet_state_dict

    generator = torch.Generator().manual_seed(0)
    state = {f"module.{k}": (torch.randint(0, 9, shape, generator=generator) if k.endswith("num_batches_tracked")
                             else torch.randn(shape, generator=generator)) for k, shape in _cornet_s_public_keys().items()}
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    net = CORnetS()
    load_cornet_state_dict(net, state)  # strict: every key and shape must match
    assert torch.equal(net.IT.norm3_1.running_mean, state["module.IT.norm3_1.running_mean"])
    assert torch.equal(net.V4.conv2.weight, state["module.V4.conv2.weight"])
    del state["module.V4.norm1_3.weight"]
    with pytest.raises(VisrecurError, match="does not fit CORnetS.*V4.norm1_3.weight"):
        load_cornet_state_dict(net, state)


def test_cornet_z_and_rt_public_key_layout():
    from visrecur.timed.reference.cornet import CORnetRT, CORnetZ
    from visrecur.timed.reference.cornet import load_cornet_state_dict as load

    z = {k: tuple(v.shape) for k, v in CORnetZ().state_dict().items()}
    assert z["V1.conv.weight"] == (64, 3, 7, 7) and z["IT.conv.weight"] == (512, 256, 3, 3)
    assert set(z) == {f"{a}.conv.{p}" for a in ("V1", "V2", "V4", "IT") for p in ("weight", "bias")} | \
        {"decoder.linear.weight", "decoder.linear.bias"}
    # CORnet-RT: per area an input conv (with bias) + group norm, a recurrent 3x3 conv (no bias) + group norm
    expected = {"decoder.linear.weight": (1000, 512), "decoder.linear.bias": (1000,)}
    for area, cin, cout, k in (("V1", 3, 64, 7), ("V2", 64, 128, 1), ("V4", 128, 256, 1), ("IT", 256, 512, 1)):
        expected.update({f"{area}.conv_input.weight": (cout, cin, k, k), f"{area}.conv_input.bias": (cout,),
                         f"{area}.norm_input.weight": (cout,), f"{area}.norm_input.bias": (cout,),
                         f"{area}.conv1.weight": (cout, cout, 3, 3), f"{area}.norm1.weight": (cout,),
                         f"{area}.norm1.bias": (cout,)})
    generator = torch.Generator().manual_seed(0)
    for net, keys in ((CORnetRT(), expected), (CORnetZ(), z)):
        state = {f"module.{k}": torch.randn(shape, generator=generator) for k, shape in keys.items()}
        load(net, state)
        assert all(torch.equal(net.state_dict()[k[len("module."):]], v) for k, v in state.items())


# --- refusals -----------------------------------------------------------------------------------------
class _Uneven(nn.Module):
    """Runs its block once or twice depending on the input: not a timed model."""

    def __init__(self):
        super().__init__()
        self.block = nn.Conv2d(3, 3, 1)
        self.unused = nn.Identity()

    def forward(self, x):
        for _ in range(1 if float(x.mean()) <= 0 else 2):
            x = self.block(x)
        return x


PRE = Preprocess((8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_never_called_module_is_refused_in_one_line():
    with pytest.raises(TimedModelError, match="module 'unused' .* is never called") as err:
        adapt(_Uneven(), areas={"A": "block", "B": "unused"}, preprocess=PRE)
    assert "\n" not in str(err.value)


def test_module_called_a_different_number_of_times_is_refused():
    model = adapt(_Uneven(), areas={"A": "block"}, preprocess=PRE)  # probe on zeros: one call
    assert model.steps == {"A": (0,)}
    model.run(-torch.ones(1, 3, 8, 8))
    with pytest.raises(TimedModelError, match="module 'block' .* was called 2 times .* 1 times") as err:
        model.run(torch.ones(1, 3, 8, 8))
    assert "\n" not in str(err.value)


def test_unknown_submodule_and_missing_preprocess_are_refused():
    with pytest.raises(InputError, match="no submodule 'blok'; did you mean block"):
        adapt(_Uneven(), areas={"A": "blok"}, preprocess=PRE)
    with pytest.raises(InputError, match="preprocess=visrecur.Preprocess"):
        adapt(_Uneven(), areas={"A": "block"})
    with pytest.raises(InputError, match="no reference architecture 'cornet_x'; did you mean"):
        build("cornet_x")


def test_step_function_that_breaks_its_schedule_is_refused():
    conv = nn.Conv2d(3, 3, 1)

    def step(images, state, t):
        return {"A": conv(images)} if t != 1 else {}

    model = StepModel(step, areas=["A"], steps={"A": range(3)}, modules=conv, preprocess=PRE)
    with pytest.raises(TimedModelError, match="returned \\[\\] at step 1, but the model states \\['A'\\]"):
        model.run(torch.zeros(1, 3, 8, 8))


def test_hooks_do_not_stay_on_the_module():
    model = build("cornet_z", input_size=SIZE)
    model.run(torch.zeros(1, 3, SIZE, SIZE))
    assert all(not m._forward_hooks for m in model.module.modules())


def test_reference_seeds_are_reproducible_and_leave_global_state():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build("cornet_z", seed=0), build("cornet_z", seed=0), build("cornet_z", seed=1)
    assert torch.equal(torch.rand(1), before)
    wa, wb, wc = (m.module.V2.conv.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert np.isclose(float(wa.detach().std()), np.sqrt(2 / (128 * 9)), rtol=0.05)  # He fan-out


@pytest.mark.slow  # builds every reference architecture at full size
def test_docs_parameter_counts_are_the_built_models():
    import re

    from visrecur.timed.reference import list_reference

    text = (Path(__file__).resolve().parents[1] / "docs" / "timed_models.md").read_text()
    for name in list_reference():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        stated = int(re.findall(r"\| ([\d,]+) \|", row)[0].replace(",", ""))
        assert sum(p.numel() for p in build(name).parameters()) == stated, name


def test_top_level_names():
    assert visrecur.adapt is adapt and visrecur.StepModel is StepModel


def test_step_model_states_its_schedule_and_preprocessing():
    conv = nn.Conv2d(3, 2, 1)

    def step(images, state, t):  # A at step 0, B at steps 1 and 2 from A
        return {"A": conv(images)} if t == 0 else {"B": state["A"] * t}

    with pytest.raises(InputError, match="preprocessing of uneven is unknown"):
        StepModel(step, areas=["A", "B"], steps={"A": [0], "B": [1, 2]}, modules=conv, name="uneven")
    with pytest.raises(TimedModelError, match="the steps of area 'B', \\[2, 1\\], must be increasing"):
        StepModel(step, areas=["A", "B"], steps={"A": [0], "B": [2, 1]}, modules=conv, preprocess=PRE)
    model = StepModel(step, areas=["A", "B"], steps={"A": [0], "B": [1, 2]}, modules=conv, preprocess=PRE)
    seen, logits = _recorded(model, torch.ones(1, 3, 8, 8))
    assert sorted(seen) == [("A", 0), ("B", 1), ("B", 2)] and logits == {}
    assert torch.equal(seen[("B", 2)], 2 * seen[("A", 0)]) and model.area_shape("B") == (2, 8, 8)
    assert model.num_classes is None and model.arrival_time("B") == 1


@pytest.mark.slow  # imports Brain-Score and builds CORnet-S (the brainscore-vision environment only)
def test_cornet_s_steps_equal_brainscores_own_temporal_hooks(tmp_path, monkeypatch):
    """Brain-Score's CORnet wrapper (TemporalPytorchWrapper: one forward hook per '<area>.output', its
    k-th call stored as '<area>.output-t<k>') sees exactly the adapter's (area, step) activations."""
    for name in ("BRAINIO_HOME", "RESULTCACHING_HOME", "BRAINSCORE_HOME", "MT_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    helpers = pytest.importorskip("brainscore_vision.models.cornet_s.helpers.helpers")
    model = build("cornet_s", input_size=SIZE)
    wrapper = helpers.TemporalPytorchWrapper(identifier="visrecur-cornet-s-test", model=model.module,
                                             preprocessing=None)
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    _, _, layers = _brainscore_cornet_s()
    theirs = wrapper.get_activations(x, layers[:-1])  # every area's output at every step (not the decoder)
    ours, _ = _recorded(model, torch.from_numpy(x))
    assert sorted(theirs) == sorted(f"{a}.output-t{t}" for a, t in ours)
    for (area, t), value in ours.items():
        assert float(np.abs(theirs[f"{area}.output-t{t}"] - value.numpy()).max()) == 0.0, (area, t)
