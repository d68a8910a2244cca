"""Streamed time-resolved encoding at THINGS-MEG scale: wall time and peak memory against the number of
images, on planted data of THINGS-MEG's shape.

    nice -n 10 python benchmarks/bench_things_encoding.py [--images 5000 10000 22448] [--sensors 272]
        [--times 281] [--components 50] [--dir /tmp] [--workers 0]

For each size: writes a planted zarr recording (one state, steps 0-2, 32 x 4 x 4 units from 20 latent
factors per step) and a zarr MEG store (images x sensors x times, float32, -100..1300 ms; step k's factors
drive the sensors through a random map with a time course peaking at 100, 150, 200 ms), then runs
visrecur.neural.streamed_encoding.streamed_encoding in a fresh process (5-fold, PCA and ridge fitted on the
training folds) and records its wall time, its peak resident memory and the latency at which each step's
score (median r over sensors) peaks; deletes the stores. --workers N > 0 runs on a dask.distributed
LocalCluster of N worker processes (peak memory is then that of the client process; the workers' is
reported beside it). Results: benchmarks/results/things_encoding.csv (+ metadata).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from visrecur.neural.streamed_encoding import streamed_encoding
rec, meg, d, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = None
if workers:
    from distributed import Client, LocalCluster
    client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None))
start = time.perf_counter()
result = streamed_encoding(rec, meg, n_components=d, client=client)
wall = time.perf_counter() - start
worker_mb = 0.0
if client is not None:
    worker_mb = max(client.run(lambda: __import__("resource").getrusage(0).ru_maxrss / 1024).values())
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_rss_mb": worker_mb, "peak_ms": result.peak_ms.sel(state="IT").values.tolist(),
                  "peak_score": result.score.sel(state="IT").max("time_ms").values.tolist()}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[5000, 10000, 22448])
    p.add_argument("--sensors", type=int, default=272)
    p.add_argument("--times", type=int, default=281)
    p.add_argument("--components", type=int, default=50)
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/things_encoding.csv")
    args = p.parse_args()
    from visrecur.neural import synthetic

    rows = []
    for n in args.images:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            rec, meg = Path(tmp) / "rec.zarr", Path(tmp) / "meg.zarr"
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                planted = synthetic.write_planted_things(rec, meg, n, n_sensors=args.sensors,
                                                         times_ms=np.linspace(-100.0, 1300.0, args.times))
            written = time.perf_counter() - start
            meg_gb = sum(f.stat().st_size for f in meg.rglob("*") if f.is_file()) / 1e9
            out = subprocess.run([sys.executable, "-c", CHILD, str(rec), str(meg), str(args.components),
                                  str(args.workers)], env={**os.environ, "PYTHONPATH": os.getcwd()},
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
        row = {"images": n, "sensors": args.sensors, "times": args.times, "cells": args.sensors * args.times,
               "meg_gb": meg_gb, "write_s": written, "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
               "worker_peak_rss_mb": r["worker_peak_rss_mb"], "workers": args.workers,
               "planted_ms": " ".join(f"{v:g}" for v in planted.values()),
               "recovered_ms": " ".join(f"{v:g}" for v in r["peak_ms"]),
               "peak_median_r": " ".join(f"{v:.3f}" for v in r["peak_score"])}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(rows, args)  # after every size: a long run stopped early keeps what it measured


def write(rows, args):
    import pandas as pd

    from visrecur.artifacts.results import write_table

    t = pd.DataFrame(rows)
    t["seconds_per_1000_images"] = 1000 * t.wall_s / t.images
    summary = "; ".join(f"{r.images} images: {r.wall_s:.0f} s, peak {r.peak_rss_mb:.0f} MB, latencies "
                        f"{r.recovered_ms} ms (planted {r.planted_ms})" for r in t.itertuples())
    summary = (f"{args.sensors} sensors x {args.times} times, {os.cpu_count()} CPU cores (load average "
               f"{os.getloadavg()[0]:.1f}): " + summary)
    print(summary)
    write_table(t, args.out, description=summary, command="python " + " ".join(sys.argv),
                units={"wall_s": "s", "peak_rss_mb": "MB", "meg_gb": "GB"})


if __name__ == "__main__":
    main()
