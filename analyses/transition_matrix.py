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
from analyses import common
from visrecur.errors import report_errors
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
    # a transition run at t takes its source at t - 1 to its target at t: the target's step
    bounds = [mapping.latency(t, tr.target) for tr, t in uses]
    low, high = [b[0] for b in bounds], [b[1] for b in bounds]
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

    p = common.parser(__doc__, "transition_matrix")
    p.add_argument("--model", "--models", dest="models", nargs="+", metavar="NAME_OR_PATH",
                   help=f"shipped model names, checkpoint paths or zoo names (default: {' '.join(list_pretrained())})")
    p.add_argument("--readout-time", type=int, help="draw up to this readout time (default: each model's)")
    common.add_time_mapping_options(p)
    common.add_output(p)
    args = p.parse_args(argv)
    names = args.models or list_pretrained()
    common.check_applies(names, "transition_matrix")
    specs = {name: model_spec(name) for name in names}
    mapping = common.time_mapping(args, p)
    tables = [transition_schedule(spec, args.readout_time, mapping, name) for name, spec in specs.items()]
    out = common.output_folder(args.out_dir)
    common.write({"transition_matrix": pd.concat([pair[0] for pair in tables], ignore_index=True),
                  "transition_matrix_states": pd.concat([pair[1] for pair in tables], ignore_index=True)},
                 out, common.command_line("transition_matrix", argv),
                 {"transition_matrix.csv": "every (transition, step) that runs, per model",
                  "transition_matrix_states.csv": "each state's position, size and arrival time, per model"},
                 {"time_mapping": mapping.to_dict()})
    print(f"{len(tables)} models -> {out}/transition_matrix.csv, transition_matrix_states.csv")


if __name__ == "__main__":
    sys.exit(main())
