"""environment.yml (conda) and pyproject.toml (pip) name the same packages with the same bounds; the
Brain-Score extra is a separate environment (its pins hold numpy below 2), which environment.yml names."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_is_in_step_with_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for name, extra in project["optional-dependencies"].items()
                                        if name != "brainscore" for d in extra]
    listed = {re.split(r"[<>=]", line.strip(" -"))[0]: line.strip(" -")
              for line in (REPO / "environment.yml").read_text().splitlines()
              if line.strip().startswith("- ") and not line.strip().startswith("- -e")}
    for requirement in wanted:
        name = re.split(r"[<>=]", requirement)[0]
        assert listed.get(name) == requirement, f"environment.yml: {listed.get(name)!r}, pyproject: {requirement!r}"
    assert 'pip install -e ".[brainscore]"' in (REPO / "environment.yml").read_text()
