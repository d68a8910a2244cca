"""Time-specific batch norm: separate statistics per step, the policy past the trained steps."""
import pytest
import torch

from visrecur import TimeStepError
from visrecur.architecture import zoo
from visrecur.nn.blocks import TimeSpecificBatchNorm


def test_statistics_are_kept_per_step():
    bn = TimeSpecificBatchNorm(2, num_steps=3, momentum=0.5)
    x1 = torch.randn(64, 2, 4, 4) + 3.0
    x2 = torch.randn(64, 2, 4, 4) - 5.0
    bn.train()
    bn(x1, 1)
    bn(x2, 2)
    # momentum 0.5 from mean 0: running mean = 0.5 * batch mean
    torch.testing.assert_close(bn.stats[1].running_mean, 0.5 * x1.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.stats[2].running_mean, 0.5 * x2.mean(dim=(0, 2, 3)))
    unbiased = x2.transpose(0, 1).reshape(2, -1).var(dim=1, unbiased=True)
    torch.testing.assert_close(bn.stats[2].running_var, 0.5 * torch.ones(2) + 0.5 * unbiased)
    # untouched steps keep their initial statistics
    assert torch.equal(bn.stats[0].running_mean, torch.zeros(2))
    assert torch.equal(bn.stats[3].running_var, torch.ones(2))
    # in eval each step normalises with its own statistics
    bn.eval()
    y1, y2 = bn(x1, 1), bn(x1, 2)
    expected = (x1 - bn.stats[2].running_mean.view(1, 2, 1, 1)) / torch.sqrt(
        bn.stats[2].running_var.view(1, 2, 1, 1) + bn.eps)
    torch.testing.assert_close(y2, expected)
    assert not torch.allclose(y1, y2)


def test_shared_statistics_when_tsbn_is_off():
    bn = TimeSpecificBatchNorm(2, num_steps=3, time_specific=False)
    assert len(bn.stats) == 1
    bn.train()
    bn(torch.randn(8, 2, 3, 3), 1)
    bn(torch.randn(8, 2, 3, 3), 3)
    assert int(bn.stats[0].num_batches_tracked) == 2


def test_affine_is_shared_across_time():
    bn = TimeSpecificBatchNorm(3, num_steps=2, affine=True)
    assert sum(p.numel() for p in bn.parameters()) == 6
    with torch.no_grad():
        bn.weight.fill_(2.0), bn.bias.fill_(1.0)
    bn.eval()
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(bn(x, 1), 2 * x / (1 + bn.eps) ** 0.5 + 1)


def test_beyond_policy():
    last = TimeSpecificBatchNorm(2, num_steps=2, beyond="last").eval()
    last.stats[2].running_mean.fill_(1.0)
    x = torch.randn(3, 2, 2, 2)
    torch.testing.assert_close(last(x, 7), last(x, 2))  # never trained: the last built step
    with pytest.raises(TimeStepError, match="never trained; built for steps 0-2"):
        TimeSpecificBatchNorm(2, num_steps=2, beyond="error").eval()(x, 3)


def test_extend_then_recalibrate_new_steps_only():
    model = zoo.build("frnn_2state_shared", channels=(3, 4), readout_time=3, input_size=8)
    model.train()
    data = [torch.randn(16, 3, 8, 8) for _ in range(3)]
    for x in data:
        model(x, readout_time=[2, 3])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.extend_time(5)
    assert model.spec.time_steps == 5
    assert model.recalibrate(data, readout_time=5) == [3, 4, 5]
    after = model.state_dict()
    for key, value in before.items():  # weights and trained steps unchanged
        assert torch.equal(after[key], value), key
    # readout 5 runs transitions up to step 4 (new: 3, 4); the post-net reads out at the new 4 and 5
    new = [k for k in after if k not in before and k.endswith("running_mean")]
    assert sorted({k.split(".stats.")[1][0] for k in new if k.startswith("norms")}) == ["3", "4"]
    assert len(new) == 2 * 2 * 4 + 2 and all(not torch.equal(after[k], torch.zeros_like(after[k])) for k in new)
    model.eval()
    assert torch.isfinite(model(data[0], readout_time=5)).all()
