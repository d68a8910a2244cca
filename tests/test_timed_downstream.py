"""The analyses and timed models (visrecur.timed): latency takes a model with readouts at several steps
(BL-net's entropy-threshold reaction time, checked on hand-made logits); every analysis that cannot apply
to a timed model refuses it in one line, before any work."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses import (
    common,
    latency,
    parameters,
    readout_generalization,
    readout_time,
    transition_matrix,
    tsbn_decay,
)
from visrecur.errors import InputError
from visrecur.timed import StepModel
from visrecur.timing import TimeMapping

CLASSES = 3
CERTAIN, UNIFORM = [10.0, 0.0, 0.0], [0.0, 0.0, 0.0]


def softmax(logits):
    z = np.exp(np.asarray(logits, dtype=float))
    return z / z.sum(-1, keepdims=True)


def normalised_entropy(p):
    return -(p * np.log(p)).sum(-1) / np.log(len(p))


# --- BL-net's reaction time on hand-made logits ----------------------------------------------------
def hand_made_probs():
    """Three images over readout steps 0..3: crosses at the first step, at the last step, never."""
    first = [CERTAIN] * 4
    last = [UNIFORM] * 3 + [[0.0, 10.0, 0.0]]
    never = [UNIFORM, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], UNIFORM]
    return softmax(np.array([first, last, never]))


def test_entropy_reaction_time_first_last_never():
    probs = hand_made_probs()
    labels = np.array([0, 1, 2])
    threshold = 0.5
    # independent expectations: entropies by hand; the certain readout is far below 0.5, uniform is 1
    assert normalised_entropy(softmax(CERTAIN)) < 0.01 and normalised_entropy(softmax(UNIFORM)) == pytest.approx(1)
    assert normalised_entropy(softmax([1.0, 0.0, 0.0])) > threshold  # the near-miss of the third image
    mapping = TimeMapping((20, 50))
    rts = latency.reaction_time_table(probs, labels, [0, 1, 2, 3], [threshold], "entropy", mapping, state="IT")
    assert rts["crossed"].tolist() == [True, True, False]
    assert rts["rt_steps"].iloc[0] == 0  # the first step
    assert rts["rt_steps"].iloc[1] == 3  # the last step
    assert np.isnan(rts["rt_steps"].iloc[2])  # never below: no reaction time, no decision
    assert rts["decision_at_rt"].iloc[:2].tolist() == [0, 1] and rts["decision_at_rt"].isna().iloc[2]
    assert rts["correct_at_rt"].iloc[:2].tolist() == [True, True] and rts["correct_at_rt"].isna().iloc[2]
    # the deadline decides a never-crossing image at the last step: argmax of uniform logits is class 0
    assert rts["decision_deadline"].tolist() == [0, 1, 0]
    # step k of the last area is k * 20 to k * 50 ms
    assert (rts["rt_min_ms"].iloc[1], rts["rt_max_ms"].iloc[1]) == (60.0, 150.0)
    speed = latency.speed_accuracy_table(rts, 3, mapping, "IT")
    row = speed.iloc[0]
    assert row.n_crossed == 2 and row.never_crossed_pct == pytest.approx(100 / 3)
    assert row.mean_rt_steps == pytest.approx(1.5)  # (0 + 3) / 2
    assert row.mean_rt_deadline_steps == pytest.approx(2.0)  # (0 + 3 + 3) / 3: one past the images that crossed


def step_model(logits_by_image):
    """A timed model with one area and a readout at steps 0..3 that returns the hand-made logits."""
    table = torch.tensor(logits_by_image, dtype=torch.float32)  # images x steps x classes

    def step(images, state, t):
        return {"area": images.mean((2, 3)), "logits": table[:len(images), t]}

    from visrecur.recording.preprocess import Preprocess

    return StepModel(step, areas=["area"], steps={"area": range(4)}, readout_steps=range(4), name="handmade",
                     preprocess=Preprocess((4, 4), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))


def test_timed_model_readouts_through_latency_tables():
    logits = np.log(hand_made_probs())  # softmax(log p) = p
    model = step_model(logits)
    images = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2])
    batches = latency.resized_batches(model, images, labels, batch_size=3)
    probs, _ = latency.readout_probabilities(model, batches, [0, 1, 2, 3])
    assert probs.shape == (3, 4, CLASSES)
    np.testing.assert_allclose(probs, hand_made_probs(), atol=1e-6)
    tables = latency.latency_tables(model, batches, [0, 1, 2, 3], [0.5], "entropy", TimeMapping((20, 50)),
                                    state="area")
    assert tables["reaction_times"]["rt_steps"].tolist()[:2] == [0, 3]
    assert tables["accuracy"]["readout_time"].tolist() == [0, 1, 2, 3]
    latency.check_timed_readouts(model, [1, 2])  # consecutive readout steps among its own: taken
    with pytest.raises(InputError, match="reads out at steps \\[0, 1, 2, 3\\], not at 4"):  # one past the last
        latency.check_timed_readouts(model, [3, 4])


def test_resized_to_the_models_input():
    model = step_model(np.zeros((2, 4, CLASSES)))
    batches = latency.resized_batches(model, torch.full((2, 3, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1]))
    images, _ = next(iter(batches.batches(0)))
    assert images.shape == (2, 3, 4, 4)
    assert torch.allclose(images, torch.full_like(images, (1 - 0.5) / 0.25))


def test_one_readout_step_is_refused():
    from visrecur.recording.preprocess import Preprocess

    model = StepModel(lambda images, state, t: {"area": images, **({"logits": images.mean((1, 2, 3))[:, None]}
                                                                    if t == 1 else {})},
                      areas=["area"], steps={"area": range(2)}, readout_steps=[1], name="once",
                      preprocess=Preprocess((4, 4), (0.5,) * 3, (0.25,) * 3))
    with pytest.raises(InputError, match="reads out at one step only .*: reaction times need readouts at several"):
        latency.check_timed_readouts(model, [1])


# --- one-line refusals ------------------------------------------------------------------------------
REFUSALS = [
    (tsbn_decay, "tsbn_decay", ["--model", "cornet_s"]),
    (readout_time, "readout_time", ["--model", "blnet"]),
    (readout_generalization, "readout_generalization", ["--model", "cornet_rt"]),
    (transition_matrix, "transition_matrix", ["--models", "cornet_z"]),
    (parameters, "parameters", ["--models", "resnet18_time"]),
]


@pytest.mark.parametrize("module, name, args", REFUSALS, ids=[r[1] for r in REFUSALS])
def test_analysis_refuses_a_timed_model_in_one_line(module, name, args, capsys, tmp_path):
    file_output = name in ("parameters", "readout_time", "readout_generalization")
    out = ["--out", str(tmp_path / "p.csv")] if file_output else ["--out-dir", str(tmp_path)]
    assert module.main(args + out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0] == f"error: analyses.{name} does not apply to {args[1]}: {common.TIMED_REFUSALS[name]}"
    assert not list(tmp_path.iterdir())


def test_latency_refuses_recalibrating_a_timed_model(capsys, tmp_path):
    assert latency.main(["--model", "blnet", "--recalibrate", "10", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--recalibrate does not apply" in err[0]


def test_frnn_names_still_load():
    assert not common.is_timed_name("frnn_4state_cifar10")
    common.check_applies(["frnn_4state_cifar10", "runs/x/checkpoint.pt"], "tsbn_decay")  # no refusal


@pytest.mark.slow
def test_latency_command_on_blnet(tmp_path):
    """BL-net (untrained) on 10 CIFAR-10 test images through the command: a reaction time per image at
    each threshold, readout steps 0..7 with BL-net's default ms."""
    from visrecur.artifacts.io import data_root
    from visrecur.artifacts.results import read_table

    root = data_root() / "cifar10-jpeg"
    if not root.is_dir():
        pytest.skip("needs the CIFAR-10 JPEGs")
    assert latency.main(["--model", "blnet", "--limit", "10", "--criterion", "entropy", "--thresholds", "0.9",
                         "0.999", "--readout-times", "0", "1", "2", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    rts = read_table(tmp_path / "latency_reaction_times.csv")
    assert len(rts) == 2 * 10 and set(rts.model) == {"blnet"}
    accuracy = read_table(tmp_path / "latency_accuracy.csv")
    assert accuracy.readout_time.tolist() == [0, 1, 2]
    assert (accuracy.tsbn_policy == "none").all()


# --- neural alignment takes a timed model's recording ---------------------------------------------
@pytest.mark.slow
def test_neural_alignment_scores_a_timed_recording():
    """ResNet-18 with time = depth: every area is scored at its depth step and nowhere else (NaN, not
    reached), with each step's ms from the recording's own mapping."""
    from scipy.spatial.distance import pdist, squareform

    from analyses.neural_alignment import score_table, tidy
    from visrecur.artifacts.models import ModelSource
    from visrecur.neural.rdm import as_rdm
    from visrecur.recording import record
    from visrecur.recording.stimuli import from_array
    from visrecur.timed import reference

    rng = np.random.default_rng(0)
    ids = [f"s{k}" for k in range(6)]
    stimuli = from_array(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), ids)
    target = as_rdm(np.stack([squareform(pdist(rng.normal(size=(6, 3)))) for _ in range(3)]), ids,
                    {"subject": ["a", "b", "c"]}, "fake")
    model = reference.build("resnet18_time", 0, input_size=32)
    recording = record(ModelSource.wrap(model), stimuli, reduction="mean", progress=False)
    ds, _ = score_table(recording, [target], n_boot=0, contrast=None)
    table = tidy(ds)
    reached = table[table.reached]
    assert sorted(zip(reached.state, reached.time)) == sorted((a, s[0]) for a, s in model.steps.items())
    layer2 = reached.query("state == 'layer2'").iloc[0]
    assert (layer2.latency_min_ms, layer2.latency_max_ms) == (40.0, 100.0)  # step 2 at 20-50 ms per step
