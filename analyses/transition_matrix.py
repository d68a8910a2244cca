"""A model's transition matrix over time, as tables to draw: which transition runs at which step, and when
each state first holds data (the paper's Fig. 2C, unrolled in time).

    python -m analyses.transition_matrix [--model NAME_OR_PATH ...] [--readout-time T] [--ms-per-step 20 50]
        [--out-dir results]

Writes ``transition_matrix.csv`` (one row per model, transition and step 1..T-1 at which it runs: it
takes its source at t - 1 to its target at t) and ``transition_matrix_states.csv`` (one row per model and
state: its position, size and arrival time; T is the readout time, whose post-net reads the last state
at T - 1). Models: shipped pretrained names (their spec is read from the checkpoint), checkpoint paths or
zoo names; default every shipped model. Nothing is run: the schedule is the spec's
(``Graph.runs``, ``Graph.arrival_time``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from visrecur.architecture import zoo
from visrecur.errors import ArgumentParser, report_errors
from visrecur.timing import TimeMapping


def model_spec(name: str):
    """The spec of a shipped model or checkpoint (read from the file), or of a zoo model by name."""
    from visrecur.artifacts.checkpoint import PRETRAINED, load

    if name in PRETRAINED or name.endswith(".pt") or Path(name).is_file():
        return load(name).spec
    return zoo.spec(name)


def transition_schedule(spec, readout_time: int | None = None, mapping: TimeMapping | None = None,
                        model: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transitions, states) tables of ``spec`` for a readout at ``readout_time`` (default the spec's)."""
    mapping = mapping or TimeMapping()
    graph = spec.graph
    readout_time = spec.readout_time if readout_time is None else readout_time
    spec.check_readout_time(readout_time)
    name = model or spec.name
    uses = graph.uses(readout_time - 1)
    low, high = mapping.latency([t for _, t in uses])
    transitions = pd.DataFrame([
        {"model": name, "transition": tr.key, "source": tr.source, "target": tr.target, "kind": graph.kind(tr),
         "step": t, "source_index": graph.state_index(tr.source), "target_index": graph.state_index(tr.target),
         "latency_min_ms": lo, "latency_max_ms": hi} for (tr, t), lo, hi in zip(uses, low, high)],
        columns=["model", "transition", "source", "target", "kind", "step", "source_index", "target_index",
                 "latency_min_ms", "latency_max_ms"])
    states = pd.DataFrame([
        {"model": name, "state": s.name, "state_index": k, "arrival_time": graph.arrival_time(s.name),
         "channels": s.channels, "height": s.size[0], "width": s.size[1], "readout_time": readout_time,
         "earliest_readout": graph.earliest_readout, "execution": graph.execution}
        for k, s in enumerate(graph.states)])
    return transitions, states


@report_errors
def main(argv=None):
    from visrecur.artifacts.checkpoint import list_pretrained

    p = ArgumentParser(prog="python -m analyses.transition_matrix", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", "--models", dest="models", nargs="+", metavar="NAME_OR_PATH", help="shipped model names, checkpoint paths or zoo names "
                                               f"(default: {' '.join(list_pretrained())})")
    p.add_argument("--readout-time", type=int, help="draw up to this readout time (default: each model's)")
    p.add_argument("--ms-per-step", type=float, nargs="+", default=[20.0, 50.0], help="one duration or LOW HIGH")
    p.add_argument("--out-dir", default="results")
    args = p.parse_args(argv)
    mapping = TimeMapping(tuple(args.ms_per_step))
    tables = [transition_schedule(model_spec(name), args.readout_time, mapping, name)
              for name in args.models or list_pretrained()]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for k, filename in enumerate(("transition_matrix.csv", "transition_matrix_states.csv")):
        table = pd.concat([pair[k] for pair in tables], ignore_index=True)
        tmp = out / (filename + ".tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(out / filename)
    print(f"{len(tables)} models -> {out}/transition_matrix.csv, transition_matrix_states.csv")


if __name__ == "__main__":
    sys.exit(main())
