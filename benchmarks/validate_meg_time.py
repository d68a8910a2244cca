"""Planted-data validation of the whole-time-course MEG fit (visrecur.neural.meg_time) in the Cichy 2014
layout: 16 subjects x 2 sessions, 92 images, 1 ms steps, a weak signal (the subject-mean RDM's Spearman
with the planted step at its peak about 0.2).

    nice -n 10 python benchmarks/validate_meg_time.py [--recording rec.nc] [--state IT] [--seeds 3] [--boot 200]

The model RDMs are those of a recording of the shipped model on the 92 images (default: recorded now,
untimed), whose neighbouring steps' RDMs correlate 0.85-0.99; without the shared data, a synthetic state
whose steps correlate alike. For every planted ms per step x onset x seed it writes the warp fit (estimate,
95% subject-bootstrap interval), whether the interval covers the planted value, and, for contrast, the
per-step peak fit (linear regression of each step's peak time on the subject-mean RDM). Results:
benchmarks/results/meg_time_validation.csv (+ metadata) and a one-line summary per criterion.
"""
import argparse
import sys
import time

import numpy as np
import pandas as pd
from scipy.stats import linregress

MS_PER_STEP = (15, 27, 40, 50)
ONSETS = (40, 80, 120)
TIMES = np.arange(-100.0, 501.0)
NOISE = 27.7  # per subject and session; gives a subject-mean RDM correlation of about 0.2 at the peak


def model_rdm(path, state):
    from visrecur.neural import model_rdms
    try:
        if path:
            from visrecur.artifacts.recordings import open_recording
            ds = open_recording(path).load()
        else:
            from visrecur.artifacts.models import load_model
            from visrecur.recording import record
            from visrecur.recording.stimuli import resolve
            ds = record(load_model(None), resolve("92images"), progress=False)
        return model_rdms(ds, states=[state]), "shipped model (frnn_4state_cifar10) on the 92 images"
    except Exception as e:  # no shared data
        from visrecur.neural import synthetic
        print(f"no 92-image recording ({e}); a synthetic state with correlated steps instead", file=sys.stderr)
        return model_rdms(synthetic.correlated_recording(n_steps=5, step_correlation=0.8, name=state)), \
            "synthetic state, neighbouring steps correlated"


def one_run(rdm, state, onset, ms_per_step, seed, n_boot):
    from visrecur.neural import synthetic
    from visrecur.neural.meg_time import fit_time_warp, scores_from_blocks
    from visrecur.neural.rsa import compare
    from visrecur.neural.rdm import upper_triangle

    values = rdm.sel(state=state).values
    reached = ~np.isnan(values).all((1, 2))
    steps = rdm["time"].values[reached]
    blocks, group = [], []
    # the mean of 2 sessions drawn directly (noise / sqrt 2: the same distribution, half the random numbers)
    for v in synthetic.planted_meg_vectors(values[reached], TIMES, onset, ms_per_step, noise=NOISE / np.sqrt(2),
                                           seed=seed, steps=steps, n_sessions=1):
        v = v[:, 0]
        blocks.append(v)
        group.append(v.mean(0))
    scores = scores_from_blocks(rdm, TIMES, [f"S{k + 1:02d}" for k in range(16)], iter(blocks))
    start = time.perf_counter()
    fit = fit_time_warp(scores, state, n_boot=n_boot, seed=seed)
    fit_s = time.perf_counter() - start
    group_scores = compare(upper_triangle(values[reached]), np.concatenate(group))  # step x time
    peaks = TIMES[np.nanargmax(group_scores, 1)]
    old = linregress(steps, peaks)
    return {"planted_ms_per_step": ms_per_step, "planted_onset_ms": onset, "seed": seed,
            "group_score_peak": float(np.nanmax(group_scores)),
            "subject_score_peak": float(np.nanmax(scores.sel(state=state).mean("subject"))),
            **{k: fit[k] for k in ("ms_per_step", "ms_per_step_ci_low", "ms_per_step_ci_high", "onset_ms",
                                   "onset_ms_ci_low", "onset_ms_ci_high", "width_ms")},
            "fit_seconds": fit_s, "peak_fit_ms_per_step": float(old.slope), "peak_fit_onset_ms": float(old.intercept),
            "step_peaks_ms": " ".join(f"{p:g}" for p in peaks)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recording")
    p.add_argument("--state", default="IT")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/meg_time_validation.csv")
    args = p.parse_args()
    from visrecur.artifacts.results import write_table

    rdm, source = model_rdm(args.recording, args.state)
    rows = []
    for w in MS_PER_STEP:
        for onset in ONSETS:
            for seed in range(args.seeds):
                rows.append(one_run(rdm, args.state, onset, w, seed, args.boot))
                r = rows[-1]
                print(f"planted {w} ms/step, onset {onset} ms, seed {seed}: fit {r['ms_per_step']:.2f} "
                      f"[{r['ms_per_step_ci_low']:.2f}, {r['ms_per_step_ci_high']:.2f}] ms/step, onset "
                      f"{r['onset_ms']:.1f} [{r['onset_ms_ci_low']:.1f}, {r['onset_ms_ci_high']:.1f}]; peak fit "
                      f"{r['peak_fit_ms_per_step']:.1f} ms/step, onset {r['peak_fit_onset_ms']:.0f}; group r "
                      f"{r['group_score_peak']:.2f}", flush=True)
    t = pd.DataFrame(rows)
    t["slope_error_ms"] = t.ms_per_step - t.planted_ms_per_step
    t["onset_error_ms"] = t.onset_ms - t.planted_onset_ms
    t["slope_covered"] = ((t.ms_per_step_ci_low <= t.planted_ms_per_step)
                          & (t.planted_ms_per_step <= t.ms_per_step_ci_high))
    t["onset_covered"] = (t.onset_ms_ci_low <= t.planted_onset_ms) & (t.planted_onset_ms <= t.onset_ms_ci_high)
    t["slope_ci_width_ms"] = t.ms_per_step_ci_high - t.ms_per_step_ci_low
    summary = (f"{len(t)} runs ({source}, state {args.state}, 16 subjects x 2 sessions, subject-mean RDM Spearman at "
               f"the peak {t.group_score_peak.min():.2f}-{t.group_score_peak.max():.2f}): ms per step within 4 ms in "
               f"{(t.slope_error_ms.abs() <= 4).sum()}/{len(t)} (max error {t.slope_error_ms.abs().max():.2f} ms), "
               f"onset within 20 ms in {(t.onset_error_ms.abs() <= 20).sum()}/{len(t)} (max "
               f"{t.onset_error_ms.abs().max():.2f} "
               f"ms); 95% intervals cover ms per step in {t.slope_covered.sum()}/{len(t)}, onset in "
               f"{t.onset_covered.sum()}/{len(t)}; ms-per-step interval width max {t.slope_ci_width_ms.max():.2f} ms "
               f"(median {t.slope_ci_width_ms.median():.2f}); per-step peak fit: within 4 ms in "
               f"{((t.peak_fit_ms_per_step - t.planted_ms_per_step).abs() <= 4).sum()}/{len(t)}")
    print(summary)
    write_table(t, args.out, description=summary, command="python " + " ".join(sys.argv),
                units={"ms_per_step": "ms", "onset_ms": "ms"})


if __name__ == "__main__":
    main()
