"""Recording a timed model, side by side with its plain forward pass; every run in its own process.

    python benchmarks/bench_timed_recording.py [--stimuli 1000] [--size 224] [--reduction none] [--repeats 2]

The reference CORnet-S adapted through forward hooks (``visrecur.timed``), recorded by
``visrecur.record`` to .nc (every area at each of its steps; batch 64), against the plain CORnet-S
module's forward pass (no hooks) over the same preloaded stimuli, preprocessed the same way (target:
recording <= 1.3x the plain time; medians of ``--repeats`` interleaved runs), and the recording's peak
RSS against a recording of ``--large`` stimuli (memory bounded by the batch: target <= 1.1x). Results:
``benchmarks/results/timed_recording_<size>px.json``.
"""
import argparse
import datetime
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

RESULTS = Path(__file__).resolve().parent / "results"


def child(scenario: str, n: int, size: int, reduction: str, workdir: Path) -> dict:
    import torch

    from visrecur.artifacts.models import ModelSource
    from visrecur.recording.recorder import _images, record
    from visrecur.recording.stimuli import from_array
    from visrecur.timed.reference import build

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    stimuli = from_array(np.load(workdir / "stimuli.npy", mmap_mode="r")[:n])
    model = build("cornet_s", input_size=size)  # preprocessing: a size x size crop of size x size images
    source = ModelSource.wrap(model)
    batch = 64
    start = time.perf_counter()
    if scenario == "plain":
        with torch.no_grad():
            for s in range(0, n, batch):
                model.module(_images(stimuli, range(s, min(s + batch, n)), source, "cpu"))
    elif scenario == "visrecur":
        record(source, stimuli, workdir / f"visrecur_{n}.nc", batch_size=batch, overwrite=True, progress=False,
               reduction=reduction)
    seconds = time.perf_counter() - start
    size_mb = (workdir / f"visrecur_{n}.nc").stat().st_size / 1e6 if scenario == "visrecur" else 0.0
    return {"scenario": scenario, "n": n, "seconds": seconds, "file_mb": size_mb,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(scenario, n, size, reduction, workdir):
    out = subprocess.run([sys.executable, __file__, "--child", scenario, str(n), str(size), reduction, str(workdir)],
                         check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{scenario} failed: {out.stderr.strip().splitlines()[-1][:300]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stimuli", type=int, default=1000)
    p.add_argument("--large", type=int, default=0, help="also record this many stimuli for the peak-RSS ratio "
                                                        "(0: skip)")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (CORnet-S's is 224)")
    p.add_argument("--reduction", default="none", help="the recording's reduction (none: every unit)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs of plain and visrecur (medians)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        scenario, n, size, reduction, workdir = args.child
        print(json.dumps(child(scenario, int(n), int(size), reduction, Path(workdir))))
        return
    runs = {"plain": [], "visrecur": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rng = np.random.default_rng(0)
        count = max(args.stimuli, args.large)
        np.save(workdir / "stimuli.npy", rng.integers(0, 256, (count, args.size, args.size, 3), dtype=np.uint8))
        for _ in range(args.repeats):
            for scenario, done in runs.items():
                done.append(run(scenario, args.stimuli, args.size, args.reduction, workdir))
                print(json.dumps(done[-1]), flush=True)
        large = run("visrecur", args.large, args.size, args.reduction, workdir) if args.large else None
    plain = statistics.median(r["seconds"] for r in runs["plain"])
    recorded = statistics.median(r["seconds"] for r in runs["visrecur"])
    result = {
        "what": "adapted CORnet-S (visrecur.timed.reference, random init) recorded with visrecur.record to .nc "
                "vs the plain module's forward pass over the same preloaded, preprocessed stimuli",
        "date": datetime.date.today().isoformat(), "stimuli": args.stimuli, "size_px": args.size,
        "reduction": args.reduction, "batch": 64, "repeats": args.repeats,
        "threads": int(os.environ.get("BENCH_THREADS", "2")), "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
        "plain_seconds": plain, "recording_seconds": recorded, "ratio": recorded / plain, "target_ratio": 1.3,
        "recording_file_mb": runs["visrecur"][0]["file_mb"],
        "runs": runs,
    }
    if large is not None:
        small_rss = max(r["peak_rss_mb"] for r in runs["visrecur"])
        result.update({"large_stimuli": args.large, "large_peak_rss_mb": large["peak_rss_mb"],
                       "peak_rss_mb": small_rss, "peak_rss_ratio": large["peak_rss_mb"] / small_rss,
                       "target_peak_rss_ratio": 1.1})
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"timed_recording_{args.size}px.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nrecording / plain forward: {recorded:.1f} s / {plain:.1f} s = {recorded / plain:.2f}x at {args.stimuli} "
          f"stimuli, {args.size} px, reduction {args.reduction} (target <= 1.3)")
    if large is not None:
        print(f"peak RSS {args.large} / {args.stimuli} stimuli: {result['peak_rss_ratio']:.2f}x (target <= 1.1)")
    print(f"-> {path}")


if __name__ == "__main__":
    from visrecur.errors import report_errors

    sys.exit(report_errors(main)())
