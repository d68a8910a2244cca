"""``python -m visrecur.brainscore check DIR``: Brain-Score's generic model-plugin tests
(``brainscore_vision/model_helpers/generic_plugin_tests.py`` of the installed brainscore-vision) and the
plugin's own ``test.py``, run on a plugin folder offline, before it is uploaded.

Brain-Score finds a model plugin only inside its package (``brainscore_vision/models/<folder>``), as a
submission places it. The check builds a stand-in of the installed package in a temporary folder (every
entry a link to the installed one, except ``models/``, which holds only a link to the plugin folder, and
``model_helpers/``, which gets the three test images the 2.4.2 wheel lacks, generated here: without them
``test_look_at_neural_V1`` fails and ``test_look_at_behavior_probabilities`` passes without looking), and
runs pytest there in a subprocess with Brain-Score's caches in the temporary folder and its plugin
installs off. The installed environment and the plugin folder are never written to.

What it does not prove: that ``requirements.txt`` installs (pip fetches visrecur from the pinned git
commit, which must be pushed; the check only says whether this checkout has that commit), that the model
scores on Brain-Score's benchmarks (their data live on S3), or that Brain-Score's servers accept it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from visrecur.errors import InputError
from .environment import CACHE_VARIABLES, require

TEST_IMAGES = ("rgb1.jpg", "rgb2.jpg", "rgb3.png")


def stand_in_package(root: Path, plugin: Path | None = None) -> Path:
    """root/brainscore_vision: links to the installed package, models/ with only ``plugin`` (a link), and
    model_helpers/ with generated test images (``TEST_IMAGES``: non-square noise)."""
    import numpy as np
    from PIL import Image

    brainscore_vision = require()
    installed = Path(brainscore_vision.__file__).parent
    package = root / "brainscore_vision"
    package.mkdir(parents=True)
    for entry in installed.iterdir():
        if entry.name not in ("models", "model_helpers", "__pycache__"):
            (package / entry.name).symlink_to(entry)
    (package / "models").mkdir()
    (package / "models" / "__init__.py").symlink_to(installed / "models" / "__init__.py")
    if plugin is not None:
        (package / "models" / plugin.name).symlink_to(plugin.resolve(), target_is_directory=True)
    helpers = package / "model_helpers"
    helpers.mkdir()
    for entry in (installed / "model_helpers").iterdir():
        if entry.name not in ("__pycache__", "generic_plugin_tests_resources"):
            (helpers / entry.name).symlink_to(entry)
    resources = helpers / "generic_plugin_tests_resources"
    resources.mkdir()
    rng = np.random.default_rng(0)
    for name in TEST_IMAGES:
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(resources / name)
    return package


def check_folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{str(folder)!r} is not a folder; give a plugin folder written by "
                         "python -m visrecur.brainscore plugin")
    missing = [name for name in ("__init__.py", "test.py") if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{str(folder)!r} has no {missing[0]}: it is not a Brain-Score model plugin folder")
    if not folder.resolve().name.isidentifier():
        raise InputError(f"plugin folder name {folder.resolve().name!r} must be a Python identifier (Brain-Score "
                         "imports it as brainscore_vision.models.<folder>)")
    return folder.resolve()


def pinned_commit(folder: Path) -> str:
    """What requirements.txt pins, and whether this visrecur checkout has that commit."""
    text = (folder / "requirements.txt").read_text() if (folder / "requirements.txt").is_file() else ""
    match = re.search(r"visrecur @ git\+(\S+)@([0-9a-f]{7,40})", text)
    if not match:
        return "requirements.txt pins no visrecur commit"
    url, commit = match.groups()
    repo = Path(__file__).resolve().parents[2]
    try:
        found = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
                               capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        found = False
    where = "present in this checkout" if found else "NOT in this checkout (pip will fail unless it is pushed there)"
    return f"requirements.txt pins visrecur at {url}@{commit}: {where}; whether {url} serves it is not checked offline"


def check_plugin(folder, timeout: float = 1800) -> tuple[int, str]:
    """(pytest's exit code, its report) for Brain-Score's generic plugin tests and the plugin's test.py."""
    folder = check_folder(folder)
    with tempfile.TemporaryDirectory(prefix="visrecur-check-") as tmp:
        tmp = Path(tmp)
        package = stand_in_package(tmp / "site", folder)
        plugin = package / "models" / folder.name
        visrecur_root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp / "site"), str(visrecur_root)]),
               "BS_INSTALL_DEPENDENCIES": "no", "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the plugin
               **{name: str(tmp / name.lower()) for name in CACHE_VARIABLES}}
        generic = package / "model_helpers" / "generic_plugin_tests.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "--rootdir",
                   str(tmp / "site"), str(generic), str(plugin / "test.py"), "--plugin_directory", str(plugin)]
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    return run.returncode, run.stdout + run.stderr


def check_command(folder) -> int:
    """Print pytest's summary (all of its report on failure), the pinned commit, and the verdict."""
    code, report = check_plugin(folder)
    lines = report.strip().splitlines()
    print("\n".join(lines if code else lines[-1:]))
    print(pinned_commit(Path(folder)))
    print(("passed" if code == 0 else "FAILED") + ": Brain-Score's generic model-plugin tests and "
          f"{Path(folder).name}/test.py (offline; installing from requirements.txt and scoring on Brain-Score's "
          "data are not checked)")
    return 0 if code == 0 else 1
