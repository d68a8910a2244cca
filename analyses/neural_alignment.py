"""Neural alignment over time: RSA of every (state, time step) against brain RDMs, beside controls.

Noise ceilings, bootstrap intervals, the hierarchy contrast, and controls (pixel, untrained, category RDMs).

    python -m analyses.neural_alignment                      # the shipped default model on the 92 images
    python -m analyses.neural_alignment --recording rec.nc --targets cichy2014_fmri_IT my_rdms.npz
    python -m analyses.neural_alignment --model runs/x/checkpoint.pt --stimuli 92images --bootstrap 200

    python -m analyses.neural_alignment --meg MEG_decoding_RDMs.mat --meg-window -100 600 --targets

Writes (atomically) under --out-dir: NAME.nc (dims target, state, time), NAME.csv (one row per target,
state and time, with units), NAME_contrast.csv (the hierarchy contrast and its verdict in words); with
--meg also NAME_meg.nc (state x step x neural time scores, peak latencies) and NAME_meg_fit.csv (the
ms-per-step and onset fit per state); with controls (--controls, default auto) NAME_controls.csv (every
control against every target) and, in NAME.csv, each control's score beside every model score. Every input
is checked before anything is written.

Stimulus ids: a recording of a folder (--stimuli DIR) names each image by its path under DIR (e.g.
cats/001.jpg; image files given one by one: by file name); the 92 images are 92img_01 .. 92img_92 in the
published order. A target read from a file (.npz/.npy/.mat) is named by its file stem (my_rdms.npz ->
my_rdms): that name is what --contrast and the tables use.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from analyses import common
from visrecur.artifacts.recordings import open_recording, time_mapping
from visrecur.artifacts.results import write_dataset
from visrecur.cli import given_time_mapping
from visrecur.errors import report_errors
from visrecur.neural import (
    TARGETS,
    bootstrap_scores,
    load_target,
    model_rdms,
    peak_contrast,
    percentile_ci,
    rsa_tables,
)
from visrecur.neural import controls as control_rdms
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
    tables = rsa_tables(rdm, targets, method, ceiling=True if require_ceilings else None)  # model ranked once
    per_target = [table.drop_vars("subject_score").drop_dims("subject").expand_dims(target=[str(t.name)])
                  for t, table in zip(targets, tables)]
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


def resolve_contrast(given, names: Sequence[str], n_boot: int) -> tuple[list[str] | None, str]:
    """(the two targets to contrast or None, why none). A contrast asked for (``given``) that cannot be
    computed is refused; the default one is left out with a note."""
    if given is not None:
        missing = [c for c in given if c not in names]
        if missing:
            raise ScoringError(f"--contrast {' '.join(given)}: target {missing[0]!r} is not scored; scored: "
                               f"{', '.join(names)} (file targets are named by their file stem)")
        if not n_boot:
            raise ScoringError(f"--contrast {' '.join(given)} needs bootstrap intervals; give --bootstrap N "
                               "(N >= 1) or leave out --contrast")
        return list(given), ""
    default = list(DEFAULT_CONTRAST)
    if not all(c in names for c in default):
        return None, (f"no contrast written: the default contrast ({' vs '.join(default)}) needs both targets; "
                      f"give --contrast A B with two of: {', '.join(names)}")
    if not n_boot:
        return None, "no contrast written: --bootstrap 0 gives no intervals to judge it by"
    return default, ""


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


def load_recording(args):
    """(the recording to score, its stimuli when recorded now, else None), with the recording's own
    milliseconds: a --ms-per-step that conflicts with a recording's (or the model's) time mapping is refused."""
    given = given_time_mapping(args)
    if args.recording:
        recording = open_recording(args.recording)  # lazy: model_rdms reads one (state, step) at a time
        TimeMapping.resolve(given, time_mapping(recording), "recording")
        return recording, None
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import resolve
    source = load_model(args.model)
    stimuli = resolve(args.stimuli)
    return record(source, stimuli, states=args.states, times=args.times, reduction=args.reduction,
                  progress=False, ms_per_step=given), stimuli


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
    p.add_argument("--target-stimuli", help="stimulus ids of RDM files in matrix order: a text file (one id a "
                   "line) or 92images (default: the ids stored in the file)")
    p.add_argument("--method", default="spearman", choices=["spearman", "kendall_tau_a", "pearson"],
                   help="how model and target RDMs are compared")
    p.add_argument("--metric", default="correlation", choices=["correlation", "euclidean", "cosine"],
                   help="dissimilarity of two stimuli's activity patterns in the model RDMs")
    p.add_argument("--zscore", action="store_true", help="z-score each unit across stimuli before the RDM "
                   "(default: off)")
    p.add_argument("--noise-ceiling", choices=["auto", "all"], default="auto",
                   help="auto: for targets with >= 3 subjects; all: every target must have one")
    p.add_argument("--bootstrap", type=int, default=1000, help="stimulus resamples for the intervals (0: none)")
    p.add_argument("--ci", type=float, default=0.95, help="level of the bootstrap intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument("--contrast", nargs=2, metavar=("A", "B"),
                   help="does target A's best (state, time) come earlier than B's? Two scored targets, e.g. file "
                        f"stems (default: {' '.join(DEFAULT_CONTRAST)} when both are scored)")
    p.add_argument("--controls", nargs="+", default=["auto"], choices=["auto", "none", *control_rdms.CONTROLS],
                   metavar="CONTROL",
                   help="controls scored beside the model: none, auto, or any of pixel (input and raw image RDMs), "
                        "untrained (the same "
                        "architecture, untrained), feedforward (its unshared-weight twin, untrained), category "
                        "(label RDMs); auto: all the recording allows")
    p.add_argument("--control-seeds", type=int, default=len(control_rdms.UNTRAINED_SEEDS),
                   help="seeds (0..N-1) of the untrained controls")
    common.add_time_mapping_options(p, "recording (or model)")
    p.add_argument("--meg", help="time-resolved MEG RDMs: Cichy 2014 MEG_decoding_RDMs.mat or an Algonauts "
                                   "2019 MEG file")
    p.add_argument("--meg-format", choices=["cichy2014", "algonauts2019"], default="cichy2014",
                   help="layout of the --meg file")
    p.add_argument("--meg-window", type=float, nargs=2, metavar=("START_MS", "END_MS"),
                   help="neural time window to read (Cichy 2014 format; default: the whole file)")
    p.add_argument("--meg-bootstrap", type=int, default=200,
                   help="resamples for the ms-per-step fit's intervals: of subjects for the Cichy 2014 warp fit over "
                        "whole time courses, of stimuli for the Algonauts peak fit (0: none)")
    common.add_output(p)
    p.add_argument("--name", default="neural_alignment", help="file name stem of the results")
    args = p.parse_args(argv)
    given_time_mapping(args, p)  # a bad value is one line before any work
    for name in ("bootstrap", "meg_bootstrap"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be 0 (no intervals) or more")
    common.check_counts(p, args, ("control_seeds",))
    if args.contrast and args.contrast[0] == args.contrast[1]:
        p.error(f"--contrast {args.contrast[0]} {args.contrast[1]}: a target contrasted with itself says nothing; "
                "give two different targets")
    if not 0 <= args.seed < 2 ** 32:
        p.error(f"--seed {args.seed} must be a whole number from 0 to 2**32 - 1")
    if not args.meg:  # MEG options do nothing without an MEG file
        inert = [option for option, given in (("--meg-window", args.meg_window is not None),
                                               ("--meg-format", args.meg_format != "cichy2014"),
                                               ("--meg-bootstrap", args.meg_bootstrap != 200)) if given]
        if inert:
            p.error(f"{', '.join(inert)} without --meg has no effect: give --meg FILE or drop {inert[0]}")
    if args.target_stimuli and not args.meg and not any(Path(t).suffix in (".npz", ".npy", ".mat")
                                                        for t in args.targets):
        p.error("--target-stimuli names the ids of RDM files and MEG files, and neither is given: drop it "
                "(built-in targets carry their ids)")
    if not args.name or Path(args.name).name != args.name or args.name in (".", ".."):
        p.error(f"--name {args.name!r} must be a plain file name stem (no folders; choose the folder with --out-dir)")
    if len(args.controls) > 1 and ("auto" in args.controls or "none" in args.controls):
        p.error(f"--controls {' '.join(args.controls)}: auto and none stand alone")
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
    contrast_pair, no_contrast = resolve_contrast(args.contrast, [str(t.name) for t in targets], args.bootstrap) \
        if targets else (None, "")
    recording, stimuli = load_recording(args)
    tables, datasets = {}, {}
    if targets:
        ds, contrast = score_table(recording, targets, args.method, args.metric, args.zscore, args.states,
                                   args.times, args.bootstrap, args.seed, args.ci, contrast_pair,
                                   args.noise_ceiling == "all")
        table = tidy(ds)
        controls, notes = control_rdms.gather(recording, [] if args.controls == ["none"] else args.controls,
                                              stimuli, args.states, args.times, args.metric, args.zscore,
                                              range(args.control_seeds))
        if controls:
            control_table = control_rdms.score(controls, targets, args.method, args.bootstrap, args.seed, args.ci)
            tables["_controls"] = control_table
            table = beside(table, control_table)
        print(summary(ds, contrast))
        if controls:
            print(control_summary(control_table))
        for note in notes + ([no_contrast] if no_contrast else []):
            print(note)
        datasets[".nc"] = ds
        tables[""] = table
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


def beside(table: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """Every control's score as columns of the model's table: ``<control>_score`` per target (pixels,
    categories), ``<control>_score_mean``/``_sd`` per target, state and time (untrained twins, over seeds)."""
    single = controls[controls.get("state", pd.Series(index=controls.index, dtype=object)).isna()] \
        if "state" in controls else controls
    if len(single):
        wide = single.pivot(index="target", columns="control", values="score")
        wide.columns = [f"{c}_score" for c in wide.columns]
        table = table.merge(wide.reset_index(), on="target", how="left")
    if "state" in controls:
        seeded = controls[controls["state"].notna()]
        for name, part in seeded.groupby("control", sort=False):
            cols = part[["target", "state", "time", "score", "score_sd"]].rename(
                columns={"score": f"{name}_score_mean", "score_sd": f"{name}_score_sd"})
            table = table.merge(cols, on=["target", "state", "time"], how="left")
    return table


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
    if args.meg_format == "cichy2014":  # 1 ms grid and subjects: the warp fit over whole time courses
        from visrecur.neural.meg_time import fit_time_warp, subject_scores

        per_subject = subject_scores(rdm, meg, args.method)
        fits = [fit_time_warp(per_subject, str(s), args.meg_bootstrap, args.seed, args.ci) for s in reached]
    else:  # a few time windows, no subjects: each step's peak window, stimuli resampled
        fits = [fit_step_latency(rdm, meg, str(s), args.method, args.meg_bootstrap, args.seed, args.ci)
                for s in reached]
    return ds, pd.DataFrame(fits)


def control_summary(controls: pd.DataFrame) -> str:
    """Per target, every control's score (untrained twins: their best (state, time), mean over seeds)."""
    lines = []
    for target, part in controls.groupby("target", sort=False):
        words = []
        for name, rows in part.groupby("control", sort=False):
            best = rows.loc[rows["score"].idxmax()]
            where = f" (best: {best.state} at t={best.time}, mean of {int(best.n_seeds)} seeds)" \
                if "state" in rows and pd.notna(best.get("state")) else ""
            words.append(f"{name} {best.score:.3f}{where}")
        lines.append(f"controls against {target}: " + "; ".join(words))
    return "\n".join(lines)


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
