"""The Python API answers bad input with one clear error naming the fix."""
import pytest
import torch

import visrecur
from visrecur import InputError


def test_api_bad_input_is_one_clear_error():
    with pytest.raises(visrecur.SpecError, match="one width per state"):
        visrecur.build("frnn_4state_shared", channels=[8, 16])
    with pytest.raises(visrecur.SpecError, match="wrong type"):
        visrecur.build("frnn_4state_shared", channels=8)
    model = visrecur.build("frnn_2state_shared", channels=(2, 3), input_size=8)
    with pytest.raises(InputError, match="float64 but the model's weights are torch.float32"):
        model(torch.randn(1, 3, 8, 8, dtype=torch.float64))
    assert model.double()(torch.randn(1, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_spec_fields_are_zoo_overrides():
    model = visrecur.build("frnn_2state_shared", channels=(2, 3), input_size=8, beyond_trained="error")
    assert model.spec.beyond_trained == "error"
    assert all(n.beyond == "error" for norms in model.norms.values() for n in norms)
    with pytest.raises(visrecur.SpecError, match="not one of"):
        visrecur.build("frnn_2state_shared", beyond_trained="sometimes")
