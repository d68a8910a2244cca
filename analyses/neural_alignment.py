"""Neural alignment over time: RSA of every (state, time step) against brain RDMs, with noise ceilings,
bootstrap intervals and the hierarchy contrast.

    python -m analyses.neural_alignment                      # the shipped default model on the 92 images
    python -m analyses.neural_alignment --recording rec.nc --targets cichy2014_fmri_IT my_rdms.npz
    python -m analyses.neural_alignment --model runs/x/checkpoint.pt --stimuli 92images --bootstrap 200

    python -m analyses.neural_alignment --meg MEG_decoding_RDMs.mat --meg-window -100 600 --targets

Writes (atomically) under --out-dir: NAME.nc (dims target, state, time), NAME.csv (one row per target,
state and time, with units), NAME_contrast.csv (the hierarchy contrast and its verdict in words); with
--meg also NAME_meg.nc (state x step x neural time scores, peak latencies) and NAME_meg_fit.csv (the
ms-per-step and onset fit per state). Every input is checked before anything is written.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from analyses import common
from visrecur.artifacts.recordings import open_recording, time_mapping
from visrecur.artifacts.results import write_dataset
from visrecur.cli import given_time_mapping
from visrecur.errors import report_errors
from visrecur.neural import (TARGETS, bootstrap_scores, load_target, model_rdms, peak_contrast, percentile_ci,
                             rsa_scores)
from visrecur.neural.errors import ScoringError
from visrecur.timing import TimeMapping

DEFAULT_TARGETS = list(TARGETS)
DEFAULT_CONTRAST = ("cichy2014_fmri_EVC", "cichy2014_fmri_IT")


def score_table(recording: xr.Dataset, targets: Sequence[xr.DataArray], method: str = "spearman",
                metric: str = "correlation", zscore: bool = False, states=None, times=None, n_boot: int = 1000,
                seed: int = 0, level: float = 0.95, contrast: Sequence[str] | None = DEFAULT_CONTRAST,
                require_ceilings: bool = False) -> tuple[xr.Dataset, dict | None]:
    """The (target, state, time) score table with noise ceilings and bootstrap intervals, and the
    hierarchy contrast of the two targets named in ``contrast`` (None where either is not scored).
    Noise ceilings are computed for targets with at least 3 subjects; ``require_ceilings`` refuses
    targets with fewer. Milliseconds are the recording's own (its time mapping)."""
    rdm = model_rdms(recording, states, times, metric, zscore)
    per_target = [rsa_scores(rdm, t, method, ceiling=True if require_ceilings else None).drop_vars("subject_score").drop_dims("subject")
                  .expand_dims(target=[str(t.name)]) for t in targets]
    ds = xr.concat(per_target, "target", combine_attrs="drop")
    mapping = time_mapping(recording)
    ds["n_subjects"] = ("target", [t.sizes["subject"] for t in targets])
    ds["independent"] = ("target", [str(t.attrs.get("independent", "yes")) for t in targets])
    ds["provenance"] = ("target", [", ".join(f"{k}: {v}" for k, v in t.attrs.items()
                                             if k in ("paper", "file", "sha256", "source", "modality", "species"))
                                   for t in targets])
    boot = None
    if n_boot:
        boot = bootstrap_scores(rdm, targets, method, n_boot, seed)
        for var in ("score", "subject_mean"):
            ds[f"{var}_ci_low"], ds[f"{var}_ci_high"] = percentile_ci(boot[var], level)
        for var in ("noise_ceiling_lower", "noise_ceiling_upper"):
            ds[f"{var}_ci_low"], ds[f"{var}_ci_high"] = percentile_ci(boot[var], level)
    units = f"{method} correlation between RDMs"
    for var in ds.data_vars:
        if var.startswith(("score", "subject_mean", "subject_sem", "noise_ceiling")):
            ds[var].attrs["units"] = units
    ds["latency_min_ms"].attrs["units"] = ds["latency_max_ms"].attrs["units"] = "ms"
    ds["time"].attrs["units"] = "model step"
    ds.attrs = {"method": method, "rdm_metric": metric, "zscore_units": int(zscore),
                "skipped": rdm.attrs["skipped"] or "none",
                "skipped_note": "(state, time) pairs not yet reached by the state (NaN in the recording): no score",
                "n_boot": n_boot, "seed": seed, "ci_level": level, "time_mapping": json.dumps(mapping.to_dict()),
                "score": "correlation of the model RDM with the subject-mean RDM",
                "subject_mean": "mean over subjects of the per-subject correlations (bounded by the noise ceiling)",
                **{f"recording_{k}": v for k, v in recording.attrs.items()
                   if k in ("model", "checkpoint", "checkpoint_sha256", "stimulus_set", "reduction", "readout_time")}}
    result = None
    names = [str(t.name) for t in targets]
    if contrast and boot is not None and all(c in names for c in contrast):
        result = peak_contrast(ds, boot, contrast[0], contrast[1], level, mapping)
        ds.attrs["verdict"] = result["verdict"]
    return ds, result


def tidy(ds: xr.Dataset) -> pd.DataFrame:
    """One row per target, state and time; ms and units in the columns."""
    per_cell = [v for v in ds.data_vars if set(ds[v].dims) == {"target", "state", "time"}]
    table = ds[per_cell].to_dataframe().reset_index()
    per_target = ds[[v for v in ds.data_vars if ds[v].dims == ("target",)]].to_dataframe().reset_index()
    table = table.merge(per_target.drop(columns="provenance", errors="ignore"), on="target")  # provenance: in .nc
    table["reached"] = table["score"].notna()
    table["method"] = ds.attrs["method"]
    table["score_units"] = f"{ds.attrs['method']} correlation between RDMs"
    return table


def load_recording(args) -> xr.Dataset:
    """The recording to score, with its own milliseconds: a --ms-per-step that conflicts with a recording's
    (or the model's) time mapping is refused."""
    given = given_time_mapping(args)
    if args.recording:
        recording = open_recording(args.recording)  # lazy: model_rdms reads one (state, step) at a time
        TimeMapping.resolve(given, time_mapping(recording), "recording")
        return recording
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import resolve
    source = load_model(args.model)
    return record(source, resolve(args.stimuli), states=args.states, times=args.times, reduction=args.reduction,
                  progress=False, ms_per_step=given)


def parse_args(argv=None):
    p = common.parser(__doc__, "neural_alignment")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--recording", help="a recording (.nc/.zarr) made with python -m visrecur.record")
    src.add_argument("--model", help="checkpoint path or zoo name to record now (default: the shipped model)")
    p.add_argument("--stimuli", default="92images", help="stimulus set when recording now (default 92images)")
    p.add_argument("--reduction", default="none", help="reduction when recording now (default none)")
    p.add_argument("--states", nargs="+", help="states to score (default: all recorded)")
    p.add_argument("--times", type=int, nargs="+", help="time steps to score (default: all recorded)")
    p.add_argument("--targets", nargs="*", default=DEFAULT_TARGETS,
                   help=f"built-in targets ({', '.join(TARGETS)}) or RDM files (.npz/.npy/.mat)")
    p.add_argument("--target-stimuli", help="stimulus ids of RDM files: a text file, or 92images")
    p.add_argument("--method", default="spearman", choices=["spearman", "kendall_tau_a", "pearson"])
    p.add_argument("--metric", default="correlation", choices=["correlation", "euclidean", "cosine"])
    p.add_argument("--zscore", action="store_true", help="z-score each unit across stimuli before the RDM")
    p.add_argument("--noise-ceiling", choices=["auto", "all"], default="auto",
                   help="auto: for targets with >= 3 subjects; all: every target must have one")
    p.add_argument("--bootstrap", type=int, default=1000, help="stimulus resamples for the intervals (0: none)")
    p.add_argument("--ci", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contrast", nargs=2, default=list(DEFAULT_CONTRAST), metavar=("A", "B"),
                   help="does A's best (state, time) come earlier than B's?")
    common.add_time_mapping_options(p, "recording (or model)")
    p.add_argument("--meg", help="time-resolved MEG RDMs: Cichy 2014 MEG_decoding_RDMs.mat or an Algonauts "
                                   "2019 MEG file")
    p.add_argument("--meg-format", choices=["cichy2014", "algonauts2019"], default="cichy2014")
    p.add_argument("--meg-window", type=float, nargs=2, metavar=("START_MS", "END_MS"),
                   help="neural time window to read (Cichy 2014 format)")
    p.add_argument("--meg-bootstrap", type=int, default=200, help="stimulus resamples for the ms-per-step fit")
    common.add_output(p)
    p.add_argument("--name", default="neural_alignment", help="file name stem of the results")
    args = p.parse_args(argv)
    given_time_mapping(args, p)  # a bad value is one line before any work
    return args


@report_errors
def main(argv=None):
    args = parse_args(argv)
    if not 0 < args.ci < 1:
        raise ScoringError(f"--ci {args.ci} must lie between 0 and 1, e.g. 0.95")
    targets = [load_target(t, stimuli=args.target_stimuli) for t in args.targets]
    meg = load_meg(args) if args.meg else None
    if not targets and meg is None:
        raise ScoringError("nothing to score against: give --targets and/or --meg")
    recording = load_recording(args)
    tables, datasets = {}, {}
    if targets:
        ds, contrast = score_table(recording, targets, args.method, args.metric, args.zscore, args.states,
                                   args.times, args.bootstrap, args.seed, args.ci, args.contrast,
                                   args.noise_ceiling == "all")
        print(summary(ds, contrast))
        datasets[".nc"] = ds
        tables[""] = tidy(ds)
        if contrast:
            tables["_contrast"] = pd.DataFrame([contrast])
    if meg is not None:
        meg_ds, fits = meg_analysis(recording, meg, args)
        print("\n".join(fits["sentence"]))
        datasets["_meg.nc"] = meg_ds
        tables["_meg_fit"] = fits
    out = common.output_folder(args.out_dir)
    # everything is computed (and checked) before the first file
    provenance = {k: v for k, v in recording.attrs.items() if k in ("model", "checkpoint_sha256", "stimulus_set")}
    provenance["time_mapping"] = time_mapping(recording).to_dict()
    written = common.write({f"{args.name}{suffix}": table for suffix, table in tables.items()}, out,
                           common.command_line("neural_alignment", argv), "RSA scores of every (state, step)",
                           provenance)
    written += [write_dataset(ds, out / f"{args.name}{suffix}") for suffix, ds in datasets.items()]
    print("-> " + ", ".join(str(path) for path in written))


def load_meg(args) -> xr.DataArray:
    from visrecur.neural.meg import load_algonauts2019_meg, load_cichy2014_meg

    stimuli = None
    if args.target_stimuli and args.target_stimuli != "92images":
        stimuli = [line.strip() for line in Path(args.target_stimuli).read_text().splitlines() if line.strip()]
    if args.meg_format == "algonauts2019":
        return load_algonauts2019_meg(args.meg, stimuli)
    return load_cichy2014_meg(args.meg, time_window_ms=args.meg_window, stimuli=stimuli)


def meg_analysis(recording: xr.Dataset, meg: xr.DataArray, args) -> tuple[xr.Dataset, pd.DataFrame]:
    """Scores over model step x neural time, each state's peak latency, and the step -> ms fit of every
    state reached at two or more steps."""
    from visrecur.neural.meg import fit_step_latency, meg_scores, peak_latencies

    rdm = model_rdms(recording, args.states, args.times, args.metric, args.zscore)
    scores = meg_scores(rdm, meg, args.method)
    ds = xr.merge([scores.to_dataset(), peak_latencies(scores)])
    ds["peak_ms"].attrs["units"] = ds["state_peak_ms"].attrs["units"] = "ms after stimulus onset"
    ds.attrs = {"method": args.method, "skipped": rdm.attrs["skipped"] or "none", "meg_file": str(meg.attrs.get("file")),
                **{f"meg_{k}": str(v) for k, v in meg.attrs.items()}}
    reached = [s for s in rdm["state"].values if (~np.isnan(rdm.sel(state=s)[:, 0, 1])).sum() >= 2]
    fits = pd.DataFrame([fit_step_latency(rdm, meg, str(s), args.method, args.meg_bootstrap, args.seed, args.ci)
                      for s in reached])
    return ds, fits


def summary(ds: xr.Dataset, contrast: dict | None) -> str:
    lines = []
    for target in ds["target"].values:
        d = ds.sel(target=target)
        lines.append(f"{target} ({ds.attrs['method']}; noise ceiling {float(d.noise_ceiling_lower):.3f}-"
                     f"{float(d.noise_ceiling_upper):.3f}; independent: {str(d.independent.values).split(':')[0]})")
        lines.append(d["score"].to_pandas().round(3).to_string())
    if ds.attrs.get("skipped", "none") != "none":
        lines.append(f"skipped (not yet reached): {ds.attrs['skipped']}")
    if contrast:
        lines.append(contrast["verdict"])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
