"""What the graph machinery costs: forward+backward of visrecur models against hand-written modules doing
the same convolutions (checked equal before timing), timed interleaved in one run; reported as ratios.

    python benchmarks/bench_graph_overhead.py [--batch 32] [--repeats 7]

Target: visrecur / hand-written <= 1.05 on CPU.
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]
from common import interleaved  # noqa: E402
from handwritten_frnn import HandFRNN4  # noqa: E402
from reference_resnet import PreActResNet, copy_into_resnet  # noqa: E402

from visrecur.architecture import zoo  # noqa: E402


def copy_frnn4(model, hand):
    names = [s.name for s in model.spec.graph.states]
    with torch.no_grad():
        hand.pre.load_state_dict(model.prenet.net.state_dict())
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                block = model.blocks[f"{a}->{b}"]
                hand.blocks[f"{i}{j}"].conv1.weight.copy_(block.convs[0].weight)
                hand.blocks[f"{i}{j}"].conv2.weight.copy_(block.convs[1].weight)
        for bn in hand.post_bn:
            bn.weight.copy_(model.postnet.norm.weight), bn.bias.copy_(model.postnet.norm.bias)
        hand.fc.load_state_dict(model.postnet.fc.state_dict())


def step(model, x, y):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    pairs = []
    frnn = zoo.build("frnn_4state_shared").train()
    hand = HandFRNN4().train()
    copy_frnn4(frnn, hand)
    pairs.append(("frnn_4state_shared (t=5)", frnn, hand))
    resnet = zoo.build("resnet_3state_unshared", bn_affine=True).train()
    ref = PreActResNet(n=3).train()
    copy_into_resnet(resnet, ref)
    pairs.append(("resnet_3state_unshared = ResNet-20", resnet, ref))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.repeats} interleaved repeats, median forward+backward")
    print(f"{'model':40s} {'visrecur ms':>12s} {'hand ms':>10s} {'ratio':>7s}")
    for name, ours, theirs in pairs:
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)  # the same computation
        t = interleaved({"ours": lambda: step(ours, x, y), "hand": lambda: step(theirs, x, y)}, args.repeats)
        print(f"{name:40s} {1e3 * t['ours']:12.1f} {1e3 * t['hand']:10.1f} {t['ours'] / t['hand']:7.3f}")


if __name__ == "__main__":
    from visrecur.errors import report_errors

    sys.exit(report_errors(main)())
