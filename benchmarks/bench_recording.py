"""Recording cost, side by side in one run; every scenario runs in its own process (clean peak RSS).

    python benchmarks/bench_recording.py [--stimuli 1000] [--large 10000] [--workers 0]

(a) visrecur recording to .nc vs a plain forward pass over the same stimuli (target <= 1.3x time;
    medians of --repeats interleaved runs)
(b) visrecur peak RSS recording --large vs --stimuli stimuli (target <= 1.1x)
(c) the same stimuli through a naive forward-hook collector (everything kept in memory, one xarray
    written at the end) and through TorchLens (`pip install torchlens`; every operation traced per batch,
    nothing kept): time and peak-memory ratios against visrecur.
All scenarios: the default model (pretrained 4-state FRNN, readout t = 5, every state at steps 0..4, no
reduction, batch 64).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def child(scenario: str, n: int, workdir: Path) -> dict:
    import torch
    import xarray as xr

    from visrecur.artifacts.models import load_model
    from visrecur.recording.recorder import _images, record
    from visrecur.recording.stimuli import from_array

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    images = np.load(workdir / "stimuli.npy", mmap_mode="r")[:n]
    stimuli = from_array(images)
    source = load_model(None)
    model, batch = source.model, 64
    start = time.perf_counter()
    if scenario == "plain":
        with torch.no_grad():
            for s in range(0, n, batch):
                model(_images(stimuli, range(s, min(s + batch, n)), source, "cpu"), readout_time=5)
    elif scenario == "visrecur":
        record(source, stimuli, workdir / f"visrecur_{n}.nc", batch_size=batch, overwrite=True, progress=False,
               workers=int(os.environ.get("BENCH_WORKERS", "0")))
    elif scenario == "naive":
        kept = {}
        with torch.no_grad():
            for s in range(0, n, batch):
                model(_images(stimuli, range(s, min(s + batch, n)), source, "cpu"), readout_time=5,
                      observer=lambda name, t, v: kept.setdefault((name, t), []).append(v.clone()))
        data = {}
        for name in model.state_names:
            steps = [torch.cat(kept[(name, t)]) if (name, t) in kept else None for t in range(5)]
            shape = next(x for x in steps if x is not None).shape
            full = torch.stack([x if x is not None else torch.full(shape, float("nan")) for x in steps], 1)
            data[name] = (("stimulus", "time", f"{name}_c", f"{name}_y", f"{name}_x"), full.numpy())
        xr.Dataset(data).to_netcdf(workdir / f"naive_{n}.nc", engine="h5netcdf")
    elif scenario == "torchlens":
        import torchlens as tl

        for s in range(0, n, batch):
            x = _images(stimuli, range(s, min(s + batch, n)), source, "cpu")
            tl.trace(model, x)  # every operation logged; the trace is dropped at once
    seconds = time.perf_counter() - start
    return {"scenario": scenario, "n": n, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(scenario, n, workdir):
    out = subprocess.run([sys.executable, __file__, "--child", scenario, str(n), str(workdir)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"scenario": scenario, "n": n, "error": out.stderr.strip().splitlines()[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_interleaved(scenarios, n, workdir, repeats):
    """Each scenario ``repeats`` times, alternating; median seconds and largest peak RSS of each."""
    runs = {s: [] for s in scenarios}
    for _ in range(repeats):
        for scenario in scenarios:
            runs[scenario].append(run(scenario, n, workdir))
    summary = {}
    for scenario, results in runs.items():
        errors = [r for r in results if "error" in r]
        if errors:
            summary[scenario] = errors[0]
            continue
        summary[scenario] = {"scenario": scenario, "n": n,
                             "seconds": statistics.median(r["seconds"] for r in results),
                             "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "repeats": len(results)}
    return summary


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stimuli", type=int, default=1000)
    p.add_argument("--large", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of plain and visrecur (medians)")
    p.add_argument("--workers", type=int, default=0, help="visrecur's loader processes (record(workers=...))")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), Path(args.child[2]))))
        return
    os.environ["BENCH_WORKERS"] = str(args.workers)  # read by the children
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rng = np.random.default_rng(0)
        np.save(workdir / "stimuli.npy", rng.integers(0, 256, (max(args.stimuli, args.large), 32, 32, 3),
                                                      dtype=np.uint8))
        results = run_interleaved(["plain", "visrecur"], args.stimuli, workdir, args.repeats)
        for scenario in ("naive", "torchlens"):
            results[scenario] = run(scenario, args.stimuli, workdir)
        large = run_interleaved(["plain", "visrecur"], args.large, workdir, 1)
        for r in list(results.values()) + list(large.values()):
            print(json.dumps(r), flush=True)
    v, big = results["visrecur"], large["visrecur"]
    print(f"\n(a) recording / plain forward time: {v['seconds'] / results['plain']['seconds']:.2f}x at {args.stimuli} "
          f"stimuli, {big['seconds'] / large['plain']['seconds']:.2f}x at {args.large} (target <= 1.3)")
    print(f"(b) peak RSS {args.large} / {args.stimuli} stimuli: {big['peak_rss_mb'] / v['peak_rss_mb']:.2f}x "
          f"(target <= 1.1; {big['peak_rss_mb']:.0f} vs {v['peak_rss_mb']:.0f} MB)")
    for other in ("naive", "torchlens"):
        r = results[other]
        if "error" in r:
            print(f"(c) {other}: not run ({r['error']})")
            continue
        print(f"(c) {other} / visrecur: time {r['seconds'] / v['seconds']:.2f}x, peak RSS "
              f"{r['peak_rss_mb'] / v['peak_rss_mb']:.2f}x ({r['peak_rss_mb']:.0f} vs {v['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    from visrecur.errors import report_errors

    sys.exit(report_errors(main)())
