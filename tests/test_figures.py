"""Every figure notebook runs on results written by the analyses and saves its PNGs."""
import json
from pathlib import Path

import matplotlib
import pytest
import torch

from analyses.readout_time import readout_time_errors
from analyses.tsbn_decay import tsbn_statistics
from visrecur import zoo
from visrecur.data import TensorBatches

FIGURES = Path(__file__).resolve().parents[1] / "figures"


@pytest.fixture
def results(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8)
    model.train()
    model(torch.randn(8, 3, 8, 8))
    model.eval()
    batches = TensorBatches(torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (12,)),
                            6, (0.5,) * 3, (0.25,) * 3, train=False)
    readout_time_errors(model, batches, [2, 3, 4]).to_csv(tmp_path / "readout_time.csv", index=False)
    tsbn_statistics(model).to_csv(tmp_path / "tsbn_decay.csv", index=False)
    return tmp_path


# notebooks with results of their own are run by their own tests (test_neural_figures.py,
# test_decay_figures.py)
OWN_TESTS = {
    "neural_alignment.ipynb",
    "parameters.ipynb",
    "readout_time.ipynb",
    "transition_matrix.ipynb",
    "tsbn_decay.ipynb",
}


@pytest.mark.parametrize("notebook", sorted(p for p in FIGURES.glob("*.ipynb") if p.name not in OWN_TESTS),
                         ids=lambda p: p.name)
def test_notebook_runs(notebook, results, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("VISRECUR_RESULTS", str(results))
    monkeypatch.setenv("VISRECUR_FIGURES", str(results / "out"))
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    namespace = {}
    for cell in cells:
        exec(compile("".join(cell["source"]), f"{notebook.name}", "exec"), namespace)
    pngs = list((results / "out").glob("*.png"))
    assert len(pngs) >= 2 and all(p.stat().st_size > 5000 for p in pngs)
