"""Every figure notebook is run by a test; python -m figures runs every analysis, then every notebook."""
from pathlib import Path

import pytest

FIGURES = Path(__file__).resolve().parents[1] / "figures"


# notebooks with results of their own are run by their own tests (test_neural_figures.py,
# test_decay_figures.py, test_latency.py, test_masking.py, test_readout_generalization.py)
OWN_TESTS = {  # every notebook: a new one without a test of its own fails test_every_notebook_is_run_by_a_test
    "neural_alignment.ipynb",
    "parameters.ipynb",
    "readout_time.ipynb",
    "transition_matrix.ipynb",
    "tsbn_decay.ipynb",
    "latency.ipynb",
    "masking.ipynb",
    "readout_generalization.ipynb",
}


def test_every_notebook_is_run_by_a_test():
    """Each notebook in figures/ is executed headless by its own test file, which names it."""
    notebooks = {p.name for p in FIGURES.glob("*.ipynb")}
    assert notebooks == set(OWN_TESTS), f"notebooks without a test: {sorted(notebooks - set(OWN_TESTS))}"
    tests = Path(__file__).resolve().parent
    text = "".join(p.read_text() for p in tests.glob("test_*.py") if p.name != Path(__file__).name)
    untested = [name for name in OWN_TESTS if name not in text and name.removesuffix(".ipynb") not in text]
    assert not untested, f"no test file mentions {untested}"


def test_python_m_figures_runs_every_analysis_then_every_notebook(monkeypatch):
    import figures.__main__ as command

    calls = []
    monkeypatch.setattr(command, "run_analysis", lambda name, argv: calls.append((name, argv)))
    monkeypatch.setattr(command, "run_notebooks", lambda: calls.append("notebooks"))
    monkeypatch.chdir(command.ROOT)
    assert command.main(["--limit", "200", "--calibration", "50"]) == 0
    assert [c[0] for c in calls[:-1]] == list(command.ANALYSES) and calls[-1] == "notebooks"
    assert ("readout_generalization", ["--limit", "200", "--recalibrate", "50", "--recalibrate-steps", "past", "every",
                                       "after-first-state", "--augment-calibration"]) in calls
    calls.clear()
    assert command.main(["--plots-only"]) == 0 and calls == ["notebooks"]


@pytest.mark.parametrize("argv, message", [(["--limit", "0"], "--limit 0 must be at least 1"),
                                           (["--only", "nonsense"], "invalid choice")])
def test_python_m_figures_refuses(argv, message, monkeypatch, capsys):
    import figures.__main__ as command

    monkeypatch.chdir(command.ROOT)
    with pytest.raises(SystemExit) as stop:
        command.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_python_m_figures_needs_the_repository_root(tmp_path, monkeypatch, capsys):
    import figures.__main__ as command

    monkeypatch.setattr(command, "run_notebooks", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert command.main(["--plots-only"]) == 2 and "from the repository root" in capsys.readouterr().err
