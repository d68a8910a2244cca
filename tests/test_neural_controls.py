"""Controls (pixel, category, untrained and feedforward twins) checked against hand computations, and the
neural_alignment command's refusals and notes about contrasts and controls."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from analyses.neural_alignment import main
from visrecur import Preprocess
from visrecur.artifacts.io import data_root
from visrecur.neural import IDS_92, synthetic, upper_triangle
from visrecur.neural import controls as C
from visrecur.recording.stimuli import from_array

needs_data = pytest.mark.skipif(not (data_root() / "92images").is_dir(), reason="92-image data not available")


@needs_data
@pytest.mark.slow
def test_category_rdms_of_the_92_images_follow_the_published_groups():
    rdm = C.category_rdms(IDS_92)
    between = {str(c): int(upper_triangle(rdm.sel(control=c).values).sum()) for c in rdm.control.values}
    # 48 animate x 44 inanimate; 24 faces x 68 others; 24 bodies x 68 others; animate 48, natural 23,
    # artificial 21: 48*23 + 48*21 + 23*21 between-group pairs
    assert between == {"category_animacy": 48 * 44, "category_faces": 24 * 68, "category_bodies": 24 * 68,
                       "category_natural_artificial": 48 * 23 + 48 * 21 + 23 * 21}
    faces = rdm.sel(control="category_faces")
    assert float(faces.sel(stimulus="92img_13", stimulus_b="92img_37")) == 0  # human face, animal face
    assert float(faces.sel(stimulus="92img_13", stimulus_b="92img_01")) == 1  # human face, human body
    nat = rdm.sel(control="category_natural_artificial")
    assert float(nat.sel(stimulus="92img_71", stimulus_b="92img_72")) == 1  # last natural, first artificial


def test_category_rdm_from_a_category_column_and_none_without_labels():
    meta = pd.DataFrame({"stimulus_id": ["a", "b", "c"], "category": ["x", "x", "y"]})
    rdm = C.category_rdms(["a", "b", "c"], meta)
    np.testing.assert_array_equal(rdm.sel(control="category_labels").values, [[0, 0, 1], [0, 0, 1], [1, 1, 0]])
    assert C.category_rdms(["a", "b", "c"], meta.assign(category="x")) is None


def test_pixel_rdms_equal_hand_computed_correlation_distances():
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    pre = Preprocess((8, 8), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    rdm = C.pixel_rdms(from_array(images, ids=list("abcde")), pre)
    raw = images.reshape(5, -1).astype(float)
    normed = ((images / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(rdm.sel(control="pixel_raw").values, 1 - np.corrcoef(raw), atol=1e-9)
    np.testing.assert_allclose(rdm.sel(control="pixel_input").values, 1 - np.corrcoef(normed.reshape(5, -1)),
                               atol=1e-6)


def test_untrained_twins_are_seeded_without_touching_the_global_generator():
    from visrecur.architecture import zoo

    spec = zoo.spec("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).to_dict()
    before = torch.random.get_rng_state()
    a, b, c = C.untrained_model(spec, 0), C.untrained_model(spec, 0), C.untrained_model(spec, 1)
    assert torch.equal(before, torch.random.get_rng_state())
    first = next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert not torch.equal(a.state_dict()[first], c.state_dict()[first])
    twin = C.twin_spec(json.dumps(spec), feedforward=True)
    assert twin["graph"]["weight_sharing"] == "unshared" and twin["name"] == "frnn_2state_unshared"
    assert C.twin_spec(spec)["graph"]["weight_sharing"] == "shared"
    with pytest.raises(C.ControlError, match="states no architecture"):
        C.twin_spec("", name="mine")
    with pytest.raises(C.ControlError, match="has no feedforward twin"):
        C.twin_spec(C.twin_spec(spec, feedforward=True), feedforward=True, name="ff")


@pytest.mark.slow
def test_untrained_rdms_cover_the_models_first_and_last_steps():
    from visrecur.architecture import zoo

    spec = zoo.spec("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).to_dict()
    images = np.random.default_rng(1).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    stimuli = from_array(images, ids=[f"s{k}" for k in range(6)])
    pre = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)
    rdm = C.untrained_rdms(spec, stimuli, pre, seeds=(0, 1))
    assert rdm.dims == ("seed", "state", "time", "stimulus", "stimulus_b")
    assert list(rdm.time.values) == [0, 1, 2]  # the first and the last step the spec runs
    assert rdm.attrs["weight_sharing"] == "shared"
    from visrecur.artifacts.models import ModelSource
    from visrecur.neural import model_rdms
    from visrecur.recording import record
    again = model_rdms(record(ModelSource(C.untrained_model(spec, 1), "x", preprocess=pre), stimuli, progress=False))
    np.testing.assert_allclose(rdm.sel(seed=1).values, again.values, equal_nan=True)


# --- the command ----------------------------------------------------------------------------------------
IDS = [f"92img_{k:02d}" for k in range(1, 13)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    ds = synthetic.recording(n_stimuli=12, states=(("V1", 4, 3), ("IT", 5, 1)), times=(0, 1, 2), arrival=(0, 1),
                             seed=1, ids=IDS)
    ds.attrs["model"] = "planted"
    ds.to_netcdf(folder / "rec.nc", engine="h5netcdf")
    rdm = __import__("visrecur.neural", fromlist=["model_rdms"]).model_rdms(ds)
    for name, (state, t) in {"early": ("V1", 1), "late": ("IT", 2)}.items():
        subjects = synthetic.subject_rdms(rdm.sel(state=state, time=t).values, 3, 0.05, 0, IDS)
        np.savez(folder / f"{name}.npz", rdms=subjects.values, stimulus_ids=np.array(IDS))
    return folder


def _run(inputs, tmp_path, *extra):
    out = tmp_path / "out"
    try:
        rc = main(["--recording", str(inputs / "rec.nc"), "--targets", str(inputs / "early.npz"),
                   str(inputs / "late.npz"), "--bootstrap", "5", "--out-dir", str(out), *extra])
    except SystemExit as stop:  # argument errors leave through the parser
        rc = stop.code
    return rc, out


@pytest.mark.parametrize("extra, message", [
    (["--contrast", "early", "nothere"], "--contrast early nothere: target 'nothere' is not scored; scored: early, late"),
    (["--contrast", "early", "late", "--bootstrap", "0"], "needs bootstrap intervals; give --bootstrap N"),
    (["--contrast", "late", "late"], "a target contrasted with itself says nothing"),
    (["--bootstrap", "-5"], "--bootstrap -5 must be 0 (no intervals) or more"),
    (["--controls", "untrained"], "model 'planted' states no architecture"),
    (["--controls", "pixel"], "the recording does not name its stimulus set"),
    (["--controls", "auto", "pixel"], "auto and none stand alone"),
    (["--control-seeds", "0"], "--control-seeds 0 must be at least 1"),
])
def test_bad_contrast_bootstrap_and_controls_are_one_line_and_write_nothing(inputs, tmp_path, capsys, extra,
                                                                             message):
    rc, out = _run(inputs, tmp_path, *extra)
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("error: ") and message in captured.err and captured.err.count("\n") == 1
    assert not out.exists() or not list(out.iterdir())


def test_file_targets_contrast_by_stem_and_notes_say_why_nothing_else_is_written(inputs, tmp_path, capsys):
    rc, out = _run(inputs, tmp_path)
    text = capsys.readouterr().out
    assert rc in (0, None)
    assert "no contrast written: the default contrast (cichy2014_fmri_EVC vs cichy2014_fmri_IT) needs both " \
           "targets; give --contrast A B with two of: early, late" in text
    assert "no untrained control: model 'planted' states no architecture" in text
    assert not (out / "neural_alignment_contrast.csv").exists() and not (out / "neural_alignment_controls.csv").exists()
    rc, out = _run(inputs, tmp_path, "--contrast", "early", "late")
    assert (out / "neural_alignment_contrast.csv").exists()


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: spearman)", "(default: correlation)", "(default: 0.95)", "(default: 0)",
                    "(default: auto)", "(default: 5)", "(default: cichy2014)", "(default: 1000)",
                    "named by its file stem", "by its path under DIR"):
        assert default in text, default


@pytest.mark.slow  # records a model
def test_an_untrained_model_has_no_untrained_twin(tmp_path, capsys):
    from visrecur.recording.stimuli import resolve

    ids = resolve("builtin").ids
    rng = np.random.default_rng(0)
    rdms = rng.random((3, len(ids), len(ids)))
    rdms = rdms + rdms.transpose(0, 2, 1)
    rdms[:, np.arange(len(ids)), np.arange(len(ids))] = 0
    np.savez(tmp_path / "mine.npz", rdms=rdms, stimulus_ids=np.array(ids))
    out = tmp_path / "out"
    rc = main(["--model", "frnn_2state_shared", "--stimuli", "builtin", "--targets", str(tmp_path / "mine.npz"),
               "--controls", "untrained", "--bootstrap", "0", "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "error: model 'frnn_2state_shared' is untrained itself, so it has no untrained twin" in err
    assert not out.exists()


def test_controls_sit_beside_every_model_score():
    from analyses.neural_alignment import beside

    table = pd.DataFrame({"target": ["a", "a", "b", "b"], "state": ["V1", "V1", "V1", "V1"], "time": [0, 1, 0, 1],
                          "score": [0.1, 0.2, 0.3, 0.4]})
    controls = pd.DataFrame({
        "control": ["pixel_input", "pixel_input", "untrained", "untrained", "untrained", "untrained"],
        "target": ["a", "b", "a", "a", "b", "b"], "state": [None, None, "V1", "V1", "V1", "V1"],
        "time": pd.array([None, None, 0, 1, 0, 1], dtype="Int64"), "score": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        "score_sd": [None, None, 0.01, 0.02, 0.03, 0.04]})
    out = beside(table, controls)
    assert len(out) == 4
    assert out.pixel_input_score.tolist() == [0.5, 0.5, 0.6, 0.6]
    assert out.untrained_score_mean.tolist() == [0.7, 0.8, 0.9, 1.0]
    assert out.untrained_score_sd.tolist() == [0.01, 0.02, 0.03, 0.04]
