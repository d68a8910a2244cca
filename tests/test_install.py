"""An installed (non-editable) wheel works on its own: package data, the default model, analyses."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import json, sys
from pathlib import Path
import visrecur, analyses.readout_time
from visrecur.download import MANIFEST, load_manifest
site = Path(sys.argv[1]).resolve()
assert site in Path(visrecur.__file__).resolve().parents, visrecur.__file__
assert site in Path(analyses.readout_time.__file__).resolve().parents
assert MANIFEST.is_file() and "92images" in load_manifest()
model = visrecur.load()
print(json.dumps({"model": model.spec.name, "crop": list(model.preprocess.crop_size)}))
"""


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    source = tmp_path / "src"  # build from a copy: nothing is written into the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "visrecur", "analyses"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                             if (REPO / name).is_dir() else {}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = dict(capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], **run)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("visrecur-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   **run)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, **run).stdout.strip())
    # the dependencies (torch, xarray, ...) from this environment, after the venv's own packages
    (site / "zz_dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], **run)
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = subprocess.run([str(python), "-c", CHECK, str(site)], **run)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert json.loads(checked.stdout.splitlines()[-1]) == {"model": "frnn_4state_shared", "crop": [32, 32]}
    helped = subprocess.run([str(python), "-m", "visrecur.download", "--help"], **run)
    assert helped.returncode == 0 and "92images" in helped.stdout
