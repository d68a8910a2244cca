"""What every command shares: the argument parser (defaults in --help, one-line errors) and the options
that mean the same everywhere (the time mapping)."""
from __future__ import annotations

import argparse
import sys

from visrecur.timing import TimeMapping


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every default (None, False and [] mean "not set" and are described in the help
    itself) and keeps the epilog's line breaks."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if (default is None or default is argparse.SUPPRESS or isinstance(default, bool) or default == []
                or "default" in text or not action.option_strings):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: ...`` (naming ``--help``) and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


# --- the time mapping, one set of options for every command -----------------------------------------
def add_time_mapping(parser: argparse.ArgumentParser, stated_by: str = "") -> None:
    """--ms-per-step LOW [HIGH], --onset-ms MS, --state-onset STATE=MS ..., --state-ms-per-step
    STATE=MS[,HIGH] ...; unset unless given, so that a recording's or model's own mapping applies
    (``given_time_mapping``, ``TimeMapping.resolve``)."""
    source = f"; default: the {stated_by}'s own, else 20 50" if stated_by else "; default 20 50"
    parser.add_argument("--ms-per-step", nargs="+", type=float, metavar="MS",
                        help=f"duration of one model step in ms: one value, or LOW HIGH (a range){source}")
    parser.add_argument("--onset-ms", type=float, metavar="MS", help="when step 0 happens after stimulus onset "
                        "(default 0)")
    parser.add_argument("--state-onset", nargs="+", metavar="STATE=MS",
                        help="shift of a state's step times in ms, e.g. V4=20 IT=40 (default none)")
    parser.add_argument("--state-ms-per-step", nargs="+", metavar="STATE=MS",
                        help="a state's own step duration, one value or LOW,HIGH, e.g. V4=50 IT=20,50 "
                             "(default: --ms-per-step for every state)")


def given_time_mapping(args, parser: argparse.ArgumentParser | None = None) -> TimeMapping | None:
    """The mapping the options ask for, or None when none of them was given. Checked here, so that a bad
    value is one line before any work."""
    ms, onset, states, widths = (getattr(args, name, None)
                                 for name in ("ms_per_step", "onset_ms", "state_onset", "state_ms_per_step"))
    if ms is None and onset is None and not states and not widths:
        return None
    if ms is not None and len(ms) > 2:
        _fail(parser, f"--ms-per-step {' '.join(f'{v:g}' for v in ms)}: give one duration or LOW HIGH")
    state_onset = {name: values[0] for name, values in _state_values(parser, "--state-onset", states, "V4=20", 1)}
    state_ms = dict(_state_values(parser, "--state-ms-per-step", widths, "V4=50 or V4=20,50", 2))
    return TimeMapping(tuple(ms) if ms is not None else TimeMapping().ms_per_step,
                       0.0 if onset is None else onset, state_onset, state_ms)


def _state_values(parser, option: str, items, example: str, most: int):
    """[(state, [values])] from STATE=V[,V] items, or one line naming the bad one."""
    out = []
    for item in items or ():
        name, sep, text = item.partition("=")
        try:
            values = [float(v) for v in text.split(",")] if sep and name else []
        except ValueError:
            values = []
        if not 1 <= len(values) <= most:
            _fail(parser, f"{option} {item!r} must be STATE=MS, e.g. {example}")
        out.append((name, values))
    return out


def _fail(parser, message):
    from visrecur.errors import InputError

    if parser is not None:
        parser.error(message)
    raise InputError(message)
