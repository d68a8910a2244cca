"""Analyses against hand-computed expectations."""
import numpy as np
import torch

from analyses.readout_time import readout_time_errors
from analyses.tsbn_decay import tsbn_statistics
from visrecur.architecture import zoo
from visrecur.training.data import TensorBatches


def test_tsbn_statistics_table():
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=4, input_size=8)
    model.train()
    model(torch.randn(8, 3, 8, 8) * 3 + 1)
    table = tsbn_statistics(model)
    # h1->h1 runs at t = 1, 2, 3; its two BNs see 2 channels each
    own = table[table.transition == "h1->h1"]
    assert sorted(own.time.unique()) == [1, 2, 3] and len(own) == 2 * 2 * 3
    # h2->h1 first runs at t = 2
    assert sorted(table[table.transition == "h2->h1"].time.unique()) == [2, 3]
    row = own[(own.bn_position == 0) & (own.channel == 1) & (own.time == 2)].iloc[0]
    assert row.running_mean == model.norms["h1->h1"][0].stats[2].running_mean[1].item()


def test_readout_time_errors_match_a_direct_count():
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).eval()
    images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (20,))
    batches = TensorBatches(images, labels, 7, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=False)
    table = readout_time_errors(model, batches, [2, 3, 5])
    x = (images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        for t in (2, 3, 5):
            expected = (model(x, readout_time=t).argmax(1) != labels).float().mean().item()
            assert np.isclose(table.set_index("readout_time").error[t], expected)
    assert table.beyond_trained_steps.tolist() == [False, False, True]
    assert table.latency_max_ms.tolist() == [100, 150, 250]


def test_readout_errors_name_the_borrowed_steps_per_readout_time():
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).train()
    model(torch.randn(16, 3, 8, 8), readout_time=[2, 3])  # transitions trained at 1, 2; post-net at 2, 3
    model.eval()
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    batches = TensorBatches(images, torch.randint(0, 10, (6,)), 6, (0.5,) * 3, (0.25,) * 3, train=False)
    table = readout_time_errors(model, batches, [2, 3, 4, 5]).set_index("readout_time")
    # readout 3 (the last trained) borrows nothing; readout 4 runs step 3 and reads the post-net at 4
    assert table.steps_with_borrowed_statistics.tolist() == ["none", "none", "3 4", "3 4 5"]
    assert table.beyond_trained_steps.tolist() == [False, False, True, True]
    assert readout_time_errors(model, batches, [4], trained_readout=5).beyond_trained_steps.tolist() == [False]


def test_calibration_batches_mix_classes_repeat_and_augment_as_training_does(tmp_path):
    """Recalibration averages each batch's variance: a batch must mix the classes (the folder gives them
    class by class), or the variance between classes is lost. Passes repeat the same batches; augmented
    ones show the zero padding of training's pad-4 crops."""
    from types import SimpleNamespace

    from analyses.common import calibration_batches
    from training_fixtures import colour_folder

    colours = [(200, 80, 80), (80, 200, 80), (80, 80, 200)]  # with the noise (+-30) never 0
    root = colour_folder(tmp_path, (("train", 100),), size=8, colours=colours)
    prep = SimpleNamespace(mean=(0.5,) * 3, std=(0.25,) * 3)  # what a model's preprocess gives
    plain, plain_name = calibration_batches(root, 300, prep)
    augmented, name = calibration_batches(root, 300, prep, augment=True)
    again, _ = calibration_batches(root, 300, prep, augment=True)
    assert (plain_name, name) == ("300 training images", "300 augmented training images")
    assert [len(b) for b in plain] == [128, 128, 44]
    for batch in plain:  # each image's class: its brightest channel; every batch holds all three
        assert set(batch.mean(dim=(2, 3)).argmax(1).tolist()) == {0, 1, 2}
    # the images as they are, normalised: each image's mean is its class colour's (noise averages out)
    expected = (torch.tensor(colours, dtype=torch.float32) / 255 - 0.5) / 0.25
    assert all((expected - m).abs().max(1).values.min() < 0.2 for m in torch.cat(plain).mean(dim=(2, 3)))
    assert all(torch.equal(a, b) for a, b in zip(augmented, again))
    zero = (0 - 0.5) / 0.25  # a padded pixel, normalised
    assert (torch.cat(augmented) == zero).any() and not (torch.cat(plain) == zero).any()
