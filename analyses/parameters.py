"""Effective parameters, depth and multiply-accumulates per readout time for every zoo model (Fig. 4's
"#Param", Table 1's depth).

    python -m analyses.parameters [--model NAME ...] [--until T] [--ms-per-step 20 50]
        [--out results/parameters.csv]

One row per (model, readout time), from the model's earliest readout time to ``--until`` (default: twice
its default readout time), counted from the spec alone (nothing is built or run) by
``visrecur.architecture.zoo_table.counts``, the function that writes docs/zoo.md. A model whose builder takes the
readout time (every model but ``resnet_3state_*`` and ``resnet_4state_imagenet_*``) is counted as built
for each readout time (``built_for_readout_time``), as in Fig. 4D/E where each point is a model trained
at that readout time: this matters for ``resnet_2state_*``, whose first state is unrolled N = T - 3
times, and for the parameters an unshared model holds. The other two are read out at each time as built
(a readout past their full schedule adds nothing). Effective parameters count only the transitions whose
output has reached the post-net by the readout time (the Fig. 4 caption: "some recurrent connections
have not been contributing to the output and thus their number of parameters are subtracted"); MACs count
every transition computed up to then, for one image at the model's reference input size.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pandas as pd

from visrecur.architecture import zoo
from analyses import common
from visrecur.errors import InputError, SpecError, report_errors
from visrecur.timing import TimeMapping
from visrecur.architecture.zoo_table import counts


def takes_readout_time(name: str) -> bool:
    """Whether the zoo builder of ``name`` sets its architecture from the readout time."""
    builder = zoo.MODELS[name]
    parameters = inspect.signature(builder).parameters
    return "readout_time" in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def first_readout_time(name: str, **overrides) -> int:
    """The earliest readout time of ``name``; for a model built for its readout time, the earliest of any
    model it builds (resnet_2state: T = 4, N = 1)."""
    default = zoo.spec(name, **overrides)
    if not takes_readout_time(name):
        return default.graph.earliest_readout
    for t in range(1, default.readout_time + 1):
        try:
            spec = zoo.spec(name, **{**overrides, "readout_time": t})
        except SpecError:
            continue
        if t >= spec.graph.earliest_readout:
            return t
    return default.graph.earliest_readout


def parameter_table(name: str, readout_times=None, until: int | None = None, mapping: TimeMapping | None = None,
                    **overrides) -> pd.DataFrame:
    """Counts of zoo model ``name`` (with ``overrides``, e.g. channels=...) at every readout time from its
    earliest to ``until`` (default twice its default readout time), or at ``readout_times``."""
    mapping = mapping or TimeMapping()
    default = zoo.spec(name, **overrides)
    earliest = first_readout_time(name, **overrides)
    if readout_times is None:
        last = 2 * default.readout_time if until is None else until
        if last < earliest:
            raise InputError(f"--until {last}: {name} is first read out at t = {earliest}; give --until {earliest} "
                             "or more")
        readout_times = range(earliest, last + 1)
    rows = []
    for t in readout_times:
        spec = zoo.spec(name, **{**overrides, "readout_time": t}) if takes_readout_time(name) else default
        rows.append({"model": name, "weight_sharing": spec.graph.weight_sharing,
                     "built_for_readout_time": spec.readout_time, **counts(spec, t, mapping),
                     "input_height": spec.input_size[0], "input_width": spec.input_size[1]})
    return pd.DataFrame(rows)


@report_errors
def main(argv=None):
    p = common.parser(__doc__, "parameters")
    p.add_argument("--model", "--models", dest="models", nargs="+", metavar="NAME",
                   help="zoo model names (default: every model, visrecur.list_models())")
    p.add_argument("--until", type=int, metavar="T", help="last readout time (default: twice each model's "
                                                          "default readout time)")
    common.add_time_mapping_options(p, "")
    common.add_output(p, "results/parameters.csv", file=True)
    args = p.parse_args(argv)
    mapping = common.time_mapping(args, p)
    names = args.models or zoo.list_models()
    common.check_applies(names, "parameters")
    for name in names:
        zoo.spec(name)  # an unknown name is refused before anything is counted
    table = pd.concat([parameter_table(name, until=args.until, mapping=mapping) for name in names],
                      ignore_index=True)
    out = Path(args.out)
    common.write({out.stem: table}, out.parent, common.command_line("parameters", argv),
                 "parameters held and effective, depth and MACs per zoo model and readout time",
                 {"time_mapping": mapping.to_dict()})
    print(f"{len(table)} rows ({len(names)} models) -> {out}")


if __name__ == "__main__":
    sys.exit(main())
