"""RSA speed, side by side in one run: visrecur.neural against a plain-numpy loop doing the same work.

    python benchmarks/bench_rsa.py [--recording rec.nc] [--repeats 5] [--boot 1000] [--loop-boot 10]

(a) every state and step of the default model (4 states x 5 steps, no reduction, 92 images) against all
    92-image targets (subject-mean score, per-subject scores, noise ceilings where >= 3 subjects),
    including the model RDMs: target < 2 s. Medians of --repeats interleaved runs.
(b) --boot bootstrap resamples of that whole table (noise ceilings recomputed in each): target < 30 s.
    The loop baseline runs --loop-boot resamples and is scaled per resample (at about a second a
    resample, 1,000 would take a quarter of an hour).
The loop computes RDMs with np.corrcoef per (state, step) and correlates one pair of vectors at a time
(average ranks by np.unique, np.corrcoef); both paths' results are checked equal before timing.
Without the shared data the targets are random RDMs with the real subject counts (15, 15, 1, 1, 4).
"""
import os
import platform
import time

import numpy as np

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
    from visrecur.neural import model_rdms, rsa_scores
    rdm = model_rdms(ds)
    return rdm, [rsa_scores(rdm, t) for t in tgts]


# --- the plain-numpy loop ---------------------------------------------------------------------------------
def _rank(v):
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    _, inverse = np.unique(v, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]  # ties share their mean rank


def _spearman(a, b):
    return np.corrcoef(_rank(a), _rank(b))[0, 1]


def loop_rdms(ds, states):
    n = ds.sizes["stimulus"]
    i, j = np.triu_indices(n, 1)
    out = {}
    for s in states:
        for t in ds.time.values:
            x = ds[s].sel(time=t).values.reshape(n, -1).astype(np.float64)
            if not np.isnan(x).any():
                out[(s, int(t))] = (1 - np.corrcoef(x))[i, j]
    return out


def loop_scores(vectors, subject_sets):
    result = []
    for subjects in subject_sets:
        mean = subjects.mean(0)
        table = {key: (_spearman(v, mean), np.mean([_spearman(v, s) for s in subjects])) for key, v in vectors.items()}
        ceiling = None
        if len(subjects) >= 3:
            ceiling = (np.mean([_spearman(s, (subjects.sum(0) - s) / (len(subjects) - 1)) for s in subjects]),
                       np.mean([_spearman(s, mean) for s in subjects]))
        result.append((table, ceiling))
    return result


def loop_table(ds, states, tgts):
    n = ds.sizes["stimulus"]
    i, j = np.triu_indices(n, 1)
    vectors = loop_rdms(ds, states)
    subject_sets = [t.values[:, i, j] for t in tgts]
    return loop_scores(vectors, subject_sets)


def loop_bootstrap(ds, states, tgts, n_boot, seed=0):
    from visrecur.neural.bootstrap import resampled_pairs
    n = ds.sizes["stimulus"]
    i, j = np.triu_indices(n, 1)
    vectors = loop_rdms(ds, states)
    subject_sets = [t.values[:, i, j] for t in tgts]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        _, pairs = resampled_pairs(n, rng)
        loop_scores({k: v[pairs] for k, v in vectors.items()}, [s[:, pairs] for s in subject_sets])


def main():
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recording", help="a 92-image recording (default: record the shipped model now, untimed)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--loop-boot", type=int, default=10)
    args = p.parse_args()
    from visrecur.neural import bootstrap_scores
    from visrecur.artifacts.recordings import recorded_states

    ds = recording(args.recording)
    tgts, kind = targets()
    states = recorded_states(ds)
    # the same numbers first
    rdm, ours = visrecur_table(ds, tgts)
    theirs = loop_table(ds, states, tgts)
    for scores, (table, ceiling) in zip(ours, theirs):
        for (s, t), (score, subject_mean) in table.items():
            assert np.isclose(scores.score.sel(state=s, time=t), score)
            assert np.isclose(scores.subject_mean.sel(state=s, time=t), subject_mean)
        if ceiling:
            assert np.allclose([scores.noise_ceiling_lower, scores.noise_ceiling_upper], ceiling)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}; {kind}; {len(states)} states x {ds.sizes['time']} steps, "
          f"{ds.sizes['stimulus']} stimuli; outputs checked equal")
    from visrecur.neural.bootstrap import single_threaded_blas

    def loop():  # the same BLAS threading as visrecur's path (one thread: small matrices)
        with single_threaded_blas():
            return loop_table(ds, states, tgts)

    t = interleaved({"visrecur": lambda: visrecur_table(ds, tgts), "loop": loop},
                    repeats=args.repeats, warmup=1)
    print(f"(a) whole table with noise ceilings: visrecur {t['visrecur']:.3f} s, loop {t['loop']:.3f} s, "
          f"loop / visrecur {t['loop'] / t['visrecur']:.1f}x (target < 2 s)")
    start = time.perf_counter()
    bootstrap_scores(rdm, tgts, n_boot=args.boot, seed=0)
    ours_boot = time.perf_counter() - start
    start = time.perf_counter()
    with single_threaded_blas():
        loop_bootstrap(ds, states, tgts, args.loop_boot)
    loop_per = (time.perf_counter() - start) / args.loop_boot
    print(f"(b) {args.boot} bootstrap resamples of the table: visrecur {ours_boot:.1f} s "
          f"({1000 * ours_boot / args.boot:.1f} ms each), loop {1000 * loop_per:.0f} ms each "
          f"(~{loop_per * args.boot:.0f} s for {args.boot}), loop / visrecur {loop_per * args.boot / ours_boot:.1f}x "
          "(target < 30 s)")


if __name__ == "__main__":
    main()
