"""Time-specific batch-norm statistics over time (the paper's Fig. 5B): what TSBN learned per step.

    python -m analyses.tsbn_decay [--checkpoint PATH] [--out results/tsbn_decay.csv]

Writes one row per (transition, BN position, channel, step) with the running mean and variance, for the
steps at which that transition ran during training (steps whose statistics were estimated from data).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

import visrecur
from visrecur.errors import ArgumentParser, report_errors


def tsbn_statistics(model) -> pd.DataFrame:
    """Tidy table of every TSBN's running statistics at every step the transition runs."""
    graph, rows = model.spec.graph, []
    for tr in graph.transitions:
        if tr.key not in model.norms:
            continue
        for position, norm in enumerate(model.norms[tr.key]):
            for t in [t for t in norm.trained_steps() if graph.runs(tr, t)]:
                stats = norm.stats[t]
                for channel, (mean, var) in enumerate(zip(stats.running_mean.tolist(), stats.running_var.tolist())):
                    rows.append({"transition": tr.key, "kind": graph.kind(tr), "bn_position": position,
                                 "channel": channel, "time": t, "running_mean": mean, "running_var": var})
    return pd.DataFrame(rows)


@report_errors
def main(argv=None):
    p = ArgumentParser(prog="python -m analyses.tsbn_decay", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="default: the pretrained model shipped with visrecur")
    p.add_argument("--out", default="results/tsbn_decay.csv")
    args = p.parse_args(argv)
    table = tsbn_statistics(visrecur.load(args.checkpoint))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    print(f"{len(table)} rows -> {out}")


if __name__ == "__main__":
    sys.exit(main())
