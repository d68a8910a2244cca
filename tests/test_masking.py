"""Masking: the schedule changes the input at exactly the mask's step (seen through the observer), the
masks are what the docstring says, accuracies match direct runs, refusals, and the notebook."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import visrecur
from analyses import masking
from timing_fixtures import PREPROCESS, assert_refuses, run_notebook, tiny_checkpoint, tiny_folder, tiny_model
from visrecur.errors import InputError
from visrecur.recording.preprocess import normalize

NOTEBOOK = Path(__file__).resolve().parents[1] / "figures" / "masking.ipynb"
T = 5


@pytest.fixture(scope="module")
def model():
    return tiny_model(readout_time=T)


@pytest.fixture(scope="module")
def stimuli():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (9, 3, 8, 8), generator=generator, dtype=torch.uint8)
    return images, torch.tensor([0, 1, 2] * 3)


def states(model, frames):
    seen = {}
    with torch.no_grad():
        model(frames, readout_time=T, observer=lambda name, t, x: seen.__setitem__((name, t), x.clone()))
    return seen


def test_schedules_by_hand():
    assert masking.frame_schedule(1, 5, "held") == ("stimulus", "mask", "mask", "mask", "mask")
    assert masking.frame_schedule(3, 5, "held") == ("stimulus",) * 3 + ("mask",) * 2
    assert masking.frame_schedule(5, 5, "held") == ("stimulus",) * 5
    assert masking.frame_schedule(3, 5, "flash") == ("stimulus", None, None, "mask", "mask")
    assert masking.frame_schedule(5, 5, "flash") == ("stimulus", None, None, None, None)
    assert masking.frame_schedule(1, 5, "flash") == masking.frame_schedule(1, 5, "held")


@pytest.mark.parametrize("presentation", masking.PRESENTATIONS)
@pytest.mark.parametrize("kind", masking.MASKS)
def test_mask_changes_the_input_at_exactly_its_step(model, stimuli, presentation, kind):
    images, labels = stimuli
    x = normalize(images, PREPROCESS.mean, PREPROCESS.std)
    mask, _ = masking.make_masks(kind, images, labels, PREPROCESS.mean, PREPROCESS.std)
    # the run without a mask: the same presentation with the stimulus shown for all T steps
    reference = states(model, masking.frames(masking.frame_schedule(T, T, presentation), x, mask))
    first, others = model.state_names[0], model.state_names[1:]
    for k in range(1, T):   # k = 1 (first step) .. T - 1 (the last step the readout reads)
        masked = states(model, masking.frames(masking.frame_schedule(k, T, presentation), x, mask))
        assert masked.keys() == reference.keys()
        for (name, t), value in masked.items():
            if t < k:    # up to the step before the mask: identical
                assert torch.equal(value, reference[name, t]), (k, name, t)
        # at step k only the first state, which the frame enters, has changed; from then on it stays changed
        for t in range(k, T):
            assert not torch.allclose(masked[first, t], reference[first, t]), (k, t)
        assert all(torch.equal(masked[name, k], reference[name, k]) for name in others if (name, k) in masked)


def test_masks_are_what_they_say(stimuli):
    images, labels = stimuli
    blank, none = masking.make_masks("blank", images, labels, PREPROCESS.mean, PREPROCESS.std)
    assert none is None and torch.equal(blank, torch.zeros(images.shape))   # the mean colour, normalised
    noise, _ = masking.make_masks("noise", images, labels, PREPROCESS.mean, PREPROCESS.std, seed=3)
    pixels = noise * 0.25 + 0.5   # undo the normalisation: 0..1, not the stimuli, the same for the same seed
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.std() > 0.25
    assert torch.equal(noise, masking.make_masks("noise", images, labels, PREPROCESS.mean, PREPROCESS.std, seed=3)[0])
    other, other_labels = masking.make_masks("image", images, labels, PREPROCESS.mean, PREPROCESS.std)
    assert (other_labels != labels).all()
    for picture in other:   # every image mask is one of the test images
        assert any(torch.allclose(picture, candidate) for candidate in normalize(images, PREPROCESS.mean, PREPROCESS.std))


def test_blank_frame_is_an_input_not_its_absence(model, stimuli):
    images, _ = stimuli
    x = normalize(images, PREPROCESS.mean, PREPROCESS.std)
    with torch.no_grad():
        assert model.prenet(torch.zeros_like(x)).abs().max() > 0   # the pre-net's batch norms shift it
        blank = model([x, None, torch.zeros_like(x), torch.zeros_like(x)], readout_time=T)
        assert not torch.allclose(blank, model(x, readout_time=T))


def test_reachability_by_hand_and_unreachable_frames_do_not_matter(model, stimuli):
    # 2-state FRNN: h1 -> h2 takes one step, the readout at 5 reads h2 at 4: frames 1..3 reach it, 4 not
    assert [masking.reaches_readout(model.spec.graph, k, T) for k in range(1, 6)] == [True, True, True, False, False]
    # the shipped 4-state models at t = 5: V1 -> IT directly (1 step) or through V2, V4 (3 steps)
    full, adjacent = visrecur.spec("frnn_4state_shared").graph, visrecur.spec("frnn_4state_adjacent_shared").graph
    assert [masking.reaches_readout(full, k, 5) for k in range(1, 6)] == [True, True, True, False, False]
    assert [masking.reaches_readout(adjacent, k, 5) for k in range(1, 6)] == [True, False, False, False, False]
    images, labels = stimuli
    x = normalize(images, PREPROCESS.mean, PREPROCESS.std)
    noise, _ = masking.make_masks("noise", images, labels, PREPROCESS.mean, PREPROCESS.std)
    schedule = masking.frame_schedule(2, T, "held")
    effective = masking.effective_schedule(schedule, model.spec.graph, T)
    assert effective == ("stimulus", "stimulus", "mask", "mask", None)
    with torch.no_grad():
        assert torch.equal(model(masking.frames(schedule, x, noise), readout_time=T),
                           model(masking.frames(effective, x, noise), readout_time=T))


def test_accuracies_match_direct_runs(model, stimuli):
    images, labels = stimuli
    table = masking.masking_table(model, images, labels, range(1, T + 1), batch_size=4).set_index(
        ["presentation", "mask", "stimulus_steps"])
    x = normalize(images, PREPROCESS.mean, PREPROCESS.std)
    with torch.no_grad():
        unmasked = (model(x, readout_time=T).argmax(1) == labels).double().mean().item()
        for kind in masking.MASKS:
            mask, mask_labels = masking.make_masks(kind, images, labels, PREPROCESS.mean, PREPROCESS.std)
            for k in (1, 3, T):
                held = model([x] * k + [mask] * (T - k), readout_time=T).argmax(1)   # built by hand
                flash = model([x] + [None] * (k - 1) + [mask] * (T - k), readout_time=T).argmax(1)
                assert np.isclose(table.accuracy_pct["held", kind, k], 100 * (held == labels).double().mean().item())
                assert np.isclose(table.accuracy_pct["flash", kind, k], 100 * (flash == labels).double().mean().item())
                if kind == "image":
                    assert np.isclose(table.mask_class_pct["held", kind, k],
                                      100 * (held == mask_labels).double().mean().item())
    assert np.allclose(table.unmasked_accuracy_pct, 100 * unmasked)
    assert np.isclose(table.accuracy_pct["flash", "blank", T], 100 * unmasked)   # k = T: the ordinary run
    assert table.xs(T, level="stimulus_steps").groupby("presentation").accuracy_pct.nunique().eq(1).all()
    row = table.loc["held", "noise", 3]
    assert (row.duration_min_ms, row.duration_max_ms, row.latency_min_ms, row.latency_max_ms) == (60, 150, 100, 250)
    assert row.frames == "S S S M M" and table.loc["flash", "noise", 3].frames == "S - - M M"


@pytest.mark.parametrize("call, message", [
    (lambda: masking.check_durations([0, 1], 5), "shown for at least 1 step"),
    (lambda: masking.check_durations([1, 6], 5), "6 steps is longer than the run.*durations 1..5"),
    (lambda: masking.check_masks(["noise", "checkerboard"]), "unknown mask type 'checkerboard'"),
    (lambda: masking.check_presentations(["strobe"]), "unknown presentation 'strobe'"),
    (lambda: masking.frame_schedule(6, 5, "held"), "longer than the run"),
])
def test_bad_values_are_refused(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize("args, message", [
    (["--durations", "0", "1"], "shown for at least 1 step"),
    (["--durations", "6"], "stimulus duration 6 steps is longer than the run"),
    (["--masks", "blank", "checkerboard"], "unknown mask type 'checkerboard'"),
    (["--readout-time", "1"], "cannot be read out at t=1"),
    (["--limit", "0"], "--limit 0 must be at least 1"),
])
def test_command_refuses_in_one_line(args, message, tmp_path, capsys):
    assert_refuses(masking.main, args, message, tmp_path / "out", capsys)


@pytest.fixture(scope="module")
def masking_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("masking")
    checkpoint = tiny_checkpoint(root / "tiny.pt", readout_time=4)
    tiny_folder(root / "data")
    assert masking.main(["--model", str(checkpoint), "--data-root", str(root / "data"), "--out-dir",
                         str(root / "results"), "--no-progress"]) == 0
    return root / "results"


def test_command_writes_one_row_per_presentation_mask_and_duration(masking_results):
    table = pd.read_csv(masking_results / "masking.csv")
    assert len(table) == 2 * 3 * 4 and sorted(table.stimulus_steps.unique()) == [1, 2, 3, 4]
    assert table.readout_time.eq(4).all() and not table.beyond_trained_steps.any()
    assert not list(masking_results.glob("*.tmp"))


@pytest.mark.slow  # runs a notebook
def test_notebook_draws_the_figure(masking_results, tmp_path, monkeypatch):
    run_notebook(NOTEBOOK, masking_results, tmp_path / "out", monkeypatch)
    assert [p.name for p in (tmp_path / "out").glob("*.png")] == ["masking.png"]
    assert (tmp_path / "out" / "masking.png").stat().st_size > 5000


def test_notebook_names_the_command_when_results_are_missing(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"masking.csv is missing; make it with python -m analyses.masking"):
        run_notebook(NOTEBOOK, tmp_path / "empty", tmp_path / "out", monkeypatch)
