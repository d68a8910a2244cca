"""VisrecurBrainModel and the plugin with timed models (visrecur.timed): areas are regions, each area's
steps become time bins through its own TimeMapping (CORnet-S: Brain-Score's table), the activity is the
model's own (taken by an observer), a bin needing a step the area does not run is one line, and the
label task reads the readout at its step. Runs where brainscore-vision is installed."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from visrecur.timed import reference

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 32


@pytest.fixture(scope="module")
def stimuli(brainscore, tmp_path_factory):
    from test_brainscore_model import standin_stimuli

    return standin_stimuli(tmp_path_factory.mktemp("stimuli"), "abab")


def small(name):
    return reference.build(name, 0, input_size=SIZE)


def by_hand(model, stimuli, area):
    """{step: (presentation, neuroid) activity} of ``area`` and {step: logits}, by the model's observer,
    the images resized whole (Brain-Score's convention)."""
    from visrecur.recording.images import open_image

    preprocess = dataclasses.replace(model.preprocess, fit="stretch")
    images = torch.stack([preprocess(open_image(stimuli.get_stimulus(i)).convert("RGB"))
                          for i in stimuli["stimulus_id"]])
    seen = {}
    with torch.no_grad():
        logits = model.run(images, lambda name, t, x: seen.__setitem__(t, x.reshape(len(x), -1).numpy().copy())
                           if name == area else None)
    return seen, {t: v.numpy() for t, v in logits.items()}


def adapter_for(model, **options):
    from visrecur.brainscore import VisrecurBrainModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained weights
        return VisrecurBrainModel(model, progress=False, **options)


@pytest.mark.slow
def test_cornet_s_bins_from_brainscores_table(stimuli):
    """CORnet-S with its own mapping (Brain-Score's table: IT from 100 ms, 100 ms per step, 2 steps):
    (100, 200) is IT's step 0, (150, 250) half step 0 and half step 1; V4 (from 90 ms, 50 ms per step,
    4 steps): (190, 240) is step 2. A bin needing IT's step 2 is refused in one line."""
    from visrecur.timing import TimeMappingError

    model = small("cornet_s")
    adapter = adapter_for(model)
    assert adapter.region_states == {"V1": "V1", "V2": "V2", "V4": "V4", "IT": "IT"}
    assert adapter.time_mapping == reference.cornet_s_time_mapping()
    adapter.start_recording("IT", [(100, 200), (150, 250)])
    assembly = adapter.look_at(stimuli)
    seen, _ = by_hand(model, stimuli, "IT")
    assert sorted(seen) == [0, 1]
    np.testing.assert_allclose(assembly.values, np.stack([seen[0], (seen[0] + seen[1]) / 2], -1), rtol=1e-5,
                               atol=1e-6)
    adapter.start_recording("V4", [(190, 240)])
    v4, _ = by_hand(model, stimuli, "V4")
    np.testing.assert_allclose(adapter.look_at(stimuli).values[..., 0], v4[2], rtol=1e-5, atol=1e-6)
    with pytest.raises(TimeMappingError, match=r"needs model step 2 .* runs steps up to 1 \(area IT of cornet_s "
                                               r"runs steps 0\.\.1\)"):
        adapter.start_recording("IT", [(250, 350)])


def test_time_equals_depth_areas_arrive_at_their_depth(stimuli):
    """CORnet-Z (time = depth) under the default mapping, 35 ms per step from 0: V2 runs step 1 only,
    so (35, 70) is its step-1 activity, (0, 35) holds zeros (warned), and (70, 105) needs a step it
    does not run: refused."""
    from visrecur.brainscore import UnreachedStateWarning
    from visrecur.timing import TimeMappingError

    model = small("cornet_z")
    adapter = adapter_for(model)
    assert [adapter._arrival(a) for a in adapter.states] == [0, 1, 2, 3]
    with pytest.warns(UnreachedStateWarning, match=r"V2 is not reached before step 1"):
        adapter.start_recording("V2", [(0, 35), (35, 70)])
    assembly = adapter.look_at(stimuli)
    seen, _ = by_hand(model, stimuli, "V2")
    np.testing.assert_allclose(assembly.values, np.stack([np.zeros_like(seen[1]), seen[1]], -1), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(TimeMappingError, match="area V2 of cornet_z runs steps 1..1"):
        adapter.start_recording("V2", [(70, 105)])


def test_readout_and_features_at_the_readout_step(stimuli):
    """BL-net reads out at every step: the label task reads the readout at the chosen step T (the last
    area at its step T, no extra step), and behaviour's default features are the last area at T."""
    from visrecur.errors import TimeStepError
    from visrecur.timed import TimedModelError

    model = reference.build("blnet", 0, input_size=64, num_classes=10, steps=3, widths=(8, 8, 8, 8, 8, 8, 16))
    adapter = adapter_for(model, readout_time=1)
    assert adapter.readout_time == 1
    assert (adapter.features.state, adapter.features.step) == ("layer7", 1)
    logits, _ = adapter._logits(stimuli)
    _, by_step = by_hand(model, stimuli, "layer7")
    np.testing.assert_allclose(logits, by_step[1], rtol=1e-5, atol=1e-6)
    assert adapter._classes() == [str(k) for k in range(10)]
    assert adapter_for(model).readout_time == 2  # default: the last readout step
    with pytest.raises(TimeStepError, match="reads out at steps \\[0, 1, 2\\], not at 3"):
        adapter_for(model, readout_time=3)
    assert TimedModelError  # the protocol's own errors stay one line too


@pytest.mark.slow
def test_plugin_for_a_reference_architecture(brainscore, tmp_path):
    """python -m visrecur.brainscore plugin --model cornet_s: the folder names the model by its reference
    name (built at random initialisation, seed 0), with Brain-Score's CORnet-S table as its mapping."""
    from visrecur.brainscore.plugin import write_plugin

    out = write_plugin("cornet_s", tmp_path / "visrecur_cornet_s", git_url="https://example.org/visrecur.git",
                       git_commit="0123456789abcdef0123456789abcdef01234567")
    model_py = (out / "model.py").read_text()
    assert "MODEL = 'cornet_s'" in model_py
    assert "state_onset_ms={'V1': 50.0, 'V2': 70.0, 'V4': 90.0, 'IT': 100.0}" in model_py
    assert "'readout_time': 1" in model_py and "'behavior_step': 1" in model_py
    assert not (out / "weights.pt").exists()
    metadata = (out / "metadata.yaml").read_text()
    assert "random initialisation" in metadata and "CORnet" in metadata
