"""Latency analysis: reaction times on planted confidence trajectories, ms by hand, the command's tables,
its refusals, and the notebook."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analyses import latency
from analyses.common import check_readout_times
from timing_fixtures import PREPROCESS, assert_refuses, run_notebook, tiny_checkpoint, tiny_folder, tiny_model
from visrecur.architecture import zoo
from visrecur.training.data import TensorBatches
from visrecur.errors import InputError
from visrecur.training.evaluate import evaluate
from visrecur.timing import TimeMapping

NOTEBOOK = Path(__file__).resolve().parents[1] / "figures" / "latency.ipynb"
TIMES = [2, 3, 4]  # first readout time 2, last 4
CLASSES = 4
# per image: (label, [(argmax class, its probability) at t = 2, 3, 4]); the other classes share the rest
PLANTED = [
    (0, [(0, 0.95), (0, 0.97), (0, 0.99)]),   # crosses 0.9 at the first step
    (1, [(1, 0.45), (2, 0.92), (1, 0.60)]),   # crosses 0.9 at t = 3 with the wrong class, then falls back
    (3, [(3, 0.40), (3, 0.60), (3, 0.91)]),   # crosses 0.9 at the last step
    (2, [(2, 0.30), (2, 0.55), (2, 0.85)]),   # never crosses 0.9; right at the deadline
]


def planted_probs():
    probs = np.zeros((len(PLANTED), len(TIMES), CLASSES))
    for i, (_, steps) in enumerate(PLANTED):
        for k, (cls, p) in enumerate(steps):
            probs[i, k] = (1 - p) / (CLASSES - 1)
            probs[i, k, cls] = p
    return probs


class Planted(nn.Module):
    """Stands in for a model: image i (its pixels hold i) gets log(planted probabilities) as logits."""

    def __init__(self):
        super().__init__()
        self.logits = torch.tensor(np.log(planted_probs()))

    def forward(self, images, readout_time):
        index = images[:, 0, 0, 0].round().long()
        return {t: self.logits[index, TIMES.index(t)] for t in readout_time}


def planted_tables(thresholds=(0.5, 0.9), criterion="max_softmax", mapping=TimeMapping((20, 50))):
    images = torch.arange(len(PLANTED), dtype=torch.float64).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    labels = torch.tensor([label for label, _ in PLANTED])
    return latency.latency_tables(Planted(), [(images[:3], labels[:3]), (images[3:], labels[3:])], TIMES,
                                  thresholds, criterion, mapping, classes=["a", "b", "c", "d"])


def test_reaction_times_on_planted_trajectories():
    tables = planted_tables()
    rts = tables["reaction_times"].set_index(["threshold", "image"])
    at = rts.loc[0.9]
    assert at.rt_steps.tolist()[:3] == [2, 3, 4] and np.isnan(at.rt_steps[3])
    assert at.crossed.tolist() == [True, True, True, False]
    assert at.decision_at_rt.tolist()[:3] == [0, 2, 3] and pd.isna(at.decision_at_rt[3])
    assert at.correct_at_rt.tolist()[:3] == [True, False, True]
    assert np.allclose(at.confidence_at_rt[:3], [0.95, 0.92, 0.91])
    assert at.decision_deadline.tolist() == [0, 2, 3, 2] and at.correct_deadline.tolist() == [True, False, True, True]
    assert rts.loc[0.5].rt_steps.tolist() == [2, 3, 3, 3]  # 0.45 and 0.40 at t = 2 stay below 0.5

    speed = tables["speed_accuracy"].set_index("threshold")
    row = speed.loc[0.9]
    assert (row.n_images, row.n_crossed, row.never_crossed_pct) == (4, 3, 25.0)
    assert row.mean_rt_steps == 3.0 and row.median_rt_steps == 3.0
    assert np.isclose(row.accuracy_at_rt_pct, 100 * 2 / 3)
    # the never-crossing image decides at t = 4: RT counted as 4, and its class 2 is right
    assert row.mean_rt_deadline_steps == (2 + 3 + 4 + 4) / 4 and row.accuracy_deadline_pct == 75.0
    assert (row.mean_rt_min_ms, row.mean_rt_max_ms) == (60.0, 150.0)
    assert speed.loc[0.5].never_crossed_pct == 0 and speed.loc[0.5].mean_rt_steps == 11 / 4


def test_reaction_times_in_ms_match_the_mapping_by_hand():
    rts = planted_tables(mapping=TimeMapping((25, 40), onset_ms=10))["reaction_times"]
    at = rts[rts.threshold == 0.9]
    # step t is onset + t * low .. onset + t * high: t = 2, 3, 4 -> 60..90, 85..130, 110..170
    assert at.rt_min_ms.tolist()[:3] == [60, 85, 110] and at.rt_max_ms.tolist()[:3] == [90, 130, 170]
    assert at.rt_min_ms.isna().tolist() == [False, False, False, True]
    speed = planted_tables(mapping=TimeMapping((25, 40), onset_ms=10))["speed_accuracy"].set_index("threshold")
    assert (speed.loc[0.9].mean_rt_min_ms, speed.loc[0.9].mean_rt_max_ms) == (85.0, 130.0)


def test_accuracy_and_rt_distribution_per_class_by_hand():
    tables = planted_tables()
    acc = tables["accuracy"].set_index("readout_time")
    # argmax right at t = 2 for all four, at t = 3 for three (image 1 says 2), at t = 4 for all four
    assert acc.accuracy_pct.tolist() == [100.0, 75.0, 100.0]
    assert np.allclose(acc.mean_max_softmax, [(0.95 + 0.45 + 0.40 + 0.30) / 4, (0.97 + 0.92 + 0.60 + 0.55) / 4,
                                              (0.99 + 0.60 + 0.91 + 0.85) / 4])
    assert acc.latency_min_ms.tolist() == [40, 60, 80] and acc.latency_max_ms.tolist() == [100, 150, 200]
    dist = tables["rt_by_class"]
    at = dist[dist.threshold == 0.9]
    assert len(at) == 4 * 4  # every class: t = 2, 3, 4 and "never"
    assert at[at.class_name == "c"].n_images.tolist() == [0, 0, 0, 1]   # image 3 (class 2) never crossed
    assert at[at.class_name == "b"].n_images.tolist() == [0, 1, 0, 0]   # image 1 crossed at t = 3
    assert at.groupby("class_name").pct_of_class.sum().eq(100).all()


def test_normalised_entropy_criterion_against_its_formula():
    probs = planted_probs()
    p = np.array([[cls_p for _, cls_p in steps] for _, steps in PLANTED])
    by_hand = -(p * np.log(p) + (1 - p) * np.log((1 - p) / (CLASSES - 1))) / np.log(CLASSES)
    assert np.allclose(latency.confidence(probs, "entropy"), by_hand)
    assert np.isclose(latency.confidence(np.full((1, CLASSES), 1 / CLASSES), "entropy"), 1.0)
    assert latency.confidence(np.eye(CLASSES)[:1], "entropy") == 0.0   # 0 log 0 = 0
    threshold = 0.5
    expected = [int(np.argmax(row <= threshold)) if (row <= threshold).any() else -1 for row in by_hand]
    rts = planted_tables(thresholds=[threshold], criterion="entropy")["reaction_times"]
    assert rts.rt_steps.fillna(-1).tolist() == [TIMES[k] if k >= 0 else -1 for k in expected]
    # entropy crosses downwards: threshold 1 is crossed by everything at the first step
    assert planted_tables(thresholds=[1.0], criterion="entropy")["reaction_times"].rt_steps.eq(2).all()


def test_accuracy_per_readout_time_matches_evaluate_past_training():
    model = tiny_model(readout_time=3)
    images = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)
    batches = TensorBatches(images, torch.randint(0, 10, (12,)), 5, PREPROCESS.mean, PREPROCESS.std, train=False)
    table = latency.latency_tables(model, batches, [2, 3, 4], [0.5])["accuracy"].set_index("readout_time")
    errors = evaluate(model, batches, [2, 3, 4], "cpu")   # a second route to the same numbers
    for t in (2, 3, 4):   # first, last trained and first past it
        assert np.isclose(table.accuracy_pct[t], 100 * (1 - errors[t]))


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan")])
def test_thresholds_outside_0_1_are_refused(bad):
    with pytest.raises(InputError, match=r"outside \(0, 1\]"):
        latency.check_thresholds([0.5, bad])
    assert latency.check_thresholds([1, 0.5]) == [0.5, 1.0]


def test_readout_times_a_checkpoint_cannot_give_are_refused():
    model = tiny_model(readout_time=3)
    with pytest.raises(InputError, match="readout times start at 2"):
        check_readout_times(model, [1, 2], "tiny")
    strict = tiny_model(readout_time=3, beyond_trained="error")
    check_readout_times(strict, [2, 3], "tiny")
    with pytest.raises(InputError, match="t=4.*beyond_trained='error'.*--recalibrate N"):
        check_readout_times(strict, [2, 3, 4], "tiny")
    check_readout_times(strict, [2, 3, 4], "tiny", recalibrating=True)
    unshared = zoo.build("frnn_2state_unshared", channels=(2, 3), readout_time=3, input_size=8)
    with pytest.raises(InputError, match="time-variant.*up to 3, not t=4"):
        check_readout_times(unshared, [2, 3, 4], "tiny")
    with pytest.raises(InputError, match="skip steps.*2 3 4 5"):
        latency.check_consecutive([2, 5])


@pytest.mark.parametrize("args, message", [
    (["--thresholds", "0.5", "0"], "threshold 0 is outside (0, 1]"),
    (["--thresholds", "1.5"], "threshold 1.5 is outside (0, 1]"),
    (["--readout-times", "1", "2"], "cannot be read out at t=1"),
    (["--readout-times", "2", "4"], "skip steps"),
    (["--limit", "0"], "--limit 0 must be at least 1"),
    (["--ms-per-step", "50", "20"], "give the smaller duration first"),
])
def test_command_refuses_in_one_line(args, message, tmp_path, capsys):
    assert_refuses(latency.main, args, message, tmp_path / "out", capsys)


@pytest.fixture(scope="module")
def latency_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("latency")
    checkpoint = tiny_checkpoint(root / "tiny.pt")
    tiny_folder(root / "data")
    assert latency.main(["--model", str(checkpoint), "--data-root", str(root / "data"), "--readout-times", "2", "3",
                         "4", "--thresholds", "0.2", "0.5", "--out-dir", str(root / "results"), "--no-progress"]) == 0
    return root / "results"


def test_command_writes_tidy_tables(latency_results):
    accuracy = pd.read_csv(latency_results / "latency_accuracy.csv")
    assert accuracy.readout_time.tolist() == [2, 3, 4]
    assert accuracy.beyond_trained_steps.tolist() == [False, False, True]
    assert accuracy.tsbn_policy.eq("trained").all() and accuracy.calibration.eq("none").all()
    rts = pd.read_csv(latency_results / "latency_reaction_times.csv")
    assert len(rts) == 2 * 12 and set(rts.class_name) == {"c0", "c1", "c2"}
    speed = pd.read_csv(latency_results / "latency_speed_accuracy.csv")
    for threshold, group in rts.groupby("threshold"):
        row = speed.set_index("threshold").loc[threshold]
        assert row.n_crossed == group.crossed.sum()
        assert np.isclose(row.mean_rt_steps, group.rt_steps.mean(), equal_nan=True)
    assert not list(latency_results.glob("*.tmp"))


@pytest.mark.slow  # runs a notebook
def test_notebook_draws_the_figures(latency_results, tmp_path, monkeypatch):
    run_notebook(NOTEBOOK, latency_results, tmp_path / "out", monkeypatch)
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["latency_accuracy.png", "latency_rt_by_class.png", "latency_speed_accuracy.png"]
    assert all((tmp_path / "out" / p).stat().st_size > 5000 for p in pngs)


def test_notebook_names_the_command_when_results_are_missing(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"latency_accuracy.csv is missing; make it with python -m analyses.latency"):
        run_notebook(NOTEBOOK, tmp_path / "empty", tmp_path / "out", monkeypatch)
