"""VisrecurBrainModel against hand-computed expectations: the activity of each bin is the model's own
activity (taken by an observer, not through the recording) at the steps the bin overlaps, weighted by
hand; Brain-Score's own time alignment accepts the assembly. Runs where brainscore-vision is installed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from visrecur import Preprocess
from visrecur.architecture import zoo
from visrecur.timing import TimeMapping, TimeMappingError

IT_ARRIVAL = 3  # adjacent-only 4-state FRNN: V1 at 0, V2 at 1, V4 at 2, IT at 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(name="frnn_4state_adjacent_shared", channels=(2, 3, 4, 5), input_size=8, **overrides):
    torch.manual_seed(0)
    model = zoo.build(name, channels=channels, readout_time=4, input_size=input_size, **overrides).eval()
    model.preprocess = Preprocess((input_size, input_size), (0.5,) * 3, (0.25,) * 3)
    return model


def standin_stimuli(folder, labels, identifier="visrecur-test-stimuli", **columns):
    """A Brain-Score StimulusSet of len(labels) non-square (12 x 10) noise images written to ``folder``."""
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    rng = np.random.default_rng(0)
    for k in range(len(labels)):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(folder / f"s{k}.png")
    stimuli = StimulusSet({"stimulus_id": [f"id{k}" for k in range(len(labels))], "image_label": list(labels),
                           "filename": [f"s{k}.png" for k in range(len(labels))], **columns})
    stimuli.stimulus_paths = {f"id{k}": folder / f"s{k}.png" for k in range(len(labels))}
    stimuli.identifier = identifier
    return stimuli


@pytest.fixture(scope="module")
def stimuli(brainscore, tmp_path_factory):
    return standin_stimuli(tmp_path_factory.mktemp("stimuli"), "ababa", size_px=[12] * 5)


def trained(model, readout_time=4):
    """``model`` with TSBN statistics estimated for steps 1..readout_time - 1 (its last trained step)."""
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, *model.spec.input_size, generator=torch.Generator().manual_seed(1)),
              readout_time=readout_time)
    return model.eval()


def by_hand(model, stimuli, state, until, preprocess=None):
    """{step: (presentation, neuroid) activity} of ``state``, from the model's observer directly, the
    images resized whole (Brain-Score's convention, the adapter's default) unless ``preprocess`` says."""
    import dataclasses

    from visrecur.recording.images import open_image

    preprocess = preprocess or dataclasses.replace(model.preprocess, fit="stretch")
    images = torch.stack([preprocess(open_image(stimuli.get_stimulus(i)).convert("RGB"))
                          for i in stimuli["stimulus_id"]])
    seen = {}
    with torch.no_grad():
        logits = model(images, readout_time=[model.spec.readout_time], until=until,
                       observer=lambda name, t, x: seen.__setitem__(t, x.reshape(len(x), -1).numpy().copy())
                       if name == state else None)
    return seen, logits[model.spec.readout_time].numpy()


@pytest.fixture(scope="module")
def adapter(brainscore):
    from visrecur.brainscore import VisrecurBrainModel

    return VisrecurBrainModel(tiny(), progress=False)


def test_bins_are_steps_weighted_by_overlap(adapter, stimuli):
    """Default mapping: 35 ms per step from 0 ms. (0, 35) = step 0 and (35, 105) = steps 1, 2 are before
    IT arrives (zeros, with a warning naming both bins); (105, 140) = step 3, the first IT step, exactly;
    (140, 200) = 35/60 of step 4 + 25/60 of step 5, the step past the readout time."""
    from visrecur.brainscore import UnreachedStateWarning

    bins = [(0, 35), (35, 105), (105, 140), (140, 200)]
    with pytest.warns(UnreachedStateWarning, match=r"IT is not reached before step 3 .*\(0, 35\), \(35, 105\) ms"):
        adapter.start_recording("IT", bins)
    assembly = adapter.look_at(stimuli)
    seen, _ = by_hand(adapter.model, stimuli, "IT", until=5)
    assert min(seen) == IT_ARRIVAL and max(seen) == 5
    expected = np.stack([np.zeros_like(seen[3]), np.zeros_like(seen[3]), seen[3],
                         (35 * seen[4] + 25 * seen[5]) / 60], axis=-1)
    assert assembly.dims == ("presentation", "neuroid", "time_bin")
    np.testing.assert_allclose(assembly.values, expected, rtol=1e-5, atol=1e-6)
    assert not np.isnan(assembly.values).any()
    assert list(assembly.indexes["time_bin"].names) == ["time_bin_start", "time_bin_end"]
    assert assembly["time_bin_start"].values.tolist() == [0, 35, 105, 140]
    assert assembly["time_bin_end"].values.tolist() == [35, 105, 140, 200]
    assert {"neuroid_id", "region", "state", "channel", "y", "x"} <= set(assembly.indexes["neuroid"].names)
    assert set(assembly["region"].values) == {"IT"} and assembly.sizes["neuroid"] == 5  # IT is 1x1x5 here
    assert assembly["stimulus_id"].values.tolist() == [f"id{k}" for k in range(5)]
    assert assembly["image_label"].values.tolist() == list("ababa") and (assembly["size_px"].values == 12).all()
    assert "(140, 200) ms <- step 4 x 0.583, step 5 x 0.417" in assembly.attrs["time_bin_steps"]


def test_brainscores_own_time_alignment_accepts_the_assembly(adapter, stimuli):
    """Brain-Score's assembly_time_align asserts the time_bin levels (exactly start and end: past_trained
    is a plain coordinate); re-binning to the same bins gives the same values, and to their union the
    overlap-weighted mean."""
    from brainscore_vision.model_helpers.brain_transformation.temporal import assembly_time_align

    adapter.start_recording("V1", [(0, 35), (35, 70)])
    assembly = adapter.look_at(stimuli)
    same = assembly_time_align(assembly, [(0, 35), (35, 70)])
    np.testing.assert_allclose(same.transpose(*assembly.dims).values, assembly.values, rtol=1e-6)
    assert assembly["past_trained"].values.tolist() == [False, False]  # a plain coordinate, not an index level
    union = assembly_time_align(assembly.drop_vars("past_trained"), [(0, 70)])  # other bins: without the flag
    np.testing.assert_allclose(union.values[..., 0], assembly.values.mean(-1), rtol=1e-5, atol=1e-7)


def test_regions_map_to_states_by_name_or_explicitly(brainscore, stimuli):
    from visrecur.brainscore import RegionError, VisrecurBrainModel

    default = VisrecurBrainModel(tiny(), progress=False)
    assert default.region_states == {"V1": "V1", "V2": "V2", "V4": "V4", "IT": "IT"}
    explicit = VisrecurBrainModel(tiny(), region_states={"IT": "V4"}, progress=False)
    explicit.start_recording("IT", [(70, 105)])  # V4 arrives at step 2 = [70, 105)
    assembly = explicit.look_at(stimuli)
    seen, _ = by_hand(explicit.model, stimuli, "V4", until=2)
    np.testing.assert_allclose(assembly.values[..., 0], seen[2], rtol=1e-5, atol=1e-6)
    assert set(assembly["state"].values) == {"V4"} and set(assembly["region"].values) == {"IT"}
    with pytest.raises(RegionError, match=r"region 'V1' has no model state mapped to it \(mapped: IT->V4\)"):
        explicit.start_recording("V1", [(0, 35)])
    with pytest.raises(RegionError, match="mapped to state 'LGN', which this model does not have"):
        VisrecurBrainModel(tiny(), region_states={"V1": "LGN"}, progress=False)


def test_onset_and_step_width_come_from_the_time_mapping(brainscore, stimuli):
    """TimeMapping((20, 20), onset_ms=50): step t covers [50 + 20 t, 70 + 20 t). (40, 60) overlaps step 0
    only (10 ms; the 10 ms before onset are covered by no step): step 0 alone; (60, 90) overlaps step 0
    by 10 ms and step 1 by 20 ms: 1/3 and 2/3."""
    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny(), time_mapping=TimeMapping((20, 20), onset_ms=50), progress=False)
    model.start_recording("V1", [(40, 60), (60, 90)])
    assembly = model.look_at(stimuli)
    seen, _ = by_hand(model.model, stimuli, "V1", until=1)
    np.testing.assert_allclose(assembly.values[..., 0], seen[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(assembly.values[..., 1], seen[0] / 3 + 2 * seen[1] / 3, rtol=1e-5, atol=1e-6)
    assert "20 ms per step, step 0 at 50 ms" in assembly.attrs["time_mapping"]


def test_the_last_runnable_step_and_the_one_past_it(brainscore, stimuli):
    """A time-variant model built for readout 5 has weights for steps 0..4: a bin ending at 175 ms needs
    step 4 (its last), one ending at 176 ms step 5, which it cannot run."""
    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny("frnn_4state_adjacent_unshared", time_steps=5), progress=False)
    assert model.max_step == 4
    model.start_recording("IT", [(140, 175)])
    seen, _ = by_hand(model.model, stimuli, "IT", until=4)
    np.testing.assert_allclose(model.look_at(stimuli).values[..., 0], seen[4], rtol=1e-5, atol=1e-6)
    with pytest.raises(TimeMappingError, match=r"time bin \(140, 176\) ms needs model step 5 .* runs steps up to 4 "
                                               r"\(a time-variant model .*\); give bins ending by 175 ms"):
        model.start_recording("IT", [(140, 176)])
    limited = VisrecurBrainModel(tiny(), max_step=2, progress=False)
    with pytest.raises(TimeMappingError, match=r"runs steps up to 2 \(max_step=2\)"):
        limited.start_recording("V1", [(0, 106)])


def features_by_hand(model, stimuli, state="IT", step=3):
    """The default behavioural features: ``state`` at ``step`` (readout time 4 - 1), mean over space."""
    seen, _ = by_hand(model, stimuli, state, until=step)
    channels = model.spec.graph.state(state).channels
    return seen[step].reshape(len(seen[step]), channels, -1).mean(-1).astype(np.float64)


def test_label_reads_the_readout_pooled_as_brainscores_labelbehavior(brainscore, stimuli):
    """label over given labels: softmax over all classes, pooled within each label by mean or max, the
    largest taken; two classes named 'a' make mean and max differ. Labels come as Brain-Score's
    LabelBehavior gives them: choice x presentation with a 'label' coord."""
    from visrecur.artifacts.models import ModelSource
    from visrecur.brainscore import VisrecurBrainModel

    source = ModelSource(tiny(), "tiny", trained=True, classes=("a", "a", "b", "c", "d", "e", "f", "g", "h", "i"))
    model = VisrecurBrainModel(source, progress=False)
    _, logits = by_hand(model.model, stimuli, "V1", until=0)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    for aggregation, pool in (("mean", np.mean), ("max", np.max)):
        model.start_task("label", ["b", "a"], aggregation=aggregation)
        labels = model.look_at(stimuli, number_of_trials=1)
        pooled = np.stack([p[:, 2], pool(p[:, :2], axis=1)], axis=1)
        assert labels.dims == ("choice", "presentation")
        assert labels.values[0].tolist() == [["b", "a"][k] for k in pooled.argmax(1)]
        assert labels["label"].values.tolist() == labels.values[0].tolist()
        assert labels["stimulus_id"].values.tolist() == [f"id{k}" for k in range(5)]
    model.start_task("label")  # the model's own classes: its argmax
    assert model.look_at(stimuli).values[0].tolist() == [source.classes[k] for k in logits.argmax(1)]


def test_probabilities_fit_brainscores_classifier_on_the_features(brainscore, stimuli):
    """probabilities: Brain-Score's ProbabilitiesMapping on the last state at the step the readout reads,
    pooled over space; equal to StandardScaler + multinomial logistic regression (newton-cg, C = 1e-3)
    fitted here on features taken by the observer. A fitted label is its most probable choice."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny(), progress=False)
    assert (model.features.state, model.features.step, model.features.reduction) == ("IT", 3, "mean")
    model.start_task("probabilities", fitting_stimuli=stimuli)
    probabilities = model.look_at(stimuli, number_of_trials=1)
    features = features_by_hand(model.model, stimuli)
    scaler = StandardScaler().fit(features)
    targets = [["a", "b"].index(v) for v in stimuli["image_label"]]
    with warnings.catch_warnings():  # sklearn 1.5 deprecates the multi_class Brain-Score sets
        warnings.simplefilter("ignore", FutureWarning)
        fit = LogisticRegression(multi_class="multinomial", solver="newton-cg", C=1e-3)
        fit.fit(scaler.transform(features), targets)
    assert probabilities.dims == ("presentation", "choice") and probabilities["choice"].values.tolist() == ["a", "b"]
    expected = fit.predict_proba(scaler.transform(features))
    np.testing.assert_allclose(probabilities.values, expected, rtol=1e-4, atol=1e-6)
    model.start_task("label", stimuli)
    fitted = model.look_at(stimuli)
    assert fitted.values[0].tolist() == [["a", "b"][k] for k in probabilities.values.argmax(1)]
    other = VisrecurBrainModel(tiny(), behavior_state="V4", behavior_step=2, progress=False)
    other.start_task("probabilities", stimuli)
    assert other.look_at(stimuli).sizes["choice"] == 2
    assert other.features.describe() == "state V4 at step 2, reduction mean"


def test_odd_one_out_is_the_stimulus_outside_the_most_similar_pair(brainscore, stimuli):
    """Hebart2023's triplets: dot products of the same features; the odd one is the stimulus outside the
    most similar pair, as Brain-Score's OddOneOut chooses it."""
    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny(), progress=False)
    model.start_task("odd_one_out")
    order = [0, 1, 2, 3, 4, 0, 2, 4, 1]
    triplets = stimuli.iloc[order].reset_index(drop=True)
    triplets.stimulus_paths, triplets.identifier = stimuli.stimulus_paths, None
    choices = model.look_at(triplets, 1)  # Hebart2023 passes number_of_trials positionally
    features = features_by_hand(model.model, stimuli)
    expected = []
    for i, j, k in np.array(order).reshape(-1, 3):
        similarity = [features[i] @ features[j], features[i] @ features[k], features[j] @ features[k]]
        expected.append(f"id{[k, j, i][int(np.argmax(similarity))]}")
    assert choices.dims == ("choice", "presentation") and choices.values[0].tolist() == expected
    from visrecur.brainscore import TaskError

    with pytest.raises(TaskError, match="are not whole triplets"):
        model.look_at(triplets.iloc[:4])


def test_passive_and_visual_degrees(brainscore, stimuli):
    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny(), progress=False)
    model.start_task("passive")
    assert model.look_at(stimuli) is None  # passive with nothing recorded
    assert model.visual_degrees() == 8 and VisrecurBrainModel(tiny(), visual_degrees=10).visual_degrees() == 10


def test_warning_free_when_every_bin_is_after_arrival(adapter):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter.start_recording("IT", [(105, 175)])
