"""Plain-text summary of a ModelSpec: what a researcher checks before training or recording."""
from __future__ import annotations

from typing import Sequence

from visrecur.timing import latency_ms


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_summary(spec, readout_times: Sequence[int] | None = None) -> str:
    graph = spec.graph
    readout_times = list(range(graph.earliest_readout, spec.time_steps + 1) if readout_times is None
                         else readout_times)
    parts = [
        f"{spec.name}: {len(graph.states)} states, {len(graph.transitions)} transitions, "
        f"{graph.execution} execution, {graph.aggregation} aggregation, weights {graph.weight_sharing}"
        + (f" (+{len(graph.tie_groups)} tie groups)" if graph.tie_groups else ""),
        f"pre-net {spec.prenet}, input {spec.in_channels}x{spec.input_size[0]}x{spec.input_size[1]}, "
        f"{spec.num_classes} classes, readout time {spec.readout_time} (built for t <= {spec.time_steps}), "
        f"TSBN {'on' if spec.time_specific_bn else 'off'}, BN affine {'on' if spec.bn_affine else 'off'}",
        "",
        _table(["state", "channels", "size", "arrival t", "+I"],
               [(s.name, s.channels, f"{s.size[0]}x{s.size[1]}", graph.arrival_time(s.name),
                 "yes" if s.identity else "no") for s in graph.states]),
        "",
        _table(["transition", "kind", "block", "widths", "params"],
               [(tr.key, graph.kind(tr), graph.block_name(tr),
                 "-".join(str(layer.in_channels) for layer in graph.convolutions(tr))
                 + f"-{graph.state(tr.target).channels}",
                 f"{graph.block_parameters(tr, spec.bn_affine):,}")
                for tr in graph.transitions]),
        "",
    ]
    until = max(readout_times) - 1
    if until >= 1:
        matrix = graph.transition_matrix(until)
        rows = []
        for tr in graph.transitions:
            i, j = graph.state_index(tr.source), graph.state_index(tr.target)
            rows.append([tr.key] + ["x" if matrix[i, j, t] else "." for t in range(1, until + 1)])
        parts += ["transition matrix (x: runs at step t)",
                  _table(["transition"] + [f"t{t}" for t in range(1, until + 1)], rows), ""]
    parts.append(_table(
        ["readout t", "latency ms", "depth", "effective params", "MACs"],
        [(t, "{:.0f}-{:.0f}".format(*latency_ms(t)), spec.depth(t), f"{spec.effective_parameters(t):,}",
          f"{spec.macs(t):,}") for t in readout_times]))
    parts.append(f"total parameters held: {spec.total_parameters():,}")
    return "\n".join(parts)
