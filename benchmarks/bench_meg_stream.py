"""Memory and time of the MEG time fit on a file of the released Cichy 2014 size, streamed.

    nice -n 10 python benchmarks/bench_meg_stream.py [--recording rec.nc] [--dir /tmp] [--boot 200]

Writes a planted MEG_decoding_RDMs.mat of the real shape (92 x 92 x 1301 x 2 x 16, float64, 2.8 GB; IT's
steps planted at 85 ms + 27 ms x step, the weak signal of validate_meg_time.py) under --dir, then, in a
fresh process, scores all four states of the shipped model against every subject at every ms
(visrecur.neural.meg_time.subject_scores, streamed) and fits every state's warp; reports wall time and
that process's peak resident memory; deletes the file. Results: benchmarks/results/meg_stream.csv.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, time
from visrecur.artifacts.recordings import open_recording
from visrecur.neural import model_rdms
from visrecur.neural.meg_time import fit_time_warp, subject_scores
rdm = model_rdms(open_recording(sys.argv[1]).load())
start = time.perf_counter()
scores = subject_scores(rdm, sys.argv[2])
scored = time.perf_counter() - start
fits = [fit_time_warp(scores, str(s), n_boot=int(sys.argv[3])) for s in rdm.state.values]
print(json.dumps({"score_s": scored, "total_s": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "fits": [{k: f[k] for k in ("state", "ms_per_step", "ms_per_step_ci_low", "ms_per_step_ci_high",
                                             "onset_ms", "onset_ms_ci_low", "onset_ms_ci_high")} for f in fits]}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recording", help="a 92-image recording of the shipped model (default: recorded now)")
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/meg_stream.csv")
    args = p.parse_args()
    import pandas as pd

    from visrecur.artifacts.recordings import open_recording
    from visrecur.artifacts.results import write_table
    from visrecur.neural import model_rdms, synthetic

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        recording = args.recording
        if recording is None:
            from visrecur.artifacts.models import load_model
            from visrecur.recording import record
            from visrecur.recording.stimuli import resolve
            recording = str(Path(tmp) / "rec.nc")
            record(load_model(None), resolve("92images"), progress=False).to_netcdf(recording)
        rdm = model_rdms(open_recording(recording).load(), states=["IT"])
        values = rdm.sel(state="IT").values
        reached = ~np.isnan(values).all((1, 2))
        path = Path(tmp) / "MEG_decoding_RDMs.mat"
        start = time.perf_counter()
        synthetic.write_planted_cichy2014_meg(path, values[reached], np.arange(-100.0, 1201.0), 85, 27,
                                              noise=27.7, n_subjects=16, n_sessions=2, seed=0,
                                              steps=rdm.time.values[reached])
        written = time.perf_counter() - start
        size_gb = path.stat().st_size / 1e9
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        out = subprocess.run([sys.executable, "-c", CHILD, recording, str(path), str(args.boot)], env=env,
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [{"file_gb": size_gb, "write_s": written, "score_s": result["score_s"], "total_s": result["total_s"],
             "peak_rss_mb": result["peak_rss_mb"], "n_boot": args.boot, **fit} for fit in result["fits"]]
    it = next(f for f in result["fits"] if f["state"] == "IT")
    summary = (f"full Cichy-size file ({size_gb:.2f} GB, 1301 ms x 16 subjects x 2 sessions), all four states: "
               f"scoring {result['score_s']:.0f} s, with the four fits ({args.boot} subject resamples each) "
               f"{result['total_s']:.0f} s, peak memory {result['peak_rss_mb']:.0f} MB; IT (planted 85 ms + 27 ms x "
               f"step): {it['ms_per_step']:.2f} [{it['ms_per_step_ci_low']:.2f}, {it['ms_per_step_ci_high']:.2f}] "
               f"ms/step, onset {it['onset_ms']:.1f} [{it['onset_ms_ci_low']:.1f}, {it['onset_ms_ci_high']:.1f}] ms")
    print(summary)
    write_table(pd.DataFrame(rows), args.out, description=summary, command="python " + " ".join(sys.argv))
    print("this process's own peak:", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "MB")


if __name__ == "__main__":
    main()
