"""Write a Brain-Score plugin folder for a visrecur model, or score a model on the offline benchmarks.

    python -m visrecur.brainscore plugin --model NAME_OR_CHECKPOINT --out DIR --git-url URL
    python -m visrecur.brainscore score [--model NAME_OR_CHECKPOINT] [--benchmark ID|all]
"""
from __future__ import annotations

import sys

from visrecur.cli import ArgumentParser

from visrecur.errors import InputError, report_errors
from visrecur.timing import DEFAULT_MS_PER_STEP, TimeMapping
from .environment import DEFAULT_VISUAL_DEGREES

EPILOG = """examples:
  python -m visrecur.brainscore plugin --model frnn_4state_cifar10 --out plugins/visrecur_frnn_4state_cifar10 \\
      --git-url https://github.com/YOU/visrecur
  python -m visrecur.brainscore score --model frnn_4state_cifar10 --benchmark all"""


def parse_regions(pairs) -> dict | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        region, sep, state = pair.partition("=")
        if not sep or not region or not state:
            raise InputError(f"--region {pair!r} must be REGION=STATE, e.g. --region IT=h3")
        out[region] = state
    return out


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m visrecur.brainscore", description=__doc__.splitlines()[0], epilog=EPILOG)
    commands = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    def mapping_options(q):
        q.add_argument("--ms-per-step", type=float, nargs=2, default=list(DEFAULT_MS_PER_STEP), metavar=("LOW", "HIGH"),
                       help="duration of one step; time bins use the midpoint (35 ms for 20-50)")
        q.add_argument("--onset-ms", type=float, default=0.0, help="when step 0 starts after stimulus onset")
        q.add_argument("--region", action="append", metavar="REGION=STATE",
                       help="map a Brain-Score region to a state (repeat; default V1, V2, V4, IT to the states "
                            "of the same names)")

    plugin = commands.add_parser("plugin", help="write a Brain-Score model plugin folder", epilog=EPILOG)
    plugin.add_argument("--model", required=True, help="a shipped pretrained name or a checkpoint .pt")
    plugin.add_argument("--out", required=True, help="the plugin folder (its name: a Python identifier)")
    plugin.add_argument("--identifier", help="the model's Brain-Score identifier (default: visrecur-NAME)")
    plugin.add_argument("--git-url", help="git repository requirements.txt installs visrecur from "
                                          "(default: $VISRECUR_GIT_URL or the package's Repository URL)")
    plugin.add_argument("--git-tag", help="tag or commit of that repository (default: v<visrecur version>)")
    plugin.add_argument("--visual-degrees", type=float, default=DEFAULT_VISUAL_DEGREES)
    plugin.add_argument("--readout-time", type=int, help="readout time of the label/probability tasks "
                                                         "(default: the model's own)")
    plugin.add_argument("--overwrite", action="store_true", help="replace an existing plugin folder")
    mapping_options(plugin)

    score = commands.add_parser("score", help="score a model on the offline benchmarks", epilog=EPILOG)
    score.add_argument("--model", default=None, help="a shipped pretrained name or a checkpoint (default: the "
                                                     "default pretrained model)")
    score.add_argument("--benchmark", default="all", help="a benchmark identifier, or all")
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--no-progress", action="store_true")
    mapping_options(score)
    return p


@report_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    mapping = TimeMapping(tuple(args.ms_per_step), onset_ms=args.onset_ms)
    regions = parse_regions(args.region)
    if args.command == "plugin":
        from .plugin import write_plugin

        out = write_plugin(args.model, args.out, git_url=args.git_url, git_tag=args.git_tag,
                           identifier=args.identifier, time_mapping=mapping, region_states=regions,
                           visual_degrees=args.visual_degrees, readout_time=args.readout_time,
                           overwrite=args.overwrite)
        print(f"wrote the Brain-Score plugin {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))}); "
              f"time bins: {mapping.describe()}, {mapping.step_ms:g} ms per bin step")
        return 0
    from .scoring import score_command

    return score_command(args, mapping, regions)


if __name__ == "__main__":
    sys.exit(main())
