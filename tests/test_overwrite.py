"""--overwrite replaces only what visrecur made (a recording, its partial, a result table, a checkpoint, a
plugin folder); anything else at the path is refused in one line and left as it was, by every command."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_record import random_stimuli, small_source

from visrecur import InputError
from visrecur.artifacts import results
from visrecur.artifacts.io import check_replaceable
from visrecur.artifacts.recordings import SCHEMA, open_recording
from visrecur.artifacts.stores import made_by_visrecur
from visrecur.recording import record


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def foreign_netcdf(path: Path) -> None:
    xr.Dataset({"x": ("t", np.arange(3.0))}, attrs={"title": "someone else's data"}).to_netcdf(
        path, engine="h5netcdf")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_other_files_at_the_output_is_never_replaced(tmp_path, suffix, overwrite):
    out = tmp_path / f"rec{suffix}"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=f"'{out}' is a folder that is not a recording made by visrecur; it is "
                                         "never replaced, not even with --overwrite"):
        record(small_source(), random_stimuli(2), out, progress=False, overwrite=overwrite)
    assert snapshot(tmp_path) == before


def test_a_foreign_netcdf_is_never_replaced(tmp_path):
    out = tmp_path / "rec.nc"
    foreign_netcdf(out)
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="is a file that is not a recording made by visrecur"):
        record(small_source(), random_stimuli(2), out, progress=False, overwrite=True)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_recording_is_replaced_only_when_asked(tmp_path, suffix):
    source, out = small_source(), tmp_path / f"rec{suffix}"
    record(source, random_stimuli(2), out, progress=False)
    assert made_by_visrecur(out)
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        record(source, random_stimuli(3), out, progress=False)
    record(source, random_stimuli(3), out, progress=False, overwrite=True)
    with open_recording(out) as ds:
        assert ds.sizes["stimulus"] == 3 and ds.attrs["schema"] == SCHEMA
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_partials_are_recognised_even_cut_short_and_foreign_ones_refused(tmp_path):
    source, out = small_source(), tmp_path / "rec.nc"
    partial = tmp_path / "rec.nc.partial.nc"
    with pytest.raises(KeyboardInterrupt):
        record(source, random_stimuli(6), out, batch_size=2, progress=False, stop_after_batches=1)
    data = partial.read_bytes()
    partial.write_bytes(data[: len(data) // 2])  # as a hard kill may leave it
    assert made_by_visrecur(partial)
    record(source, random_stimuli(6), out, batch_size=2, progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nc"]

    out2 = tmp_path / "other.nc"
    (tmp_path / "other.nc.partial.zarr").write_text("not a zarr store")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="other.nc.partial.zarr' is a file that is not a partial recording"):
        record(source, random_stimuli(2), out2, progress=False, overwrite=True)
    assert snapshot(tmp_path) == before


def test_the_rule_in_one_place(tmp_path):
    asked = []
    mine = tmp_path / "mine.dat"
    mine.write_text("x")
    check_replaceable(tmp_path / "absent", lambda p: 1 / 0, "thing", False)  # nothing there: not asked
    check_replaceable(mine, lambda p: asked.append(p) or True, "thing", True)
    assert asked == [mine]
    with pytest.raises(InputError, match="'.*mine.dat' already exists; pass --overwrite to replace it or choose "
                                         "another --out$"):
        check_replaceable(mine, lambda p: True, "thing", False, "--out")
    with pytest.raises(InputError, match="is a file that is not a thing made by visrecur"):
        check_replaceable(mine, lambda p: 1 / 0, "thing", True)  # an unreadable answer is "not ours"


def test_result_tables_replace_only_their_own(tmp_path):
    table = pd.DataFrame({"time": [0, 1], "score": [0.5, 0.6]})
    path = results.write_table(table, tmp_path / "t.csv", command="python -m analyses.x")
    results.write_table(table.assign(score=[0.7, 0.8]), path, command="python -m analyses.x")
    assert results.read_table(path)["score"].tolist() == [0.7, 0.8]
    theirs = tmp_path / "theirs.csv"
    theirs.write_text("a,b\n1,2\n")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="theirs.csv' is a file that is not a result table made by visrecur"):
        results.write_tables({tmp_path / "new.csv": table, theirs: table}, command="x")
    assert snapshot(tmp_path) == before  # not even the other table of the set was written


def test_analysis_output_folder_with_a_foreign_table(tmp_path):
    from analyses import common

    (tmp_path / "latency.csv").write_text("my own table\n")
    with pytest.raises(InputError, match="give|choose another --out-dir"):
        common.write({"latency": pd.DataFrame({"a": [1]})}, tmp_path, "python -m analyses.latency")
    assert (tmp_path / "latency.csv").read_text() == "my own table\n"


def test_result_datasets_replace_only_their_own(tmp_path):
    ds = xr.Dataset({"score": ("time", [0.1, 0.2])})
    path = results.write_dataset(ds, tmp_path / "scores.nc")
    results.write_dataset(ds * 2, path)
    assert results.read_dataset(path)["score"].values.tolist() == [0.2, 0.4]
    foreign_netcdf(tmp_path / "theirs.nc")
    with pytest.raises(InputError, match="not a netCDF result made by visrecur"):
        results.write_dataset(ds, tmp_path / "theirs.nc")


def test_training_replaces_only_its_checkpoint_and_metrics(tmp_path):
    from visrecur.training.config import TrainConfig
    from visrecur.training.loop import train

    out = tmp_path / "run"
    out.mkdir()
    data = tmp_path / "data"  # a data root that passes the early check, wherever the suite runs
    (data / "train").mkdir(parents=True)
    (out / "checkpoint.pt").write_text("my notes, not a checkpoint")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="checkpoint.pt' is a file that is not a checkpoint made by visrecur"):
        train(TrainConfig(model="frnn_2state_shared", out=str(out), overwrite=True, epochs=1, data_root=str(data)))
    assert snapshot(tmp_path) == before
    (out / "checkpoint.pt").unlink()
    (out / "metrics.csv").write_text("subject,rt\n1,300\n")
    with pytest.raises(InputError, match="metrics.csv' is a file that is not a training metrics table"):
        train(TrainConfig(model="frnn_2state_shared", out=str(out), epochs=1, data_root=str(data)))
    assert (out / "metrics.csv").read_text() == "subject,rt\n1,300\n"


def test_evaluate_json_replaces_only_a_measurement(tmp_path, capsys):
    from visrecur.evaluate import main

    theirs = tmp_path / "notes.json"
    theirs.write_text(json.dumps({"mine": 1}))
    assert main(["--json", str(theirs), "--limit", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file that is not a measurement" in err[0]
    assert json.loads(theirs.read_text()) == {"mine": 1}


def test_plugin_folder_with_other_files_is_never_replaced(tmp_path):
    from visrecur.brainscore.plugin import check_destination, is_plugin_folder

    out = tmp_path / "plugin"
    out.mkdir()
    for name in ("__init__.py", "model.py", "test.py", "metadata.yaml"):
        (out / name).write_text("")
    (out / "requirements.txt").write_text("visrecur @ git+https://x.org/v@0123456789abcdef\n")
    assert is_plugin_folder(out)
    check_destination(out, overwrite=True)
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        check_destination(out, overwrite=False)
    (out / "my_analysis.ipynb").write_text("{}")
    with pytest.raises(InputError, match="not a Brain-Score plugin folder made by visrecur"):
        check_destination(out, overwrite=True)
