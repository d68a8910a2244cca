"""Time in the Brain-Score adapter against hand-computed expectations: zero-length bins are the instant
they name, bins past the last trained step are flagged per bin (first step, last trained step, first step
past it), per-state onsets and step durations, the CORnet-S preset read from the wheel, trials with
microsaccades, and images resized whole. Runs where brainscore-vision is installed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from test_brainscore_model import by_hand, standin_stimuli, tiny, trained
from visrecur.timing import TimeMapping

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stimuli(brainscore, tmp_path_factory):
    return standin_stimuli(tmp_path_factory.mktemp("stimuli"), "ababa")


@pytest.fixture(scope="module")
def adapter(brainscore):
    """The adjacent tiny model (IT from step 3) with statistics trained for steps 1..3: readout time 4."""
    from visrecur.brainscore import VisrecurBrainModel

    return VisrecurBrainModel(trained(tiny()), progress=False)


def test_zero_length_bins_are_the_instant_they_name(adapter, stimuli):
    """35 ms per step from 0: (0, 0) is step 0 (IT not reached: zeros, warned), (105, 105) the start of
    step 3 (IT's first), (139.9, 139.9) still step 3, (140, 140) step 4 (a boundary belongs to the later
    step); LAION's (0, 0) form, a list of one 0-d array of a tuple, is read the same."""
    from visrecur.brainscore import UnreachedStateWarning

    with pytest.warns(UnreachedStateWarning, match=r"\(0, 0\) ms hold zeros"):
        adapter.start_recording("IT", [(0, 0), (105, 105), (139.9, 139.9), (140, 140)])
    assembly = adapter.look_at(stimuli)
    seen, _ = by_hand(adapter.model, stimuli, "IT", until=4)
    expected = np.stack([np.zeros_like(seen[3]), seen[3], seen[3], seen[4]], axis=-1)
    np.testing.assert_allclose(assembly.values, expected, rtol=1e-5, atol=1e-6)
    assert assembly["time_bin_start"].values.tolist() == assembly["time_bin_end"].values.tolist()
    assert "(105, 105) ms <- step 3 x 1" in assembly.attrs["time_bin_steps"]
    squeezed = np.empty((), dtype=object)
    squeezed[()] = (0, 0)
    adapter.start_recording("V1", [squeezed])  # timebins_from_assembly on LAION's squeezed assembly
    np.testing.assert_allclose(adapter.look_at(stimuli).values[..., 0],
                               by_hand(adapter.model, stimuli, "V1", until=0)[0][0], rtol=1e-5, atol=1e-6)


def test_late_bins_are_flagged_per_bin_and_warned_once(adapter, stimuli):
    """Last trained step 3: a bin on step 0 (the first), one on step 3 (the last trained) and one on step
    4 (the first past it): only the last is past_trained, one warning for the call names it; the activity
    of step 4 is still the model's own."""
    from visrecur.brainscore import PastTrainedWarning

    assert adapter.last_trained == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapter.start_recording("V1", [(0, 35), (105, 140), (140, 175)])
    late = [w for w in caught if issubclass(w.category, PastTrainedWarning)]
    assert len(late) == 1
    assert "(140, 175) ms of state V1 take steps past the last trained step 3" in str(late[0].message)
    assembly = adapter.look_at(stimuli)
    assert assembly["past_trained"].values.tolist() == [False, False, True]
    seen, _ = by_hand(adapter.model, stimuli, "V1", until=4)
    np.testing.assert_allclose(assembly.values, np.stack([seen[0], seen[3], seen[4]], -1), rtol=1e-5, atol=1e-6)
    assert assembly.attrs["last_trained_step"] == 3
    assert "past the last trained step 3" in assembly.attrs["past_trained"]
    adapter.start_recording("V1", [(35, 140)])  # ends exactly where step 4 starts: not past
    assert adapter.look_at(stimuli)["past_trained"].values.tolist() == [False]


def test_late_bins_refused_when_asked(brainscore, stimuli):
    from visrecur.brainscore import PastTrainedError, VisrecurBrainModel

    model = VisrecurBrainModel(trained(tiny()), past_trained="refuse", progress=False)
    model.start_recording("IT", [(105, 140)])
    with pytest.raises(PastTrainedError, match=r"time bin\(s\) \(140, 141\) ms of state IT take steps past the last "
                                               r"trained step 3 .* refused as asked .* give bins ending by 140 ms"):
        model.start_recording("IT", [(105, 140), (140, 141)])


def test_per_state_onsets_and_step_durations(brainscore, stimuli):
    """V1 from 50 ms in 100 ms steps, IT from 100 ms in 20 ms steps (IT reached at its step 3, 160 ms):
    V1 (50, 150) is step 0, (150, 200) step 1; IT (70, 100) is before its step 0 (zeros, warned), (160,
    180) its step 3, (170, 190) half step 3 and half step 4."""
    from visrecur.brainscore import UnreachedStateWarning, VisrecurBrainModel

    mapping = TimeMapping((35, 35), state_onset_ms={"V1": 50, "IT": 100}, state_ms_per_step={"V1": 100, "IT": 20})
    model = VisrecurBrainModel(tiny(), time_mapping=mapping, progress=False)
    model.start_recording("V1", [(50, 150), (150, 200)])
    v1 = model.look_at(stimuli)
    seen, _ = by_hand(model.model, stimuli, "V1", until=1)
    np.testing.assert_allclose(v1.values, np.stack([seen[0], seen[1]], -1), rtol=1e-5, atol=1e-6)
    with pytest.warns(UnreachedStateWarning, match=r"\(70, 100\) ms hold zeros"):
        model.start_recording("IT", [(70, 100), (160, 180), (170, 190)])
    it = model.look_at(stimuli)
    seen, _ = by_hand(model.model, stimuli, "IT", until=4)
    expected = np.stack([np.zeros_like(seen[3]), seen[3], (seen[3] + seen[4]) / 2], -1)
    np.testing.assert_allclose(it.values, expected, rtol=1e-5, atol=1e-6)
    assert "state delays V1 +50 ms, IT +100 ms" in it.attrs["time_mapping"]


def test_cornet_s_preset_is_brainscores_table(brainscore, stimuli):
    """The preset reads CORnet-S's TIME_MAPPINGS from the installed wheel: V1 (50, 100, 1), V2 (70, 100, 2),
    V4 (90, 50, 4), IT (100, 100, 2). A region's step k in CORnet-S (its k-th output) is the state's step
    arrival + k: CORnet-S's own bins, region -> {k: (start + k w, start + (k + 1) w)}, are the preset's
    bins of those steps (adjacent tiny model: V1 from step 0, V2 1, V4 2, IT 3)."""
    from brainscore_vision.models.cornet_s.helpers.helpers import _build_time_mappings

    from visrecur.brainscore import VisrecurBrainModel
    from visrecur.brainscore.presets import cornet_s_time_table, preset_mapping

    table = cornet_s_time_table()
    assert table == {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4), "IT": (100, 100, 2)}
    arrivals = {"V1": 0, "V2": 1, "V4": 2, "IT": 3}
    mapping = preset_mapping("cornet-s", {r: r for r in arrivals}, arrivals)
    for region, steps in _build_time_mappings(table).items():
        ours = [arrivals[region] + k for k in sorted(steps)]
        assert mapping.bins(ours, region).tolist() == [list(steps[k]) for k in sorted(steps)]
    partial = preset_mapping("cornet-s", {"IT": "h3"})
    assert partial.state_onset_ms == {"h3": 100} and partial.state_ms_per_step == {"h3": (100, 100)}
    model = VisrecurBrainModel(tiny(), time_preset="cornet-s", progress=False)
    assert model.time_mapping == mapping
    model.start_recording("IT", [(100, 200)])  # CORnet-S's IT step 0: the model's first IT step
    np.testing.assert_allclose(model.look_at(stimuli).values[..., 0], by_hand(model.model, stimuli, "IT", 3)[0][3],
                               rtol=1e-5, atol=1e-6)


def test_trials_without_variance_are_one_pass_and_with_it_microsaccades(adapter, stimuli):
    """number_of_trials alone: one presentation per stimulus (a deterministic model's trials are equal).
    require_variance: number_of_trials presentations per stimulus, stimulus after stimulus; trial 0
    unshifted, trial k shifted by sqrt(k / n) of 0.05 degrees (in pixels of the 8-px input at 8 degrees)
    on Brain-Score's spiral, so the trials differ."""
    adapter.start_recording("V1", [(0, 35)])
    once = adapter.look_at(stimuli)
    same = adapter.look_at(stimuli, number_of_trials=4)
    np.testing.assert_array_equal(same.values, once.values)
    varied = adapter.look_at(stimuli, number_of_trials=4, require_variance=True)
    assert varied.sizes["presentation"] == 20
    assert varied["stimulus_id"].values[:5].tolist() == ["id0"] * 4 + ["id1"]
    x, y = varied["microsaccade_shift_x_pixels"].values[:4], varied["microsaccade_shift_y_pixels"].values[:4]
    radius = 0.05 / 8 * 8
    np.testing.assert_allclose(np.hypot(x, y), [np.sqrt(k / 4) * radius for k in range(4)], atol=1e-12)
    np.testing.assert_allclose(varied.values[::4], once.values, rtol=1e-6)  # trial 0 of every stimulus
    assert not np.allclose(varied.values[1::4], once.values)  # a shifted input: different activity
    np.testing.assert_allclose(varied["microsaccade_shift_x_degrees"].values[:4], x / (8 / 8), atol=1e-12)  # 1 px/deg


def test_non_square_images_are_resized_whole(brainscore, tmp_path):
    """A 3:1 image black | white | red: resized whole (Brain-Score's default preprocessing, the
    adapter's default), all three thirds reach the model; centre-cropped, only the white middle. V1 at
    step 0 equals the observer on the stretched input and differs from the crop's."""
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    from visrecur.brainscore import VisrecurBrainModel
    from visrecur.recording.preprocess import Preprocess

    pixels = np.zeros((8, 24, 3), dtype=np.uint8)
    pixels[:, 8:16] = 255
    pixels[:, 16:, 0] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    wide = StimulusSet({"stimulus_id": ["wide"]})
    wide.stimulus_paths, wide.identifier = {"wide": tmp_path / "wide.png"}, "wide"
    model = tiny()
    stretch = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3, fit="stretch")
    crop = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)
    image = stretch(Image.open(tmp_path / "wide.png").convert("RGB"))
    assert image[0, :, 0].max() < 0 and image[1, :, 4].min() > 0 and image[0, :, 7].min() > 0  # black, white, red
    assert (crop(Image.open(tmp_path / "wide.png").convert("RGB")) > 0).all()  # the white middle only
    adapter = VisrecurBrainModel(model, progress=False)
    adapter.start_recording("V1", [(0, 35)])
    recorded = adapter.look_at(wide).values[..., 0]
    np.testing.assert_allclose(recorded, by_hand(model, wide, "V1", 0, stretch)[0][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(recorded, by_hand(model, wide, "V1", 0, crop)[0][0])
    assert "resized as a whole" in adapter.look_at(wide).attrs["preprocessing"]
    cropping = VisrecurBrainModel(model, image_fit="crop", progress=False)
    cropping.start_recording("V1", [(0, 35)])
    np.testing.assert_allclose(cropping.look_at(wide).values[..., 0], by_hand(model, wide, "V1", 0, crop)[0][0],
                               rtol=1e-5, atol=1e-6)
