"""The Brain-Score scores docs/brainscore.md shows are the ones the score command wrote into
docs/results/ (read with visrecur.artifacts.results), not typed by hand. Runs in either environment."""
from __future__ import annotations

import re
from pathlib import Path

from visrecur.artifacts.results import read_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
MODELS = ("frnn_4state_cifar10", "frnn_4state_adjacent_cifar10")
# column -> (result table, benchmark, with the raw score in brackets)
COLUMNS = {
    "EVC at 2.9 deg": ("brainscore_offline.csv", "visrecur.Cichy2014fmri.EVC-2.9deg-rdm", True),
    "EVC filling the field": ("brainscore_offline.csv", "visrecur.Cichy2014fmri.EVC-rdm", True),
    "IT at 2.9 deg": ("brainscore_offline.csv", "visrecur.Cichy2014fmri.IT-2.9deg-rdm", True),
    "IT filling the field": ("brainscore_offline.csv", "visrecur.Cichy2014fmri.IT-rdm", True),
    "planted latency, step 0 at 0 ms": ("brainscore_offline.csv", "visrecur.PlantedLatency70ms.IT-rdm", False),
    "at 70 ms": ("brainscore_planted_onset70.csv", "visrecur.PlantedLatency70ms.IT-rdm", False),
    "IT at 2.9 deg, CORnet-S preset": ("brainscore_offline_cornet_s.csv", "visrecur.Cichy2014fmri.IT-2.9deg-rdm", True),
}


def render() -> str:
    """The scores table as docs/brainscore.md shows it, from the result tables."""
    tables = {name: read_table(RESULTS / name) for name in {file for file, _, _ in COLUMNS.values()}}
    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for model in MODELS:
        cells = []
        for file, benchmark, with_raw in COLUMNS.values():
            table = tables[file]
            row = table[(table["model"] == f"visrecur-{model}") & (table["benchmark"] == benchmark)].iloc[0]
            cells.append(f"{row['score']:.3f}" + (f" ({row['raw']:.3f})" if with_raw else ""))
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_docs_scores_are_the_result_tables():
    page = (REPO / "docs" / "brainscore.md").read_text()
    block = re.search(r"<!-- brainscore-scores:.*?-->\n(.*?)\n<!-- end brainscore-scores -->", page, re.S)
    assert block, "docs/brainscore.md lost its generated scores block"
    assert block.group(1) == render(), "regenerate with the score commands on docs/brainscore.md, then paste render()"
    for name in ("brainscore_offline.csv", "brainscore_offline_cornet_s.csv", "brainscore_planted_onset70.csv"):
        command = read_table(RESULTS / name).attrs["command"]
        assert command.startswith("python -m visrecur.brainscore score") and command in page.replace(" \\\n    ", " ")
