"""Analyses on timed models: reaction times from BL-net's readout at every step (entropy threshold, as
Spoerer et al. 2020) against an independent computation, and one-line refusals where an analysis cannot
apply (TSBN decay, masking, readout-time sweeps; reaction times from a single readout)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from analyses import common, latency
from visrecur.errors import InputError
from visrecur.timed.reference import build
from visrecur.training import data


def _blnet():
    return build("blnet", input_size=64, widths=(4, 4, 8, 8, 8, 8, 8), num_classes=3, seed=2)


def test_blnet_reaction_times_from_an_entropy_threshold():
    model = _blnet()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 3, (12,), generator=gen)
    batches = data.TensorBatches(images, labels, 5, model.preprocess.mean, model.preprocess.std, train=False)
    times = list(range(8))
    thresholds = [0.9, 0.99, 0.999]
    tables = latency.latency_tables(model, batches, times, thresholds, "entropy", model.time_mapping or
                                    latency.DEFAULT_MAPPING, state="layer7")
    # independently: softmax of each step's logits, entropy in nats / log 3, first step at or below
    x = (images.float() / 255 - torch.tensor(model.preprocess.mean).view(3, 1, 1)) / \
        torch.tensor(model.preprocess.std).view(3, 1, 1)
    with torch.no_grad():
        logits = model.module(x)  # the plain module: a list of 8 readouts
    probs = torch.stack(logits, 1).double().softmax(-1).numpy()
    norm_entropy = entropy(probs, axis=-1) / np.log(3)
    rts = tables["reaction_times"]
    for threshold in thresholds:
        expected = [next((t for t in times if norm_entropy[i, t] <= threshold), None) for i in range(12)]
        got = rts[rts.threshold == threshold].sort_values("image")
        assert [None if np.isnan(v) else int(v) for v in got.rt_steps] == expected, threshold
        crossed = got[got.crossed]
        # ms of readout step t: the last area's step t, 20-50 ms per step by default
        np.testing.assert_allclose(crossed.rt_min_ms, 20.0 * crossed.rt_steps)
        np.testing.assert_allclose(crossed.rt_max_ms, 50.0 * crossed.rt_steps)
    accuracy = tables["accuracy"]
    assert accuracy.readout_time.tolist() == times  # first step 0 .. last step 7
    np.testing.assert_allclose(accuracy.accuracy_pct, 100 * (probs.argmax(-1) == labels.numpy()[:, None]).mean(0))


def test_reaction_times_refused_past_the_readouts_and_for_a_single_readout():
    model = _blnet()
    with pytest.raises(InputError, match="reads out at steps \\[0, 1, 2, 3, 4, 5, 6, 7\\], not at 8"):
        latency.check_timed_readouts(model, [6, 7, 8])  # one past the last
    single = build("cornet_z", input_size=64)
    with pytest.raises(InputError, match="reads out at one step only .* need readouts at several steps") as err:
        latency.check_timed_readouts(single, [3])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("module", "name", "phrase"), [("tsbn_decay", "blnet", "no time-specific batch norm"),
                                                        ("masking", "cornet_z", "takes one image per forward pass"),
                                                        ("readout_time", "blnet", "reads out at fixed steps")])
def test_analyses_that_cannot_apply_say_so_in_one_line(module, name, phrase, capsys):
    import importlib

    main = importlib.import_module(f"analyses.{module}").main
    assert main(["--model", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: analyses.{module} does not apply to {name}") and phrase in err[0]


def test_blnet_backward_masking_held_frames():
    from analyses import masking
    from visrecur.timed.reference.blnet import frame_model

    model = frame_model(_blnet())
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    table = masking.timed_masking_table(model, images, labels, [1, 4, 8], ["noise"], batch_size=4)
    assert table.stimulus_steps.tolist() == [1, 4, 8] and table.frames.tolist() == ["SMMMMMMM", "SSSSMMMM", "S" * 8]
    # independently: the plain BL-net module shown the stimulus (k = 8: no mask reaches readout step 7)
    x = (images.float() / 255 - torch.tensor(model.preprocess.mean).view(3, 1, 1)) / \
        torch.tensor(model.preprocess.std).view(3, 1, 1)
    with torch.no_grad():
        plain = model.modules_(x)[7].argmax(1)
    assert table.accuracy_pct.iloc[-1] == pytest.approx(100 * (plain == labels).double().mean().item())
    assert not table.mask_reaches_readout.iloc[-1] and table.mask_reaches_readout.iloc[0]
    with pytest.raises(InputError, match="only the held presentation applies"):
        masking.timed_masking_table(model, images, labels, [1], ["noise"], ["flash"])
    with pytest.raises(InputError, match="duration 9 steps is longer than the run: the readout at step 7 reads frames 0..7"):
        masking.timed_masking_table(model, images, labels, [9], ["noise"])  # one past the 8 frames


def test_load_models_takes_reference_names_only_where_asked():
    assert common.load_models(["cornet_z"], timed=True)["cornet_z"].areas == ("V1", "V2", "V4", "IT")
    with pytest.raises(InputError, match="analyses.x does not apply to cornet_z: y"):
        common.load_models(["cornet_z"], analysis="x", why="y")
