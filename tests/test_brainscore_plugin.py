"""The generated Brain-Score plugin: its files (visrecur pinned to a commit, the time mapping and the
adapter's options written out, metadata valid under Brain-Score's own validator), and Brain-Score's own
generic model-plugin tests (brainscore_vision/model_helpers/generic_plugin_tests.py of the installed
2.4.2) passing on it offline through ``python -m visrecur.brainscore check`` (visrecur.brainscore.check
builds a stand-in of the installed package with the test images its wheel lacks).
"""
from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small trained-format checkpoint (random weights) of the adjacent 4-state FRNN on 8x8 input."""
    from test_brainscore_model import tiny
    from visrecur.artifacts.checkpoint import FORMAT

    model = tiny()
    path = tmp_path_factory.mktemp("checkpoint") / "tiny_frnn.pt"
    torch.save({"format": FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict(),
                "preprocess": model.preprocess.to_dict(), "classes": [f"class{k}" for k in range(10)]}, path)
    return path


def test_plugin_files(brainscore, checkpoint, tmp_path):
    """The folder Brain-Score expects: registration on one line, visrecur pinned to a commit (the tag in a
    comment), the weights copied, the time mapping (per-state onsets and steps) and the adapter's options
    written out, metadata valid under Brain-Score's own schema validator, naming the mapping."""
    from brainscore_core.metadata.contract import load

    from visrecur.brainscore.plugin import write_plugin
    from visrecur.timing import TimeMapping

    mapping = TimeMapping((30, 30), onset_ms=40, state_onset_ms={"IT": 60}, state_ms_per_step={"V4": (50, 50)})
    out = write_plugin(str(checkpoint), tmp_path / "visrecur_tiny", git_url="https://example.org/visrecur.git",
                       git_commit=COMMIT, git_tag="v0.2.0", time_mapping=mapping, past_trained="refuse")
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "metadata.yaml", "model.py", "requirements.txt",
                                                     "test.py", "weights.pt"]
    assert "model_registry['visrecur-tiny_frnn'] = lambda: get_model('visrecur-tiny_frnn')" in \
        (out / "__init__.py").read_text()
    assert (out / "requirements.txt").read_text().splitlines() == [
        "# visrecur 0.2.0, tag v0.2.0 (the commit below: a tag can move, a commit cannot)",
        f"visrecur @ git+https://example.org/visrecur.git@{COMMIT}"]
    model_py = (out / "model.py").read_text()
    assert ("TimeMapping(ms_per_step=(30.0, 30.0), onset_ms=40.0, state_onset_ms={'IT': 60.0}, "
            "state_ms_per_step={'V4': (50.0, 50.0)})") in model_py
    assert "step t covers [40 + 30 t, 40 + 30 (t + 1)) ms" in model_py and "IT's step t [100 + 30 t" in model_py
    assert "'past_trained': 'refuse'" in model_py and "'image_fit': 'stretch'" in model_py
    assert "'behavior_state': 'IT', 'behavior_step': 3" in model_py
    metadata = load((out / "metadata.yaml").read_text(), "vision")["models"]["visrecur-tiny_frnn"]
    assert metadata["model"]["recurrent"] is True and metadata["model"]["visual_degrees"] == 8
    assert metadata["model"]["input_resolution"] == {"channels": 3, "height": 8, "width": 8}
    assert '"state_onset_ms": {"IT": 60.0}' in metadata["io"]["interface"]
    assert metadata["provenance"]["source_url"] == f"https://example.org/visrecur/tree/{COMMIT}"
    # the shipped model's plugin names it, with no weights copied
    shipped = write_plugin("frnn_4state_cifar10", tmp_path / "visrecur_default", git_url="https://example.org/v",
                           git_commit=COMMIT)
    assert "MODEL = 'frnn_4state_cifar10'" in (shipped / "model.py").read_text()
    assert not (shipped / "weights.pt").exists()


def test_the_default_commit_is_this_checkouts_head(brainscore, tmp_path):
    """Without --git-commit: the commit --git-tag names, else HEAD of the checkout visrecur runs from."""
    from visrecur.brainscore.plugin import write_plugin

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("visrecur does not run from a git checkout here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uncommitted changes while developing: said in a warning
        out = write_plugin("frnn_4state_cifar10", tmp_path / "visrecur_head", git_url="https://example.org/v")
    assert (out / "requirements.txt").read_text() == f"visrecur @ git+https://example.org/v@{head.stdout.strip()}\n"


@pytest.mark.slow
def test_brainscores_generic_plugin_tests_pass(brainscore, checkpoint, tmp_path, capsys):
    """``python -m visrecur.brainscore check DIR`` on a generated plugin: Brain-Score's five generic tests
    (parametrised by the plugin's identifier) and the plugin's two pass; the folder is left as it was."""
    from visrecur.brainscore.__main__ import main
    from visrecur.brainscore.check import check_plugin
    from visrecur.brainscore.plugin import write_plugin

    plugin = write_plugin(str(checkpoint), tmp_path / "visrecur_tiny", git_url="https://example.org/v.git",
                          git_commit=COMMIT)
    before = sorted(p.name for p in plugin.rglob("*"))
    code, report = check_plugin(plugin)
    assert code == 0, report[-3000:]
    assert "7 passed" in report, report[-3000:]
    assert main(["check", str(plugin)]) == 0
    out = capsys.readouterr().out
    assert "passed: Brain-Score's generic model-plugin tests and visrecur_tiny/test.py" in out
    assert f"pins visrecur at https://example.org/v.git@{COMMIT}: NOT in this checkout" in out
    assert sorted(p.name for p in plugin.rglob("*")) == before
