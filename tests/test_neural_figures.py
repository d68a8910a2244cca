"""The neural alignment notebook runs on small synthetic results and saves its figures."""
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from analyses.neural_alignment import score_table
from visrecur.errors import InputError
from visrecur.neural import model_rdms
from visrecur.neural import synthetic
from visrecur.neural.meg import meg_scores, peak_latencies

NOTEBOOK = Path(__file__).resolve().parents[1] / "figures" / "neural_alignment.ipynb"


@pytest.mark.slow  # runs a notebook
def test_neural_alignment_notebook_runs(tmp_path, monkeypatch):
    ds = synthetic.recording(n_stimuli=10, states=(("V1", 3, 2), ("IT", 4, 1)), times=(0, 1, 2), arrival=(0, 1))
    rdm = model_rdms(ds)
    ids = list(rdm.stimulus.values)
    targets = [synthetic.subject_rdms(rdm.sel(state="V1", time=1).values, 3, 0.1, 0, ids, "early"),
               synthetic.subject_rdms(rdm.sel(state="IT", time=2).values, 3, 0.1, 1, ids, "late")]
    scores, contrast = score_table(ds, targets, n_boot=10, contrast=("early", "late"))
    scores.to_netcdf(tmp_path / "neural_alignment.nc", engine="h5netcdf")
    import pandas as pd
    pd.DataFrame([contrast]).to_csv(tmp_path / "neural_alignment_contrast.csv", index=False)
    from visrecur.neural import controls as control_rdms
    planted_controls = {"untrained": rdm.expand_dims(seed=[0, 1]) + np.array([0.0, 0.1])[:, None, None, None, None],
                        "pixel": rdm.isel(time=2).rename(state="control").assign_coords(control=["a", "b"])}
    control_rdms.score(planted_controls, targets, n_boot=5).to_csv(tmp_path / "neural_alignment_controls.csv",
                                                                   index=False)
    meg = synthetic.planted_meg(rdm.sel(state="V1").values, np.arange(0.0, 150.0), 20, 35, n_subjects=2)
    from visrecur.neural.rdm import as_rdm
    meg = as_rdm(meg, ids, {"subject": ["a", "b"], "session": ["1", "2"], "time_ms": np.arange(0.0, 150.0)}, "meg")
    s = meg_scores(rdm, meg)
    import xarray as xr
    xr.merge([s.to_dataset(), peak_latencies(s)]).to_netcdf(tmp_path / "neural_alignment_meg.nc", engine="h5netcdf")

    matplotlib.use("Agg")
    monkeypatch.setenv("VISRECUR_RESULTS", str(tmp_path))
    monkeypatch.setenv("VISRECUR_FIGURES", str(tmp_path / "out"))
    namespace = {}
    for cell in [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]:
        exec(compile("".join(cell["source"]), NOTEBOOK.name, "exec"), namespace)
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["neural_alignment_controls.png", "neural_alignment_heatmaps.png", "neural_alignment_meg.png",
                    "neural_alignment_peaks.png", "neural_alignment_timecourses.png"]
    assert all((tmp_path / "out" / p).stat().st_size > 5000 for p in pngs)


def test_neural_alignment_notebook_names_the_command_when_results_are_missing(tmp_path, monkeypatch):
    import pytest

    matplotlib.use("Agg")
    monkeypatch.setenv("VISRECUR_RESULTS", str(tmp_path))
    monkeypatch.setenv("VISRECUR_FIGURES", str(tmp_path / "out"))
    first = next(c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code")
    with pytest.raises(InputError, match="python -m analyses.neural_alignment"):
        exec(compile("".join(first["source"]), NOTEBOOK.name, "exec"), {})
