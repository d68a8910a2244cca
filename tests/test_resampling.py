"""Resampling between states of different sizes: every input pixel reaches the output and every output
pixel is written, for every transition of every zoo model (impulse/gradient test)."""
import pytest
import torch
from torch import nn

from visrecur.architecture import zoo
from visrecur.nn.blocks import TimeSpecificBatchNorm, TransitionBlock


def _positive_block(graph, tr):
    """The transition's block with positive weights and identity batch norms: with a positive input
    every path is open, so a zero in the output or in the input's gradient means a pixel is skipped."""
    block = TransitionBlock(graph.layers(tr), affine=False, rest=graph.resample_rest(tr))
    for conv in list(block.convs) + ([block.projection] if block.projection is not None else []):
        nn.init.constant_(conv.weight, 0.01)
    norms = nn.ModuleList(TimeSpecificBatchNorm(conv.in_channels, 1, eps=0.0).eval() for conv in block.convs)
    return block, norms


def _coverage(graph, tr):
    block, norms = _positive_block(graph, tr)
    source, target = graph.state(tr.source), graph.state(tr.target)
    x = (torch.rand(1, source.channels, *source.size) + 0.5).requires_grad_(True)
    out = block(x, norms, 1)
    assert out.shape[-2:] == target.size
    out.sum().backward()
    return (out > 0).float().mean().item(), (x.grad > 0).float().mean().item()


def _resampling_transitions(resampling="stride2"):
    seen = {}
    for name in zoo.list_models():
        overrides = {"resampling": resampling} if name.startswith("frnn") else {}
        graph = zoo.spec(name, **overrides).graph
        for tr in graph.transitions:
            if graph.state(tr.source).size != graph.state(tr.target).size:
                key = (graph.layers(tr), graph.resample_rest(tr))
                seen.setdefault(key, (name, graph, tr))
    return list(seen.values())


@pytest.mark.parametrize("name,graph,tr", _resampling_transitions(),
                         ids=lambda v: v if isinstance(v, str) else getattr(v, "key", ""))
def test_every_pixel_is_read_and_written(name, graph, tr):
    written, read = _coverage(graph, tr)
    assert written == 1.0, f"{name} {tr.key}: {1 - written:.0%} of output pixels never written"
    assert read == 1.0, f"{name} {tr.key}: {1 - read:.0%} of input pixels never read"
    for layer in graph.layers(tr):
        if layer.kind != "projection":
            assert layer.stride <= 2 and layer.kernel == 3


def test_the_old_strided_scheme_skips_pixels():
    """The negative control: visrecur 0.1's strides of 4 with 3x3 kernels (kept for its checkpoints)."""
    graph = zoo.frnn_4state_spec(resampling="strided").graph
    written, read = _coverage(graph, graph.transition("V1", "IT"))
    assert read == pytest.approx(1 - 0.48, abs=0.02)  # a stride-4 3x3 conv never reads 48% of V1
    written, read = _coverage(graph, graph.transition("IT", "V1"))
    assert written < 1.0
    block, norms = _positive_block(graph, graph.transition("IT", "V1"))
    first = block.convs[0](torch.ones(1, 64, 4, 4))  # the stride-4 deconv: 4x4 -> 16x16
    assert int((first[0, 0] == 0).sum()) == 135


def test_pooling_and_upsampling_by_hand():
    """V1 -> IT in the 4-state FRNN: a 2x2 average pool, then two stride-2 convolutions; IT -> V1: two
    stride-2 deconvolutions, then nearest-neighbour upsampling by 2."""
    graph = zoo.frnn_4state_spec(channels=(1, 1, 1, 1)).graph
    block, norms = _positive_block(graph, graph.transition("V1", "IT"))
    for conv in block.convs:  # 3x3 kernels that pass the centre pixel only
        conv.weight.data.zero_()
        conv.weight.data[..., 1, 1] = 1.0
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    pooled = x.reshape(16, 2, 16, 2).mean(dim=(1, 3))
    expected = pooled[::2, ::2][::2, ::2]
    torch.testing.assert_close(block(x, norms, 1)[0, 0], expected)
    up, norms = _positive_block(graph, graph.transition("IT", "V1"))
    for conv in up.convs:
        conv.weight.data.zero_()
        conv.weight.data[..., 1, 1] = 1.0
    small = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) + 1
    out = up(small, norms, 1)[0, 0]
    # centre-tap deconvs place each pixel at even positions (zeros between); upsampling copies 2x2
    inner = torch.zeros(16, 16)
    inner[::4, ::4] = small[0, 0]
    torch.testing.assert_close(out, inner.repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_macs_count_convolutions_at_their_real_sizes():
    new, old = zoo.frnn_4state_spec(), zoo.frnn_4state_spec(resampling="strided")
    assert new.total_parameters() == old.total_parameters()  # same convolutions, other strides
    g = new.graph
    # IT -> V1 (4x4 -> 32x32, widths 64 -> 36 -> 8): deconvs at 4x4 and 8x8 inputs, then free upsampling
    layers = g.layers(g.transition("IT", "V1"))
    assert [layer.macs(size) for layer, size in zip(layers, [(4, 4), (8, 8)])] == \
        [16 * 64 * 36 * 9, 64 * 36 * 8 * 9]
    # the strided scheme's second deconv ran on a 16x16 input
    assert old.macs(5) - new.macs(5) > 0
