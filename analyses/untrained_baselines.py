"""Untrained baselines: what each reference architecture alone gives, at random initialisation, in RSA
against brain RDMs of the 92 images.

    python -m analyses.untrained_baselines [--models cornet_z cornet_rt cornet_s blnet resnet18_time]
        [--seeds 0 1 2] [--targets ...] [--stimuli 92images] [--reduction pool:16] [--out-dir docs/results]

Each reference architecture (``visrecur.timed.reference``: CORnet-Z, CORnet-RT, CORnet-S, BL-net,
ResNet-18 with time = depth) is built with its weights drawn from each seed (inside
``torch.random.fork_rng``: torch's global random state is left as it was), the stimuli are recorded at
the architecture's own input size and preprocessing through every area at every step it runs, and each
(area, step) is scored against each target with ``visrecur.neural`` (``model_rdms`` + ``rsa_scores``:
the RSA of ``python -m analyses.neural_alignment``; correlation-distance RDMs and Spearman by default,
against the subject-mean RDM; no bootstrap: the spread here is over seeds). Steps an area does not run
(NaN in the recording) have no score and no row. Milliseconds are each model's own time mapping
(CORnet-S: Brain-Score's table) else the default (20-50 ms per step), or --ms-per-step.

Activity is reduced before the RDM (``--reduction``, default ``pool:16``: adaptive average pooling of
each map to at most 16x16), because the full first-area maps of 92 images at every step do not fit in
memory (BL-net's first layer alone: 96 x 128 x 128 units x 8 steps); ``--reduction none`` is the
neural-alignment command's own choice where memory allows.

Writes, under --out-dir (default results/): NAME.csv (one row per model, seed, area, step and target),
NAME_summary.csv (mean, standard deviation, min and max over seeds per model, area, step and target) and
NAME_best.csv (per model and target, the (area, step) with the best mean score over seeds, and its
spread), NAME defaulting to untrained_baselines.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import pandas as pd

from analyses import common
from visrecur.cli import given_time_mapping
from visrecur.errors import InputError, report_errors

DEFAULT_MODELS = ("cornet_z", "cornet_rt", "cornet_s", "blnet", "resnet18_time")
DEFAULT_TARGETS = ("kriegeskorte2008_monkey_IT", "kriegeskorte2008_human_IT", "cichy2014_fmri_IT",
                   "cichy2014_fmri_EVC")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_REDUCTION = "pool:16"


def check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds or min(seeds) < 0:
        raise InputError(f"seeds {seeds} must be integers >= 0, at least one, e.g. --seeds 0 1 2")
    return seeds


def check_models(names: Sequence[str]) -> list[str]:
    from visrecur.timed import reference

    for name in names:
        if name not in reference.REFERENCE:
            raise InputError(f"{name!r} is not a reference architecture; untrained baselines are built from "
                             f"{', '.join(reference.list_reference())}")
    return list(dict.fromkeys(names))


def score_recording(recording, targets, method: str = "spearman", metric: str = "correlation") -> pd.DataFrame:
    """One row per (area, step, target) the recording reaches: its RSA score and milliseconds."""
    from visrecur.neural import model_rdms, rsa_scores

    rdm = model_rdms(recording, metric=metric)
    rows = []
    for target in targets:
        ds = rsa_scores(rdm, target, method, ceiling=False)
        table = ds[["score", "latency_min_ms", "latency_max_ms"]].to_dataframe().reset_index()
        table.insert(0, "target", str(target.name))
        rows.append(table[["target", "state", "time", "latency_min_ms", "latency_max_ms", "score"]])
    table = pd.concat(rows, ignore_index=True).rename(columns={"state": "area", "time": "step"})
    return table[table["score"].notna()].reset_index(drop=True)


def baseline_table(names: Sequence[str], seeds: Sequence[int], stimuli, targets, *, reduction: str = DEFAULT_REDUCTION,
                   method: str = "spearman", metric: str = "correlation", ms_per_step=None,
                   input_size: int | None = None, options: dict | None = None, progress: bool = False) -> pd.DataFrame:
    """The tidy table: every model x seed x (area, step) x target. ``input_size``: a smaller input than
    each architecture's own (quick checks); ``options``: per model name, its architecture's options
    (e.g. ``{"blnet": {"widths": (8, 8, 8, 8, 8, 8, 8)}}``)."""
    from visrecur.recording import record
    from visrecur.timed import reference

    parts = []
    seeds = check_seeds(seeds)
    for name in check_models(names):
        for seed in seeds:
            model = reference.build(name, seed, input_size=input_size, **(options or {}).get(name, {}))
            recording = record(model, stimuli, reduction=reduction, ms_per_step=ms_per_step,
                               progress=progress)
            table = score_recording(recording, targets, method, metric)
            table.insert(0, "seed", seed)
            table.insert(0, "model", name)
            table["input_size"] = model.preprocess.crop_size[0]
            parts.append(table)
            if progress:
                best = table.loc[table.groupby("target")["score"].idxmax()]
                print(f"{name} seed {seed}: best " + "; ".join(f"{r.target} {r.score:.3f} ({r.area}@{r.step})"
                                                           for r in best.itertuples()), flush=True)
    out = pd.concat(parts, ignore_index=True)
    out["method"], out["rdm_metric"], out["reduction"] = method, metric, reduction
    out["weights"] = "random initialisation"
    return out


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1), min and max over seeds per model, area, step and target."""
    keys = ["model", "area", "step", "target", "latency_min_ms", "latency_max_ms"]
    grouped = table.groupby(keys, sort=False)["score"]
    out = grouped.agg(score_mean="mean", score_sd="std", score_min="min", score_max="max",
                      n_seeds="count").reset_index()
    return out


def best_cells(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model and target: the (area, step) with the best mean score over seeds, with its spread."""
    index = summary.groupby(["model", "target"], sort=False)["score_mean"].idxmax()
    return summary.loc[index].reset_index(drop=True)


def markdown(best: pd.DataFrame) -> str:
    """The best-cell table as Markdown: one row per model, one column per target, each cell the best mean
    score over seeds +- its standard deviation, with its (area, step) and milliseconds."""
    def cell(r):
        ms = f"{r.latency_min_ms:g}-{r.latency_max_ms:g} ms"
        spread = f" +- {r.score_sd:.2f}" if r.n_seeds > 1 else ""
        return f"{r.score_mean:.2f}{spread} ({r.area}, t={int(r.step)}, {ms})"

    targets = list(dict.fromkeys(best["target"]))
    lines = ["| model | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    for model, g in best.groupby("model", sort=False):
        by_target = {r.target: cell(r) for r in g.itertuples()}
        n = int(g["n_seeds"].min())
        lines.append(f"| {model} ({n} seed{'s' if n > 1 else ''}) | " + " | ".join(by_target.get(t, "") for t in targets) + " |")
    return "\n".join(lines)


def load_targets(names: Sequence[str], target_stimuli: str | None = None):
    from visrecur.neural import load_target

    return [load_target(t, stimuli=target_stimuli) if target_stimuli else load_target(t) for t in names]


@report_errors
def main(argv=None):
    p = common.parser(__doc__, "untrained_baselines")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME",
                   help="reference architectures (visrecur.timed.reference)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                   help="weight seeds: one untrained model each")
    p.add_argument("--stimuli", default="92images",
                   help="stimulus set (92images, a folder, an .npy array; visrecur.recording.resolve)")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS),
                   help="built-in targets (visrecur.neural.TARGETS) or RDM files (.npz/.npy/.mat)")
    p.add_argument("--target-stimuli", help="stimulus ids of RDM files: a text file, or 92images")
    p.add_argument("--reduction", default=DEFAULT_REDUCTION,
                   help="what each area's activity becomes before its RDM (none, mean, pool:K, srp:D)")
    p.add_argument("--method", default="spearman", choices=["spearman", "kendall_tau_a", "pearson"])
    p.add_argument("--metric", default="correlation", choices=["correlation", "euclidean", "cosine"])
    p.add_argument("--input-size", type=int,
                   help="a smaller input than each architecture's own, for quick checks (default: its own)")
    common.add_time_mapping_options(p, "model")
    common.add_output(p)
    p.add_argument("--name", default="untrained_baselines", help="file name stem of the results")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    common.check_counts(p, args, ("input_size",))
    from visrecur.recording.reductions import Reduction
    from visrecur.recording.stimuli import resolve

    names, seeds = check_models(args.models), check_seeds(args.seeds)
    Reduction.parse(args.reduction)  # a bad reduction is one line before any work
    out_dir = common.output_folder(args.out_dir)
    targets = load_targets(args.targets, args.target_stimuli)
    stimuli = resolve(args.stimuli)
    table = baseline_table(names, seeds, stimuli, targets, reduction=args.reduction, method=args.method,
                           metric=args.metric, ms_per_step=given_time_mapping(args, p), input_size=args.input_size,
                           progress=not args.no_progress)
    summary = summarize(table)
    best = best_cells(summary)
    print(best.round(3).to_string(index=False))
    units = f"{args.method} correlation between RDMs"
    written = common.write(
        {args.name: table, f"{args.name}_summary": summary, f"{args.name}_best": best}, out_dir,
        common.command_line("untrained_baselines", argv),
        {f"{args.name}.csv": f"RSA score ({units}) of every model, seed, area, step and target, at random "
                             "initialisation",
         f"{args.name}_summary.csv": f"mean, sd, min and max over seeds of the score ({units})",
         f"{args.name}_best.csv": "per model and target, the (area, step) with the best mean score over seeds"},
        {"models": names, "seeds": seeds, "stimuli": stimuli.name, "n_stimuli": len(stimuli),
         "targets": [str(t.name) for t in targets], "reduction": args.reduction, "method": args.method,
         "rdm_metric": args.metric})
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    sys.exit(main())
