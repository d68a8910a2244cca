"""Every command's --help shows its defaults and every argument error is one line: each command builds
its parser from ``visrecur.cli.ArgumentParser`` (the shared defaults-in-help formatter)."""
from __future__ import annotations

import argparse
import importlib

import pytest

from visrecur import cli

COMMANDS = ["visrecur.record", "visrecur.train", "visrecur.evaluate", "visrecur.download",
            "visrecur.brainscore.__main__", "analyses.latency", "analyses.masking", "analyses.neural_alignment",
            "analyses.parameters", "analyses.readout_time", "analyses.readout_generalization",
            "analyses.transition_matrix", "analyses.tsbn_decay", "figures.__main__"]
SUBCOMMANDS = {"visrecur.brainscore.__main__": [["plugin"], ["check"], ["score"]]}


def _parsers(module, monkeypatch):
    """The parsers ``module.main`` builds (the top one and any sub-command's), caught at parse time."""
    seen = []

    def catch(self, args=None, namespace=None):
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(cli.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        importlib.import_module(module).main([])
    parsers = list(seen)
    for parser in seen:  # sub-command parsers hang off the subparsers action
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return parsers


@pytest.mark.parametrize("module", COMMANDS)
def test_help_names_every_default(module, monkeypatch):
    parsers = _parsers(module, monkeypatch)
    assert parsers, f"{module} does not build a visrecur.cli.ArgumentParser"
    for parser in parsers:
        assert isinstance(parser, cli.ArgumentParser) and parser.formatter_class is cli.HelpFormatter
        formatter = parser._get_formatter()
        for action in parser._actions:
            if (not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action.default, bool)
                    or action.default in (None, [], argparse.SUPPRESS)):
                continue
            shown = formatter._expand_help(action) if action.help else ""
            text = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
            assert "default" in (text + shown), f"{parser.prog} {action.option_strings[0]}: no default in {text!r}"


@pytest.mark.parametrize("module", COMMANDS)
def test_argument_errors_are_one_line(module, capsys):
    for argv in [["--no-such-option"]] + [[*sub, "--no-such-option"] for sub in SUBCOMMANDS.get(module, [])]:
        with pytest.raises(SystemExit) as exit_:
            importlib.import_module(module).main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
        assert "--help" in err


def test_record_help_names_every_shipped_model(capsys):
    from visrecur.artifacts.checkpoint import list_pretrained
    from visrecur.record import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert len(list_pretrained()) == 4
    for name in list_pretrained():
        assert name in text.replace("- ", "-")
