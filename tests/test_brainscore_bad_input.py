"""The Brain-Score adapter's bad inputs, one clear line each. The first rows run everywhere (they need
no Brain-Score: its absence is one of them); the rest where brainscore-vision is installed."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from visrecur.timing import TimeMappingError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_brainscore_missing_names_the_extra(monkeypatch):
    from visrecur.brainscore import BrainScoreMissing, environment, require

    monkeypatch.setattr(environment, "available", lambda: False)
    with pytest.raises(BrainScoreMissing, match=r'brainscore-vision is not installed; install the Brain-Score '
                                                r'extra with pip install -e "\.\[brainscore\]"'):
        require()


def test_score_command_without_brainscore(monkeypatch, capsys, tmp_path):
    from visrecur.brainscore import environment
    from visrecur.brainscore.__main__ import main

    monkeypatch.setattr(environment, "available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert main(["score", "--model", "frnn_4state_cifar10", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: brainscore-vision is not installed; install the Brain-Score extra with pip install -e '
                   '".[brainscore]" (brainscore-vision 2.4.2, Python >= 3.11)']
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["--model", "frnn_4state_cifar10", "--out", "plugin"], "give --git-url URL: the git repository Brain-Score "
                                                             "installs visrecur from"),
    (["--model", "frnn_4state_cifar10", "--out", "my-plugin", "--git-url", "https://x.org/v"],
     "plugin folder name 'my-plugin' must be a Python identifier"),
    (["--model", "frnn_4state_shared", "--out", "plugin", "--git-url", "https://x.org/v"],
     "is neither a shipped pretrained model .* nor a checkpoint file; a plugin needs trained weights"),
    (["--model", "missing.pt", "--out", "plugin", "--git-url", "https://x.org/v"], "checkpoint 'missing.pt' does not exist"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--region", "IT"],
     "--region 'IT' must be REGION=STATE"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--region", "IT=h9"],
     "region 'IT' is mapped to state 'h9', which this model does not have"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--ms-per-step", "50", "20"],
     "give the smaller duration first"),
    (["--model", "frnn_4state_cifar10", "--out", "full", "--git-url", "https://x.org/v"],
     "'full' is a folder that is not a Brain-Score plugin folder made by visrecur; it is never replaced"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--state-onset", "V1=50",
      "V9=70"], "the time mapping gives a state onset for state 'V9', which this model does not have"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--state-ms-per-step",
      "IT=fast"], "--state-ms-per-step 'IT=fast' must be STATE=MS"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--git-commit", "v0.2.0"],
     "--git-commit 'v0.2.0' is not a commit hash"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--behavior-state", "h9"],
     "behavior state 'h9' is not a state of this model"),
    (["--model", "frnn_4state_cifar10", "--out", "plugin", "--git-url", "https://x.org/v", "--time-preset",
      "cornet-s", "--onset-ms", "20"], "give --time-preset or the time mapping options"),
])
def test_plugin_command_refuses(argv, message, monkeypatch, capsys, tmp_path):
    import re

    from visrecur.brainscore.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISRECUR_GIT_URL", raising=False)
    from visrecur.brainscore import plugin

    monkeypatch.setattr(plugin, "repository_url", lambda: None)  # no origin remote, no [project.urls] installed
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["plugin", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing half-written


@pytest.mark.slow
def test_importing_visrecur_brainscore_does_not_import_brainscore():
    code = "import sys, visrecur.brainscore as b; assert 'brainscore_vision' not in sys.modules; print(b.INSTALL_HINT)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'pip install -e ".[brainscore]"'


@pytest.fixture(scope="module")
def model(brainscore):
    from test_brainscore_model import tiny
    from visrecur.brainscore import VisrecurBrainModel
    from visrecur.timing import TimeMapping

    return VisrecurBrainModel(tiny(), time_mapping=TimeMapping((35, 35), onset_ms=20), progress=False)


@pytest.mark.parametrize("bins,message", [
    ([(100, 90)], r"time bin 0 \(100, 90\) must have start <= end \(start == end: the instant start\), in ms"),
    ([(20, 100), (150, np.nan)], r"time bin 1 \(150, nan\) must have start <= end"),
    ([(1, 2, 3)], r"time bins must be a list of \(start_ms, end_ms\) pairs"),
])
def test_bad_time_bins(model, bins, message):
    """A bin with start > end is refused in one line. Zero-length bins, bins before step 0 (zeros),
    overlapping and unordered bins are answered (test_brainscore_time.py)."""
    with pytest.raises(TimeMappingError, match=message):
        model.start_recording("V1", bins)


def test_onsets_for_states_the_model_lacks(brainscore):
    from test_brainscore_model import tiny
    from visrecur.brainscore import VisrecurBrainModel
    from visrecur.timing import TimeMapping

    with pytest.raises(TimeMappingError, match=r"gives a state step duration for state 'LGN', which this model does "
                                               r"not have \(its states: V1, V2, V4, IT\)"):
        VisrecurBrainModel(tiny(), time_mapping=TimeMapping(state_ms_per_step={"LGN": 10}), progress=False)


def test_unreadable_and_missing_stimuli(model, tmp_path):
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    from visrecur.errors import InputError

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.png").read_bytes()[:20])
    (tmp_path / "notes.txt").write_text("not an image")
    model.start_recording("V1", [(20, 55)])

    def stimulus_set(files):
        s = StimulusSet({"stimulus_id": [f"s{k}" for k in range(len(files))]})
        s.stimulus_paths = {f"s{k}": tmp_path / f for k, f in enumerate(files)}
        s.identifier = "bad"
        return s

    with pytest.raises(InputError, match=r"cannot read image .*cut\.png.*corrupt or truncated"):
        model.look_at(stimulus_set(["good.png", "cut.png"]))
    with pytest.raises(InputError, match=r"stimulus 's1': image file .*missing\.png' does not exist"):
        model.look_at(stimulus_set(["good.png", "missing.png"]))
    with pytest.raises(InputError, match=r"stimulus 's0': .*notes\.txt' is not an image file"):
        model.look_at(stimulus_set(["notes.txt"]))
    with pytest.raises(InputError, match=r"does not exist"):
        model.look_at([str(tmp_path / "nowhere.jpg")])
