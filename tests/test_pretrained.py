"""The shipped pretrained models: loadable by name, stride-2 resampling, and still as accurate as the
measurement stored beside them (the fixed test images its .json names, 1,000 or 500 for the large
3-state FRNN; within 1.5 points at every readout time)."""

import pytest

import visrecur
from visrecur import CheckpointError
from visrecur.artifacts.checkpoint import PRETRAINED
from visrecur.training.evaluate import subset_errors
from visrecur.artifacts.io import data_root

CIFAR = data_root() / "cifar10-jpeg"


def test_the_default_is_loadable_by_name_and_without_one():
    assert "frnn_4state_cifar10" in visrecur.list_pretrained()
    by_name, default = visrecur.load("frnn_4state_cifar10"), visrecur.load()
    assert by_name.spec.to_dict() == default.spec.to_dict()
    assert by_name.spec.graph.resampling == "stride2"
    assert [s.name for s in by_name.spec.graph.states] == ["V1", "V2", "V4", "IT"]
    with pytest.raises(CheckpointError, match="does not exist"):
        visrecur.load("frnn_9state_cifar10")


@pytest.mark.slow  # evaluates on CIFAR-10 test images
@pytest.mark.parametrize("name", visrecur.list_pretrained())
def test_shipped_weights_keep_their_stored_accuracy(name):
    if not CIFAR.is_dir():
        pytest.skip(f"{CIFAR} (the shared CIFAR-10 JPEG set) is not here")
    stored = PRETRAINED[name].metrics  # the measurement kept beside the file
    model = visrecur.load(name)
    measured = subset_errors(model, CIFAR, stored["test_images"])
    assert sorted(measured) == sorted(int(t) for t in stored["top1_error"])
    for t, error in measured.items():
        assert abs(error - stored["top1_error"][str(t)]) <= 0.015, (name, t, error)
