"""python -m analyses.untrained_baselines on a tiny fake stimulus set and fake targets; one cell's score
checked by hand (the module run directly, numpy correlation distance, scipy's Spearman)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from analyses import untrained_baselines as ub
from analyses.registry import ANALYSES
from visrecur.artifacts.results import read_table
from visrecur.neural.rdm import as_rdm
from visrecur.recording.stimuli import from_array
from visrecur.timed import reference

N, SIZE = 6, 64


@pytest.fixture(scope="module")
def fake():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    ids = [f"img{k}" for k in range(N)]
    stimuli = from_array(images, ids, name="fake")
    rdms = []
    for _ in range(2):  # two subjects
        points = rng.normal(size=(N, 4))
        rdms.append(squareform_of(pdist(points)))
    target = as_rdm(np.stack(rdms), ids, {"subject": ["S1", "S2"]}, "fake_target")
    return images, ids, stimuli, target


def squareform_of(condensed):
    from scipy.spatial.distance import squareform

    return squareform(condensed)


@pytest.mark.slow
def test_one_cell_by_hand(fake):
    """CORnet-Z, seed 1, area V2 (its only step, 1): the table's score equals Spearman between the
    upper triangles of 1 - Pearson over V2's flattened output (the module run by hand) and the
    subject-mean target RDM."""
    _, _, stimuli, target = fake
    table = ub.baseline_table(["cornet_z"], [1], stimuli, [target], reduction="none", input_size=SIZE)
    assert set(table["area"]) == {"V1", "V2", "V4", "IT"}
    # time = depth: each area has exactly one row, at its depth; no rows where an area does not run
    assert table.set_index("area")["step"].to_dict() == {"V1": 0, "V2": 1, "V4": 2, "IT": 3}

    model = reference.build("cornet_z", 1, input_size=SIZE)
    x = torch.stack([model.preprocess(stimuli.image(k)) for k in range(N)])
    with torch.no_grad():
        v2 = model.module.V2(model.module.V1(x)).flatten(1).double().numpy()
    model_rdm = pdist(v2, "correlation")
    expected = spearmanr(model_rdm, _upper(target.values.mean(0))).statistic
    got = table.query("area == 'V2'")["score"].item()
    assert got == pytest.approx(expected, abs=1e-6)
    # milliseconds: the default mapping (20-50 ms per step), step 1
    row = table.query("area == 'V2'").iloc[0]
    assert (row.latency_min_ms, row.latency_max_ms) == (20.0, 50.0)


def _upper(square):
    i, j = np.triu_indices(len(square), 1)
    return square[i, j]


@pytest.mark.slow
def test_seeds_differ_and_reproduce(fake):
    _, _, stimuli, target = fake
    table = ub.baseline_table(["cornet_z"], [0, 1, 2], stimuli, [target], reduction="mean", input_size=SIZE)
    scores = table.pivot_table(index="area", columns="seed", values="score")
    assert scores.shape == (4, 3) and scores.notna().all().all()
    assert scores[0].ne(scores[1]).any()  # different weights give different scores
    torch.rand(7)  # the global random state moves on: the weights depend on the seed alone
    again = ub.baseline_table(["cornet_z"], [1], stimuli, [target], reduction="mean", input_size=SIZE)
    assert np.allclose(again["score"], table.query("seed == 1")["score"])  # a seed is reproducible
    summary = ub.summarize(table)
    it = summary.query("area == 'IT'").iloc[0]
    assert it.n_seeds == 3
    assert it.score_mean == pytest.approx(scores.loc["IT"].mean())
    assert it.score_sd == pytest.approx(scores.loc["IT"].std(ddof=1))
    best = ub.best_cells(summary)
    assert len(best) == 1 and best.score_mean.item() == summary.score_mean.max()


def test_command_writes_tables(fake, tmp_path):
    images, _, _, target = fake
    np.save(tmp_path / "stim.npy", images)
    rdm = target.values
    np.savez(tmp_path / "target.npz", rdm=rdm, stimuli=np.array([f"stim_{k:05d}" for k in range(N)]))
    ub.main(["--models", "cornet_z", "--seeds", "0", "1", "--stimuli", str(tmp_path / "stim.npy"),
             "--targets", str(tmp_path / "target.npz"), "--input-size", str(SIZE), "--reduction", "mean",
             "--out-dir", str(tmp_path / "out"), "--no-progress"])
    table = read_table(tmp_path / "out" / "untrained_baselines.csv")
    assert list(table.columns[:8]) == ["model", "seed", "target", "area", "step", "latency_min_ms",
                                       "latency_max_ms", "score"]
    assert len(table) == 2 * 4  # 2 seeds x 4 areas (one step each) x 1 target
    assert (table.weights == "random initialisation").all()
    summary = read_table(tmp_path / "out" / "untrained_baselines_summary.csv")
    assert len(summary) == 4 and (summary.n_seeds == 2).all()
    assert (tmp_path / "out" / "untrained_baselines_best.csv").is_file()
    assert "untrained_baselines" in ANALYSES


def test_refusals(capsys, tmp_path):
    assert ub.main(["--models", "frnn_4state_cifar10", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a reference architecture" in err[0]
    assert ub.main(["--seeds", "-1", "--out-dir", str(tmp_path)]) == 2
    assert "seeds" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_docs_tables_are_rendered_from_the_results():
    """docs/untrained_baselines.md shows each table that ub.markdown renders from the shipped results."""
    from pathlib import Path

    paths = sorted(Path("docs/results").glob("untrained_baselines*_best.csv"))
    if not paths:
        pytest.skip("the shipped results are made by python -m analyses.untrained_baselines")
    page = Path("docs/untrained_baselines.md").read_text()
    for path in paths:
        assert ub.markdown(read_table(path)) in page, path
