"""The generated docs pages (docs/build.py, `python -m docs`) are what their result files make: the checked-in
pages are current, and a changed result value changes the page (so no number is left typed in a template)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from docs import build
from docs.__main__ import main
from visrecur.artifacts.results import read_table

REPO = Path(__file__).resolve().parents[1]


def copy_inputs(tmp_path: Path) -> Path:
    """The result files the pages read, copied under a new root (no weights, no figures)."""
    for folder in ("docs/results", "benchmarks/results"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    for pattern in ("docs/*.csv", "visrecur/weights/*.json"):
        for path in REPO.glob(pattern):
            (tmp_path / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, tmp_path / path.relative_to(REPO))
    return tmp_path


def test_the_checked_in_pages_are_current():
    assert build.stale() == [], "regenerate with: python -m docs"


def test_check_exits_1_naming_a_stale_page(tmp_path, monkeypatch, capsys):
    root = copy_inputs(tmp_path)
    build.write(root)
    page = root / "docs" / "timing_results.md"
    page.write_text(page.read_text().replace("29.2%", "28.0%", 1))
    monkeypatch.setattr(build, "REPO", root)
    assert main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["docs/timing_results.md is out of date: regenerate with python -m docs"]


def test_a_changed_generalisation_error_changes_the_table_and_the_sentences(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / build.GENERALIZATION
    table = pd.read_csv(path)
    every_23 = (table["readout_time"] == 23) & table["tsbn_past_trained"].str.contains("every step")
    assert table.loc[every_23, "error"].item() == pytest.approx(0.3129)  # the value the page shows today
    before = build.render("timing_results.md", root)
    table.loc[every_23, "error"] = 0.4567
    table.to_csv(path, index=False)
    after = build.render("timing_results.md", root)
    assert "45.7%" in after and "45.7%" not in before
    # the table's `every` row and the two sentences that cite t = 23 under `every`
    assert after.count("45.7%") == 3 and before.count("31.3%") == after.count("31.3%") + 3


def test_a_changed_transcribed_value_changes_the_page_and_its_provenance_is_stated(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / build.TRANSCRIBED / "readout_time_frnn_4state_cifar10.csv"
    table = read_table(path)
    meta = json.loads(Path(str(path) + "-metadata.json").read_text())
    assert meta["provenance"]["regenerated"] is False and meta["command"].startswith("python -m analyses.readout_time")
    page = build.render("pretrained.md", root)
    assert "not regenerated since" in page and "`python -m analyses.readout_time --recalibrate 2560`" in page
    row = (table["readout_time"] == 6) & (table["tsbn_policy"] == "past")
    assert table.loc[row, "error_pct"].item() == 23.8
    table.loc[row, "error_pct"] = 99.9
    table.to_csv(path, index=False)
    assert "99.9%" in build.render("pretrained.md", root) and "99.9%" not in page


def test_the_pretrained_table_reads_each_models_own_measurement(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / "visrecur" / "weights" / "frnn_4state_shared_cifar10.json"
    own = json.loads(path.read_text())
    assert own["top1_error"]["5"] == 0.256
    row = lambda page: next(l for l in page.splitlines() if l.startswith("| `frnn_4state_cifar10` | 12"))
    assert "t=5: 25.6% (1,000 images)" in row(build.render("pretrained.md", root))
    own["top1_error"]["5"] = 0.301
    path.write_text(json.dumps(own))
    assert "t=5: 30.1% (1,000 images)" in row(build.render("pretrained.md", root))


def test_gpu_numbers_come_from_the_run_json(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / build.GPU_RUN
    run = json.loads(path.read_text())
    variants = run["sections"]["training"]["frnn_3state_shared t=10"]["variants"]
    assert variants["b64 device bf16 graphs"]["images_per_s"] == 2232.5
    variants["b64 device bf16 graphs"]["images_per_s"] = 3333.0
    path.write_text(json.dumps(run))
    page = build.render("benchmarks.md", root)
    assert re.search(r"CUDA graph \(`--cuda-graphs`\)\*\* \| 3,333 \|", page)


def test_no_measured_percentage_is_typed_in_a_template():
    """Percentages in the templates' prose are the paper's or targets, never a measurement: each allowed one
    is listed here with why."""
    allowed = {"90%", "95%"}  # chance on 10 classes; the confidence level of the intervals (a setting)
    for template in build.TEMPLATES.glob("*.md"):
        text = re.sub(r"\{\{.*?\}\}", "", template.read_text(), flags=re.DOTALL)
        found = set(re.findall(r"\d+(?:\.\d+)?%", text)) - allowed
        assert not found, f"{template.name} types {sorted(found)}: render them from a result file"


def test_the_readme_is_a_short_manual_without_measured_numbers():
    """README <= 300 lines and no measured value in it: percentages, images/s, x-ratios live in the
    generated pages."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    measured = re.findall(r"\d+(?:\.\d+)?%|\d[\d,]*(?:\.\d+)? ?(?:images/s|img/s)|\d+\.\d+x\b", readme)
    assert not measured, f"README types measured numbers {measured}: put them in a generated page (python -m docs)"
    for page in build.PAGES:
        assert f"docs/{page}" in readme, f"README does not link the generated page docs/{page}"


def test_alignment_tables_mark_the_best_cell_from_the_analysis_output(tmp_path):
    """The neural-alignment page reads what python -m analyses.neural_alignment wrote; raising one cell's
    score above the others makes it the target's best (bold) cell and moves the ceiling row to it."""
    root = copy_inputs(tmp_path)
    path = root / "docs" / "results" / "neural_alignment_default.csv"
    table = read_table(path)
    assert table.attrs["command"].startswith("python -m analyses.neural_alignment")
    cell = (table["target"] == "cichy2014_fmri_EVC") & (table["state"] == "V2") & (table["time"] == 1)
    page = build.render("neural_alignment_results.md", root)
    assert "| `cichy2014_fmri_EVC` | V4 at t=4 |" in page
    table.loc[cell, ["score", "score_ci_low", "score_ci_high"]] = [0.91, 0.81, 0.97]
    table.to_csv(path, index=False)
    changed = build.render("neural_alignment_results.md", root)
    assert "**0.91 [0.81, 0.97]**" in changed and "| `cichy2014_fmri_EVC` | V2 at t=1 |" in changed


def test_tsbn_decay_rows_come_from_the_analysis_summary(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / "docs" / "results" / "tsbn_decay_resnet_2state_t13" / "tsbn_decay_summary.csv"
    table = read_table(path)
    row = (table["kind"] == "self") & (table["statistic"] == "running_mean")
    fit, jump, flat = (int(table.loc[row, c].item()) for c in ("n_fit", "n_jump", "n_no_asymptote"))
    line = lambda page: next(l for l in page.splitlines() if l.startswith("| `resnet_2state_t13_cifar10` | training | self | mean"))
    assert f"| {fit + jump + flat} | {fit} |" in line(build.render("timing_results.md", root))
    table.loc[row, "n_well_fit"] = fit + jump + flat  # every tried channel well fit: 100%
    table.to_csv(path, index=False)
    assert "(100%)" in line(build.render("timing_results.md", root))


def test_neural_comparisons_page_is_listed_and_rendered_from_the_comparison_tables():
    """docs/neural_comparisons.md is one of the checked pages (so --check covers it) and cites each table."""
    assert "neural_comparisons.md" in build.PAGES
    page = build.render("neural_comparisons.md")
    for name in ("neural_vs_untrained", "neural_vs_controls", "neural_model_pairs", "neural_zscore"):
        assert f"`docs/results/{name}.csv`" in page


def test_a_changed_comparison_value_changes_the_tables_and_the_sentences(tmp_path):
    """One trained-vs-untrained cell and one model pair, changed in copies of the CSVs, change the table
    rows and the sentences citing them; a cell made FDR-significant changes the counts of cells."""
    root = copy_inputs(tmp_path)
    path = root / "docs" / "results" / "neural_vs_untrained.csv"
    table = pd.read_csv(path)
    cell = ((table["model"] == "frnn_4state_cifar10") & (table["target"] == "cichy2014_fmri_EVC")
            & (table["state"] == "V1") & (table["time"] == 0))
    assert table.loc[cell, "difference"].item() == pytest.approx(-0.29, abs=0.005)  # the page shows it today
    before = build.render("neural_comparisons.md", root)
    assert before.count("-0.29 [-0.40, -0.08]") == 2  # the table row and the sentence
    row = lambda page: next(l for l in page.splitlines() if l.startswith("| frnn_4state_cifar10 | Cichy EVC | 17 |"))
    assert row(before).endswith("| 0 | 9 | V1: -0.29 [-0.40, -0.08], 0.013 |")
    table.loc[cell, ["difference", "difference_ci_low", "difference_ci_high", "p_fdr"]] = [0.61, 0.52, 0.7, 0.004]
    table.to_csv(path, index=False)
    after = build.render("neural_comparisons.md", root)
    assert after.count("+0.61 [+0.52, +0.70]") == 2 and "-0.29 [-0.40, -0.08]" not in after
    # the cell was one of the 9 significantly below the twin; now it is the one above: both counts follow
    assert row(after).endswith("| 1 | 8 | V1: +0.61 [+0.52, +0.70], 0.004 |")
    assert "untrained twin number 0 to 1 per model" in after and "untrained twin number 0 per model" in before

    pairs = root / "docs" / "results" / "neural_model_pairs.csv"
    table = pd.read_csv(pairs)
    assert (table["p_value"] < 0.05).sum() == 1
    table.loc[0, ["difference", "difference_ci_low", "difference_ci_high", "p_value"]] = [0.2, 0.1, 0.3, 0.01]
    table.to_csv(pairs, index=False)
    page = build.render("neural_comparisons.md", root)
    assert "| Cichy EVC | +0.200 [+0.100, +0.300] | 0.010 |" in page and "(2 of 24 pairs at p < 0.05" in page


def test_the_zscore_numbers_come_from_the_zscore_table(tmp_path):
    root = copy_inputs(tmp_path)
    path = root / "docs" / "results" / "neural_zscore.csv"
    table = pd.read_csv(path)
    best = table.pivot_table(index=["model", "target"], columns="zscore", values="best_score")
    largest = (best["yes"] - best["no"]).abs().max()  # the t10 FRNN against EVC, 0.237 -> 0.354
    assert f"change by at most {largest:.2f}." in build.render("neural_comparisons.md", root)
    row = (table["model"] == "frnn_3state_t10_cifar10") & (table["target"] == "cichy2014_fmri_EVC") & (table["zscore"] == "yes")
    table.loc[row, "best_score"] = 0.9
    table.to_csv(path, index=False)
    page = build.render("neural_comparisons.md", root)
    assert "change by at most 0.66." in page and "| 0.24 -> 0.90 |" in page
