"""Training throughput of the Table 1 3-state FRNN against a FLOP-matched feedforward network, one run.

    python benchmarks/bench_training_throughput.py [--batch 64] [--steps 5] [--device cpu] [--bf16]

The feedforward network is a plain pre-activation ResNet with the FRNN's widths (64/128/256) and as many
blocks per stage as brings its multiply-accumulates closest to the FRNN's at that readout time. Reported:
images/s of SGD steps (forward, backward, update) for each, and the ratio of achieved MAC/s (1.0: the
recurrent model uses the hardware as well as a feedforward one). With --mfu: model FLOPs utilisation
(3 x forward MACs x 2 FLOPs per image, against a matmul peak measured on the same device and dtype)
and the projected wall time of the paper's 60-epoch CIFAR-10 run (50,000 images per epoch).
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]
from common import interleaved  # noqa: E402
from reference_resnet import PreActResNet  # noqa: E402

from visrecur.architecture import zoo  # noqa: E402


def macs(model, size=32):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2


def matched_resnet(target_macs):
    best = min(range(1, 40), key=lambda n: abs(macs(PreActResNet(n, (64, 128, 256))) - target_macs))
    return PreActResNet(best, (64, 128, 256)), best


def matmul_peak(device, dtype, size=4096, repeats=10):
    """Measured dense matmul FLOP/s on this device and dtype: the MFU denominator."""
    import time

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="SGD steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--mfu", action="store_true", help="also measure the matmul peak, MFU and 60-epoch projection")
    args = p.parse_args()
    device = torch.device(args.device)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    print(f"torch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"bf16 {args.bf16}, channels_last {args.channels_last}, compile {args.compile}")
    print(f"{'model':34s} {'GMAC/img':>9s} {'img/s':>8s}   {'feedforward':22s} {'GMAC/img':>9s} {'img/s':>8s} "
          f"{'MAC/s ratio':>11s}")
    for t in (5, 10):
        frnn = zoo.build("frnn_3state_shared", readout_time=t)
        frnn_macs = macs(frnn)
        ff, blocks = matched_resnet(frnn_macs)
        ff_macs = macs(ff)
        models = {"frnn": frnn.to(device), "ff": ff.to(device)}
        steps = {}
        for name, model in models.items():
            if args.channels_last:
                model.to(memory_format=torch.channels_last)
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            fn = torch.compile(model) if args.compile else model

            def step(fn=fn, opt=opt):
                for _ in range(args.steps):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                        loss = F.cross_entropy(fn(x).float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
            steps[name] = step
        timing = interleaved(steps, repeats=args.repeats, warmup=1)
        ips = {k: args.batch * args.steps / v for k, v in timing.items()}
        ratio = (ips["frnn"] * frnn_macs) / (ips["ff"] * ff_macs)
        print(f"{'3-state FRNN (Table 1), t=' + str(t):34s} {frnn_macs / 1e9:9.2f} {ips['frnn']:8.1f}   "
              f"{'pre-act ResNet ' + str(blocks) + ' blocks/stage':22s} {ff_macs / 1e9:9.2f} {ips['ff']:8.1f} "
              f"{ratio:11.2f}")
        if args.mfu:
            peak = matmul_peak(device, torch.bfloat16 if args.bf16 else torch.float32)
            achieved = ips["frnn"] * frnn_macs * 2 * 3
            hours = 60 * 50_000 / ips["frnn"] / 3600
            print(f"    matmul peak {peak / 1e12:.2f} TFLOP/s, FRNN MFU {100 * achieved / peak:.1f}%, "
                  f"projected 60-epoch Table 1 run: {hours:.2f} h")


if __name__ == "__main__":
    from visrecur.errors import report_errors

    sys.exit(report_errors(main)())
