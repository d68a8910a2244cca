"""Neural alignment of the shipped models on the 92 images, with controls and paired comparisons.

    python -m analyses.neural_comparisons --out-dir docs/results            # every shipped model
    python -m analyses.neural_comparisons --models frnn_4state_cifar10 --bootstrap 200 --out-dir /tmp/x

For every model: its score table with every control beside it (as python -m analyses.neural_alignment
writes it) in neural_<model>.csv and neural_<model>_controls.csv. Then, each tested with compare_models
(paired bootstrap, the same resamples for both sides; stimuli and subjects resampled where the target has
several subjects, else stimuli):
  neural_vs_untrained.csv   every (state, time) against the same cell of the untrained architecture (mean
                            over its seeds), with a Benjamini-Hochberg correction over each model's state x
                            time table per target;
  neural_vs_controls.csv    each model's best cell against the pixel RDMs, the category RDMs and the best
                            cell of the untrained feedforward twin;
  neural_model_pairs.csv    the best cells of every pair of models;
  neural_zscore.csv         best and first-state scores with and without --zscore (no intervals).
Best cells are chosen on the same data they are tested on, which favours them; the tables say which cell.
"""
from __future__ import annotations

from itertools import combinations

import pandas as pd

from analyses import common
from analyses.neural_alignment import beside, score_table, tidy
from visrecur.artifacts.checkpoint import list_pretrained
from visrecur.errors import report_errors
from visrecur.neural import controls as control_rdms
from visrecur.neural import load_target, model_rdms, peak
from visrecur.neural.compare import compare_models

TARGETS = ("cichy2014_fmri_EVC", "cichy2014_fmri_IT", "kriegeskorte2008_monkey_IT", "kriegeskorte2008_human_IT")


def parse_args(argv=None):
    p = common.parser(__doc__, "neural_comparisons")
    p.add_argument("--models", nargs="+", default=list_pretrained(), help="shipped model names or checkpoints")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), help="built-in targets")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples of every interval and test")
    p.add_argument("--control-seeds", type=int, default=5, help="seeds of the untrained controls")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples")
    common.add_output(p)
    args = p.parse_args(argv)
    common.check_counts(p, args, ("bootstrap", "control_seeds"))
    return args


def _rows(result, **labels) -> pd.DataFrame:
    keep = [v for v in ("score_a", "score_b", "difference", "difference_ci_low", "difference_ci_high", "p_value",
                        "p_fdr") if v in result]
    table = result[keep].to_dataframe().reset_index() if result["difference"].ndim else \
        pd.DataFrame([{v: float(result[v]) for v in keep}])
    return table.assign(**labels, resampled=result.attrs["resampled"], n_boot=result.attrs["n_boot"])


@report_errors
def main(argv=None):
    args = parse_args(argv)
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import resolve

    out = common.output_folder(args.out_dir)
    targets = [load_target(t) for t in args.targets]
    stimuli = resolve("92images")
    tables, best, rdms = {}, {}, {}
    vs_untrained, vs_controls, zscored = [], [], []
    for name in args.models:
        recording = record(load_model(name), stimuli, progress=False)
        ds, _ = score_table(recording, targets, n_boot=args.bootstrap, seed=args.seed, contrast=None)
        controls, notes = control_rdms.gather(recording, ["auto"], stimuli, seeds=range(args.control_seeds))
        print(name, *notes, sep="\n  ")
        control_table = control_rdms.score(controls, targets, n_boot=args.bootstrap, seed=args.seed)
        tables[f"neural_{name}"] = beside(tidy(ds), control_table).assign(model=name)
        tables[f"neural_{name}_controls"] = control_table.assign(model=name)
        # each model's tables as soon as they are done
        common.write({k: tables[k] for k in (f"neural_{name}", f"neural_{name}_controls")}, out,
                     common.command_line("neural_comparisons", argv), f"92-image RSA of {name} with its controls")
        rdm = rdms[name] = model_rdms(recording)
        for target in targets:
            t = str(target.name)
            state, time = best[name, t] = peak(ds["score"].sel(target=t))
            if "untrained" in controls:
                result = compare_models(rdm, controls["untrained"], target, n_boot=args.bootstrap, seed=args.seed)
                vs_untrained.append(_rows(result, model=name, control="untrained", target=t))
            cell = rdm.sel(state=state, time=time)
            if "feedforward" in controls:  # the twin's own best cell (over its seeds' mean), against ours
                twin = controls["feedforward"]
                twin_scores = tables[f"neural_{name}_controls"].query("control == 'feedforward_untrained' and "
                                                                     "target == @t")
                top = twin_scores.loc[twin_scores["score"].idxmax()]
                result = compare_models(cell, twin.sel(state=top.state, time=int(top.time)), target,
                                        n_boot=args.bootstrap, seed=args.seed)
                vs_controls.append(_rows(result, model=name, best_state=state, best_time=time,
                                         control=f"feedforward_untrained {top.state}@t={int(top.time)}", target=t))
            for kind in ("pixel", "category"):
                for control in controls.get(kind, {"control": []})["control"].values:
                    result = compare_models(cell, controls[kind].sel(control=control), target,
                                            n_boot=args.bootstrap, seed=args.seed)
                    vs_controls.append(_rows(result, model=name, best_state=state, best_time=time,
                                             control=str(control), target=t))
        z, _ = score_table(recording, targets, zscore=True, n_boot=0, contrast=None)
        first = str(ds["state"].values[0])
        for t in map(str, ds["target"].values):
            for label, table in (("no", ds), ("yes", z)):
                s, tm = peak(table["score"].sel(target=t))
                firsts = table["score"].sel(target=t, state=first)
                zscored.append({"model": name, "target": t, "zscore": label, "best_state": s, "best_time": tm,
                                "best_score": float(table["score"].sel(target=t, state=s, time=tm)),
                                "first_state": first, "first_state_min_score": float(firsts.min()),
                                "first_state_max_score": float(firsts.max())})
    pairs = []
    for a, b in combinations(args.models, 2):
        for target in targets:
            t = str(target.name)
            result = compare_models(rdms[a].sel(state=best[a, t][0], time=best[a, t][1]),
                                    rdms[b].sel(state=best[b, t][0], time=best[b, t][1]), target,
                                    n_boot=args.bootstrap, seed=args.seed)
            pairs.append(_rows(result, model_a=a, cell_a=f"{best[a, t][0]}@t={best[a, t][1]}", model_b=b,
                               cell_b=f"{best[b, t][0]}@t={best[b, t][1]}", target=t))
    for key, parts in (("neural_vs_untrained", vs_untrained), ("neural_vs_controls", vs_controls),
                       ("neural_model_pairs", pairs)):
        if parts:  # one model has no pairs
            tables[key] = pd.concat(parts, ignore_index=True)
    tables["neural_zscore"] = pd.DataFrame(zscored)
    tables = {k: v for k, v in tables.items() if not k.startswith(tuple(f"neural_{m}" for m in args.models))}
    written = common.write(tables, out, common.command_line("neural_comparisons", argv),
                           "92-image RSA of the shipped models with controls and paired comparisons (compare_models)")
    print("-> " + ", ".join(map(str, written)))


if __name__ == "__main__":
    raise SystemExit(main())
