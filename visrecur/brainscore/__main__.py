"""Write a Brain-Score plugin folder for a visrecur model, check one offline, or score models on the
offline benchmarks.

    python -m visrecur.brainscore plugin --model NAME_OR_CHECKPOINT --out DIR [--git-url URL] [--git-commit HASH]
    python -m visrecur.brainscore check DIR
    python -m visrecur.brainscore score [--model NAME ...] [--benchmark ID|all] [--output CSV]
"""
from __future__ import annotations

import sys

from visrecur.cli import ArgumentParser, add_time_mapping, given_time_mapping
from visrecur.errors import InputError, report_errors
from .environment import DEFAULT_VISUAL_DEGREES

EPILOG = """examples:
  python -m visrecur.brainscore plugin --model frnn_4state_cifar10 --out plugins/visrecur_frnn_4state_cifar10 \\
      --git-url https://github.com/YOU/visrecur --state-onset V1=50 V2=70 V4=90 IT=100
  python -m visrecur.brainscore check plugins/visrecur_frnn_4state_cifar10
  python -m visrecur.brainscore score --model frnn_4state_cifar10 frnn_4state_adjacent_cifar10 --benchmark all \\
      --output docs/results/brainscore_offline.csv"""


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


def commitment_options(q) -> None:
    """What a model commits to under Brain-Score, the same for plugin and score."""
    add_time_mapping(q, "model")
    q.add_argument("--time-preset", choices=["cornet-s"],
                   help="a time mapping to compare with: cornet-s is Brain-Score's CORnet-S table (V1 from 50 ms in "
                        "100 ms steps, V2 from 70 ms, V4 from 90 ms in 50 ms steps, IT from 100 ms), read from the "
                        "installed brainscore-vision (instead of the time mapping options)")
    q.add_argument("--region", action="append", metavar="REGION=STATE",
                   help="map a Brain-Score region to a state (repeat; default V1, V2, V4, IT to the states of the "
                        "same names)")
    q.add_argument("--past-trained", choices=["answer", "refuse"], default="answer",
                   help="time bins past the last trained step: answer them (flagged past_trained per bin, with a "
                        "warning) or refuse them")
    q.add_argument("--image-fit", choices=["stretch", "crop"], default="stretch",
                   help="a non-square image: resized whole (Brain-Score's default preprocessing) or centre-cropped "
                        "(visrecur's own)")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m visrecur.brainscore", description=__doc__.splitlines()[0], epilog=EPILOG)
    commands = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    plugin = commands.add_parser("plugin", help="write a Brain-Score model plugin folder", epilog=EPILOG)
    plugin.add_argument("--model", required=True, help="a shipped pretrained name, a checkpoint .pt or a reference "
                        "architecture (cornet_z, cornet_rt, cornet_s, blnet, resnet18_time; untrained, seed 0)")
    plugin.add_argument("--out", required=True, help="the plugin folder (its name: a Python identifier)")
    plugin.add_argument("--identifier", help="the model's Brain-Score identifier (default: visrecur-NAME)")
    plugin.add_argument("--git-url", help="git repository requirements.txt installs visrecur from (default: "
                                          "$VISRECUR_GIT_URL, this checkout's origin, or the package's Repository URL)")
    plugin.add_argument("--git-commit", help="the commit requirements.txt pins (default: the commit --git-tag names "
                                             "in this checkout, else this checkout's HEAD); it must be pushed")
    plugin.add_argument("--git-tag", help="a tag naming that commit, written beside it (a tag can move)")
    plugin.add_argument("--visual-degrees", type=float, default=DEFAULT_VISUAL_DEGREES)
    plugin.add_argument("--readout-time", type=int, help="readout time of the label task (default: the model's own)")
    plugin.add_argument("--behavior-state", help="the state probabilities, fitted labels and odd-one-out read "
                                                 "(default: the last state)")
    plugin.add_argument("--behavior-step", type=int, help="its step (default: readout time - 1, which the readout "
                                                          "reads)")
    plugin.add_argument("--overwrite", action="store_true", help="replace an existing plugin folder")
    commitment_options(plugin)

    check = commands.add_parser("check", help="run Brain-Score's generic model-plugin tests on a plugin folder, "
                                              "offline", epilog=EPILOG)
    check.add_argument("folder", help="the plugin folder")

    score = commands.add_parser("score", help="score models on the offline benchmarks", epilog=EPILOG)
    score.add_argument("--model", nargs="+", default=[None], help="shipped pretrained names or checkpoints "
                                                                  "(default: the default pretrained model)")
    score.add_argument("--benchmark", nargs="+", default=["all"], help="benchmark identifiers, or all")
    score.add_argument("--output", help="also write the scores as a result table (a .csv, e.g. "
                                        "docs/results/brainscore_offline.csv)")
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--no-progress", action="store_true")
    commitment_options(score)
    return p


def commitment(args) -> dict:
    """The VisrecurBrainModel options the command line asks for (time mapping checked: one line)."""
    mapping = given_time_mapping(args)
    if args.time_preset and mapping is not None:
        raise InputError("give --time-preset or the time mapping options (--ms-per-step, --onset-ms, --state-onset, "
                         "--state-ms-per-step), not both")
    return {"time_mapping": mapping, "time_preset": args.time_preset, "region_states": parse_regions(args.region),
            "past_trained": args.past_trained, "image_fit": args.image_fit}


@report_errors
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        from .check import check_command

        return check_command(args.folder)
    options = commitment(args)
    if args.command == "plugin":
        from .plugin import write_plugin

        out = write_plugin(args.model, args.out, git_url=args.git_url, git_tag=args.git_tag, git_commit=args.git_commit,
                           identifier=args.identifier, visual_degrees=args.visual_degrees,
                           readout_time=args.readout_time, behavior_state=args.behavior_state,
                           behavior_step=args.behavior_step, overwrite=args.overwrite, **options)
        pin = (out / "requirements.txt").read_text().strip().splitlines()[-1]
        print(f"wrote the Brain-Score plugin {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))}); {pin}; "
              f"check it with python -m visrecur.brainscore check {out}")
        return 0
    from .scoring import score_command

    return score_command(args, options, " ".join(["python -m visrecur.brainscore", *(argv or sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
