"""The readout-time, TSBN-decay, parameters and transition-matrix notebooks on tiny results: what they draw
follows from the tables, and a missing table is one line naming the command that writes it."""
import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch

from analyses.parameters import parameter_table
from analyses.readout_time import readout_time_errors
from analyses.transition_matrix import transition_schedule
from analyses.tsbn_decay import fit_statistics, summarise_fits, tsbn_statistics
from visrecur.architecture import zoo
from visrecur.errors import InputError

from visrecur.training.data import TensorBatches

FIGURES = Path(__file__).resolve().parents[1] / "figures"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=6, time_steps=8, input_size=8)
    model.train()
    for _ in range(2):
        model(torch.randn(8, 3, 8, 8) * 2 + 1)  # statistics of steps 1..5
    model.eval()
    batches = TensorBatches(torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (12,)),
                            6, (0.5,) * 3, (0.25,) * 3, train=False)
    readout_time_errors(model, batches, [2, 3, 6, 7]).to_csv(folder / "readout_time.csv", index=False)
    trained = tsbn_statistics(model).assign(model="tiny", estimated_by="training")
    model.recalibrate([torch.randn(8, 3, 8, 8) * 2 + 1], 8, steps=range(1, 9))
    again = tsbn_statistics(model).assign(model="tiny", estimated_by="recalibration on 8 training images")
    raw = pd.concat([trained, again], ignore_index=True)
    raw.to_csv(folder / "tsbn_decay.csv", index=False)
    fits = fit_statistics(raw)
    fits.to_csv(folder / "tsbn_decay_fits.csv", index=False)
    summarise_fits(fits).to_csv(folder / "tsbn_decay_summary.csv", index=False)
    pd.concat([parameter_table(f"frnn_2state_{s}", channels=(2, 4), input_size=8, until=6)
               for s in ("shared", "unshared")]).to_csv(folder / "parameters.csv", index=False)
    pairs = [transition_schedule(zoo.spec("frnn_4state_adjacent_shared"), model="adjacent"),
             transition_schedule(zoo.spec("frnn_2state_shared", readout_time=3), model="two")]
    for k, name in enumerate(("transition_matrix.csv", "transition_matrix_states.csv")):
        pd.concat([p[k] for p in pairs]).to_csv(folder / name, index=False)
    return folder


def run(notebook, results, figures, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("VISRECUR_RESULTS", str(results))
    monkeypatch.setenv("VISRECUR_FIGURES", str(figures))
    namespace = {}
    for cell in json.loads((FIGURES / notebook).read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), notebook, "exec"), namespace)
    return namespace


def pngs(folder):
    return {p.name for p in folder.glob("*.png") if p.stat().st_size > 5000}


@pytest.mark.slow  # runs a notebook
def test_readout_time(results, tmp_path, monkeypatch):
    ns = run("readout_time.ipynb", results, tmp_path, monkeypatch)
    assert pngs(tmp_path) == {"readout_time.png"}
    # the top axis says each readout time's latency range, as the analysis computed it: t = 2 is 40-100 ms
    top = [ax for ax in ns["fig"].axes if ax.get_xlabel().startswith("latency")][0]
    assert top.get_xticklabels()[0].get_text() == "40-\n100"


@pytest.mark.slow  # runs a notebook
def test_tsbn_decay(results, tmp_path, monkeypatch):
    ns = run("tsbn_decay.ipynb", results, tmp_path, monkeypatch)
    assert pngs(tmp_path) == {"tsbn_decay_tiny.png", "tsbn_decay_fits_tiny.png"}
    assert ns["source"]("tiny") == "recalibration on 8 training images"  # steps 1..7 against 1..5
    assert (ns["ms_low"], ns["ms_high"]) == (20, 50)


@pytest.mark.slow  # runs a notebook
def test_parameters(results, tmp_path, monkeypatch):
    ns = run("parameters.ipynb", results, tmp_path, monkeypatch)
    assert pngs(tmp_path) == {"parameters.png"}
    first = ns["fig"].axes[0]  # effective parameters: one line per model, points at t = 2..6
    assert len(first.lines) == 2 and all(len(line.get_xdata()) == 5 for line in first.lines)


@pytest.mark.slow  # runs a notebook
def test_transition_matrix(results, tmp_path, monkeypatch):
    ns = run("transition_matrix.ipynb", results, tmp_path, monkeypatch)
    assert pngs(tmp_path) == {"transition_matrix.png"}
    adjacent, two = ns["fig"].axes[:2]
    # adjacent 4-state, readout 5: V1..IT arrive at 0, 1, 2, 3, so 0 + 1 + 2 + 3 empty nodes at t = 0..4;
    # one arrow per transition use at steps 1..4 (self and adjacent only) plus the readout arrow
    empty = [line for line in adjacent.lines if line.get_markerfacecolor() == "white"]
    assert len(empty) == 6 and len([line for line in adjacent.lines]) == 4 * 5
    uses = zoo.spec("frnn_4state_adjacent_shared").graph.uses(4)
    assert len(adjacent.patches) == len(uses) + 1 == 25 + 1
    # 2-state, readout 3: h2 arrives at 1; steps 1 (h1->h1, h1->h2) and 2 (all four)
    assert len([line for line in two.lines if line.get_markerfacecolor() == "white"]) == 1
    assert len(two.patches) == 2 + 4 + 1


@pytest.mark.parametrize("notebook, missing, command", [
    ("readout_time.ipynb", "readout_time.csv", "python -m analyses.readout_time"),
    ("tsbn_decay.ipynb", "tsbn_decay_fits.csv", "python -m analyses.tsbn_decay"),
    ("parameters.ipynb", "parameters.csv", "python -m analyses.parameters"),
    ("transition_matrix.ipynb", "transition_matrix_states.csv", "python -m analyses.transition_matrix"),
])
def test_missing_results_name_the_command(notebook, missing, command, results, tmp_path, monkeypatch):
    partial = tmp_path / "results"
    partial.mkdir()
    for item in results.iterdir():
        if item.name != missing and item.is_file():
            (partial / item.name).symlink_to(item)
    with pytest.raises(InputError) as err:
        run(notebook, partial, tmp_path / "out", monkeypatch)
    message = str(err.value)
    assert missing in message and f"make it with {command}" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
