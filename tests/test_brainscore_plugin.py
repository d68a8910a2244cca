"""The generated Brain-Score plugin passes Brain-Score's own generic model-plugin tests
(brainscore_vision/model_helpers/generic_plugin_tests.py of the installed 2.4.2), offline.

Brain-Score finds a model plugin only inside its package (``brainscore_vision/models/<folder>``), as a
submission places it. The test builds a stand-in of the installed package in a temporary folder (every
entry a link to the installed one, except ``models/``, which holds only the generated plugin, and
``model_helpers/``, which gets the test images the 2.4.2 wheel lacks, generated here), so the installed
environment is never written to.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

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


def stand_in_package(root: Path) -> Path:
    """root/brainscore_vision: links to the installed package, an empty models/ and model_helpers/ with
    generated test images (rgb1.jpg, rgb2.jpg, rgb3.png)."""
    import brainscore_vision

    installed = Path(brainscore_vision.__file__).parent
    package = root / "brainscore_vision"
    package.mkdir(parents=True)
    for entry in installed.iterdir():
        if entry.name not in ("models", "model_helpers", "__pycache__"):
            (package / entry.name).symlink_to(entry)
    (package / "models").mkdir()
    (package / "models" / "__init__.py").symlink_to(installed / "models" / "__init__.py")
    helpers = package / "model_helpers"
    helpers.mkdir()
    for entry in (installed / "model_helpers").iterdir():
        if entry.name not in ("__pycache__", "generic_plugin_tests_resources"):
            (helpers / entry.name).symlink_to(entry)
    resources = helpers / "generic_plugin_tests_resources"
    resources.mkdir()
    rng = np.random.default_rng(0)
    for name in ("rgb1.jpg", "rgb2.jpg", "rgb3.png"):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(resources / name)
    return package


def test_plugin_files(brainscore, checkpoint, tmp_path):
    """The folder Brain-Score expects: registration on one line, visrecur pinned to a git tag, the weights
    copied, metadata valid under Brain-Score's own schema validator, the time mapping written out."""
    from brainscore_core.metadata.contract import load

    from visrecur.brainscore.plugin import write_plugin
    from visrecur.timing import TimeMapping

    out = write_plugin(str(checkpoint), tmp_path / "visrecur_tiny", git_url="https://example.org/visrecur.git",
                       time_mapping=TimeMapping((30, 30), onset_ms=40))
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "metadata.yaml", "model.py", "requirements.txt",
                                                     "test.py", "weights.pt"]
    assert "model_registry['visrecur-tiny_frnn'] = lambda: get_model('visrecur-tiny_frnn')" in \
        (out / "__init__.py").read_text()
    assert (out / "requirements.txt").read_text() == "visrecur @ git+https://example.org/visrecur.git@v0.2.0\n"
    model_py = (out / "model.py").read_text()
    assert "TimeMapping(ms_per_step=(30.0, 30.0), onset_ms=40.0" in model_py
    assert "step t covers [40 + 30 t, 40 + 30 (t + 1)) ms" in model_py
    metadata = load((out / "metadata.yaml").read_text(), "vision")["models"]["visrecur-tiny_frnn"]
    assert metadata["model"]["recurrent"] is True and metadata["model"]["visual_degrees"] == 8
    assert metadata["model"]["input_resolution"] == {"channels": 3, "height": 8, "width": 8}
    # the shipped model's plugin names it, with no weights copied
    shipped = write_plugin("frnn_4state_cifar10", tmp_path / "visrecur_default", git_url="https://example.org/v")
    assert "MODEL = 'frnn_4state_cifar10'" in (shipped / "model.py").read_text()
    assert not (shipped / "weights.pt").exists()


@pytest.mark.slow
def test_brainscores_generic_plugin_tests_pass(brainscore, checkpoint, tmp_path):
    from visrecur.brainscore.plugin import write_plugin

    package = stand_in_package(tmp_path / "site")
    plugin = write_plugin(str(checkpoint), package / "models" / "visrecur_tiny", git_url="https://example.org/v.git")
    generic = package / "model_helpers" / "generic_plugin_tests.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)]),
           "BS_INSTALL_DEPENDENCIES": "no", "BRAINIO_HOME": str(tmp_path / "brainio"),
           "RESULTCACHING_HOME": str(tmp_path / "resultcaching"), "BRAINSCORE_HOME": str(tmp_path / "bs"),
           "MT_HOME": str(tmp_path / "mt"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                          "--rootdir", str(tmp_path / "site"), str(generic), str(plugin / "test.py"),
                          "--plugin_directory", str(plugin)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-3000:]
    # Brain-Score's five generic tests (parametrised by the plugin's identifier) and the plugin's two
    assert "7 passed" in report, report[-3000:]
