"""``visrecur.record`` is the recording function under every name the documentation uses, before and after
``import visrecur.record`` (which makes the name a module), and gives the same recording each way."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import visrecur
from visrecur.errors import InputError


def _inputs():
    from visrecur.recording.stimuli import from_array

    model = visrecur.build("frnn_2state_shared", channels=(2, 3), input_size=8, readout_time=3)
    stimuli = from_array(np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8))
    return model, stimuli, visrecur.Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)


def test_every_documented_call_form_records_the_same():
    model, stimuli, preprocess = _inputs()
    forms = {
        "visrecur.record": lambda *a, **k: visrecur.record(*a, **k),
        "from visrecur import record": lambda *a, **k: __import__("visrecur", fromlist=["record"]).record(*a, **k),
        "import visrecur.record": lambda *a, **k: importlib.import_module("visrecur.record")(*a, **k),
        "visrecur.recording.record": lambda *a, **k: importlib.import_module("visrecur.recording").record(*a, **k),
    }
    results = {name: call(model, stimuli, preprocess=preprocess, progress=False) for name, call in forms.items()}
    first = results.pop("visrecur.recording.record")
    for name, ds in results.items():
        for state in ("h1", "h2"):
            np.testing.assert_array_equal(ds[state].values, first[state].values, err_msg=name)
    assert callable(visrecur.record) and callable(visrecur.record.main)


def test_the_callable_module_refuses_like_the_function():
    model, stimuli, preprocess = _inputs()
    with pytest.raises(InputError, match="states=\\[\\] would record nothing"):
        visrecur.record(model, stimuli, preprocess=preprocess, states=[])
    with pytest.raises(InputError, match="must be a visrecur model"):
        visrecur.record("frnn_2state_shared", stimuli)
