"""RSA speed, side by side in one run: visrecur.neural against a plain vectorised numpy/scipy implementation
of the same computation (benchmarks/numpy_rsa.py; the baseline a user who knows numpy would write).

    nice -n 10 python benchmarks/bench_rsa.py [--recording rec.nc] [--repeats 5] [--boot 1000]

(a) the full 92-image table: every state and step of the shipped model (4 states x 5 steps, no reduction)
    against all 92-image targets (subject-mean score, per-subject scores, noise ceilings where >= 3
    subjects), model RDMs included; in memory (recording loaded) and from disk (the recording file read
    as part of the timed work). Medians of --repeats interleaved runs.
(b) --boot bootstrap resamples of stimuli over that table (noise ceilings recomputed in each), visrecur's
    bootstrap_scores against the numpy bootstrap that re-ranks every resampled vector.
Both paths' results are checked equal before timing (table: all scores and ceilings; bootstrap: the first
resamples, with the same random draws). Without the shared data the targets are random RDMs with the real
subject counts (15, 15, 1, 1, 4). Results: benchmarks/results/bench_rsa.csv (+ metadata).
"""
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import numpy_rsa
from common import interleaved


def recording(path):
    if path:
        from visrecur.artifacts.recordings import open_recording
        return open_recording(path).load()
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import resolve
    try:
        stimuli = resolve("92images")
    except Exception:  # no shared data: random images, the same sizes
        from visrecur.recording.stimuli import from_array
        stimuli = from_array(np.random.default_rng(0).integers(0, 256, (92, 175, 175, 3), dtype=np.uint8),
                             ids=[f"92img_{k + 1:02d}" for k in range(92)])
    return record(load_model(None), stimuli, progress=False)


def targets():
    from visrecur.neural import TARGETS, load_target
    from visrecur.neural.errors import NeuralDataError
    from visrecur.neural.synthetic import subject_rdms
    from visrecur.neural.targets import IDS_92
    try:
        return [load_target(name) for name in TARGETS], "real 92-image targets"
    except NeuralDataError:
        base = np.random.default_rng(0).random((92, 92))
        return [subject_rdms(base, s, 0.1, k, IDS_92, f"t{k}") for k, s in enumerate((15, 15, 1, 1, 4))], "random RDMs"


def visrecur_table(ds, tgts):
    from visrecur.neural import model_rdms
    from visrecur.neural.rsa import rsa_tables
    rdm = model_rdms(ds)
    return rdm, rsa_tables(rdm, tgts)


def visrecur_from_disk(path, tgts):
    from visrecur.artifacts.recordings import open_recording
    return visrecur_table(open_recording(path), tgts)


def check_equal(ours, theirs, tgts):
    for scores, t in zip(ours, tgts):
        score, subject_mean, lower, upper = theirs[str(t.name)]
        np.testing.assert_allclose(scores.score.values, score, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(scores.subject_mean.values, subject_mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose([scores.noise_ceiling_lower, scores.noise_ceiling_upper], [lower, upper],
                                   rtol=1e-9, atol=1e-12)


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recording", help="a 92-image recording (default: record the shipped model now, untimed)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--out", default="benchmarks/results/bench_rsa.csv")
    args = p.parse_args()
    import pandas as pd

    from visrecur.artifacts.recordings import recorded_states
    from visrecur.artifacts.results import write_table
    from visrecur.neural import bootstrap_scores, upper_triangle
    from visrecur.neural.rsa import single_threaded_blas

    ds = recording(args.recording)
    tgts, kind = targets()
    states = recorded_states(ds)
    arrays = {s: ds[s].values for s in states}
    target_arrays = {str(t.name): t.values for t in tgts}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.recording or str(Path(tmp) / "rec.nc")
        if not args.recording:
            ds.to_netcdf(path)
        # the same numbers first
        rdm, ours = visrecur_table(ds, tgts)
        check_equal(ours, numpy_rsa.table(arrays, target_arrays), tgts)
        check_equal(visrecur_from_disk(path, tgts)[1], numpy_rsa.table(numpy_rsa.read_arrays(path, states),
                                                                       target_arrays), tgts)
        m = upper_triangle(rdm.values).reshape(-1, 92 * 91 // 2)
        few = bootstrap_scores(rdm, tgts, n_boot=5, seed=0)
        score, subject_mean, ceilings = numpy_rsa.bootstrap(m, target_arrays, 5, seed=0)
        np.testing.assert_allclose(few.score.values.reshape(5, len(tgts), -1), score, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(few.subject_mean.values.reshape(5, len(tgts), -1), subject_mean, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(np.stack([few.noise_ceiling_lower, few.noise_ceiling_upper], -1), ceilings,
                                   rtol=1e-9, atol=1e-12)
        machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, load average "
                   f"{os.getloadavg()[0]:.1f}; {kind}; {len(states)} states x {ds.sizes['time']} steps, "
                   f"{ds.sizes['stimulus']} stimuli; outputs checked equal")
        print(machine)

        def numpy_memory():  # the same BLAS threading as visrecur's (one thread: small matrices)
            with single_threaded_blas():
                return numpy_rsa.table(arrays, target_arrays)

        def numpy_disk():
            with single_threaded_blas():
                return numpy_rsa.table(numpy_rsa.read_arrays(path, states), target_arrays)

        t = interleaved({"visrecur_memory": lambda: visrecur_table(ds, tgts), "numpy_memory": numpy_memory,
                         "visrecur_disk": lambda: visrecur_from_disk(path, tgts), "numpy_disk": numpy_disk},
                        repeats=args.repeats, warmup=1)
    rows = [{"work": f"full table, {where}", "visrecur_s": t[f"visrecur_{where}"], "numpy_s": t[f"numpy_{where}"]}
            for where in ("memory", "disk")]
    start = time.perf_counter()
    bootstrap_scores(rdm, tgts, n_boot=args.boot, seed=0)
    ours_boot = time.perf_counter() - start
    start = time.perf_counter()
    with single_threaded_blas():
        numpy_rsa.bootstrap(m, target_arrays, args.boot, seed=0)
    numpy_boot = time.perf_counter() - start
    rows.append({"work": f"{args.boot} bootstrap resamples of the table", "visrecur_s": ours_boot,
                 "numpy_s": numpy_boot})
    table = pd.DataFrame(rows)
    table["visrecur_over_numpy"] = table.visrecur_s / table.numpy_s
    for r in table.itertuples():
        print(f"{r.work}: visrecur {r.visrecur_s:.3f} s, numpy {r.numpy_s:.3f} s, visrecur / numpy "
              f"{r.visrecur_over_numpy:.2f}x (target <= 1.0x)")
    write_table(table, args.out, description=machine, command="python " + " ".join(sys.argv),
                units={"visrecur_s": "s", "numpy_s": "s"})


if __name__ == "__main__":
    main()
