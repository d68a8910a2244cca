"""Recording timed models (visrecur.timed) in the recording schema: per-area steps on the one time dim,
NaN where an area does not run, per-area ms from the TimeMapping; in memory, .nc and .zarr, resume."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import visrecur
from visrecur.artifacts.recordings import open_recording, state_array
from visrecur.errors import TimeStepError
from visrecur.recording.preprocess import Preprocess
from visrecur.recording.stimuli import from_array
from visrecur.timed import adapt
from visrecur.timing import TimeMapping

PRE = Preprocess((8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
# area A runs once, B three times (on half the size), a readout after each of B's steps
MAPPING = TimeMapping(30.0, 10.0, {"A": 0.0, "B": 40.0}, {"A": 30.0, "B": (10.0, 20.0)})


class TwoAreas(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, stride=1, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = nn.functional.avg_pool2d(h, 2)
        outputs = []
        for _ in range(3):
            h = torch.tanh(self.b(h))
            outputs.append(self.head(h.mean((2, 3))))
        return outputs


def _model():
    torch.manual_seed(0)
    net = TwoAreas().eval()
    return net, adapt(net, areas={"A": "a", "B": "b"}, readout="head", preprocess=PRE, time_mapping=MAPPING,
                      name="two_areas")


def _stimuli(n=5):
    return from_array(np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), name="noise")


def _expected(net, stimuli):
    """Hand unroll: A's conv at step 0; B's conv at steps 0, 1, 2; logits after each."""
    x = torch.stack([PRE(stimuli.image(i)) for i in range(len(stimuli))])
    with torch.no_grad():
        a = net.a(x)
        h = nn.functional.avg_pool2d(torch.relu(a), 2)
        b, logits = [], []
        for _ in range(3):
            pre = net.b(h)
            h = torch.tanh(pre)
            b.append(pre)
            logits.append(net.head(h.mean((2, 3))))
    return a.numpy(), np.stack([v.numpy() for v in b], 1), np.stack([v.numpy() for v in logits], 1)


def test_adapted_module_recorded_in_memory_per_area_steps_and_ms():
    net, model = _model()
    stimuli = _stimuli()
    ds = visrecur.record(model, stimuli, progress=False, batch_size=2)
    a, b, logits = _expected(net, stimuli)
    assert list(ds.time.values) == [0, 1, 2] and list(ds.state.values) == ["A", "B"]
    assert ds["A"].dims == ("stimulus", "time", "A_channel", "A_y", "A_x")
    # A runs at step 0 only: NaN at 1 and 2; B at 0, 1, 2 (pre-activation of its conv, the hooked module)
    np.testing.assert_allclose(ds["A"].values[:, 0], a, rtol=0, atol=1e-6)
    assert np.isnan(ds["A"].values[:, 1:]).all()
    np.testing.assert_allclose(ds["B"].values, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds["logits"].values, logits, rtol=0, atol=1e-5)
    assert list(ds.readout_time.values) == [0, 1, 2]
    assert ds["state_runs"].values.tolist() == [[1, 0, 0], [1, 1, 1]]
    # ms: A step 0 at onset 10 + 0; B step k at 10 + 40 + k * (10..20); none where an area does not run
    low, high = ds.latency_min_ms.values, ds.latency_max_ms.values
    assert low[0, 0] == high[0, 0] == 10.0 and np.isnan(low[0, 1:]).all()
    assert low[1].tolist() == [50.0, 60.0, 70.0] and high[1].tolist() == [50.0, 70.0, 90.0]
    assert ds.readout_latency_min_ms.values.tolist() == [50.0, 60.0, 70.0]  # a readout reads B at its step
    v = state_array(ds, "A")
    assert np.isnan(v.latency_min_ms.values[1:]).all() and v.latency_min_ms.values[0] == 10.0
    # a user's module is taken as trained unless it says otherwise; the reference models say they are not
    assert ds.attrs["model_kind"] == "adapted" and ds.attrs["trained"] == "yes" and not ds.attrs["warning"]


def test_chosen_steps_first_last_and_one_past():
    _, model = _model()
    ds = visrecur.record(model, _stimuli(2), times=[0, 2], states=["B"], progress=False)
    assert list(ds.time.values) == [0, 2] and not np.isnan(ds["B"].values).any()
    with pytest.raises(TimeStepError, match="step 3 is past the last step of every recorded area .*B 0..2"):
        visrecur.record(model, _stimuli(2), times=[0, 3], progress=False)
    with pytest.raises(TimeStepError, match="reads out at steps \\[0, 1, 2\\], not at 3"):
        visrecur.record(model, _stimuli(2), readout_time=3, progress=False)
    ds = visrecur.record(model, _stimuli(2), readout_time=1, progress=False)
    assert list(ds.readout_time.values) == [0, 1]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_adapted_module_written_and_resumed_like_an_frnn_recording(tmp_path, suffix):
    _, model = _model()
    stimuli = _stimuli(5)
    memory = visrecur.record(model, stimuli, progress=False, reduction="mean", batch_size=2)
    out = tmp_path / f"rec{suffix}"
    with pytest.raises(KeyboardInterrupt):  # a batch at a time: an interrupted run leaves a partial store
        visrecur.record(model, stimuli, out, batch_size=2, progress=False, reduction="mean", stop_after_batches=1)
    visrecur.record(model, stimuli, out, batch_size=2, progress=False, reduction="mean", resume=True)
    with open_recording(out) as ds:
        for var in ("A", "B", "logits", "probabilities"):
            np.testing.assert_array_equal(ds[var].values, memory[var].values)
        assert ds["state_runs"].values.tolist() == [[1, 0, 0], [1, 1, 1]]
        assert TimeMapping.from_dict(__import__("json").loads(ds.attrs["time_mapping"])) == MAPPING


def test_reference_blnet_records_a_readout_at_every_step():
    from visrecur.timed.reference import build

    model = build("blnet", input_size=64, widths=(4, 4, 4, 4, 4, 4, 4), num_classes=3)
    ds = visrecur.record(model, _stimuli(2), progress=False, reduction="mean")
    assert list(ds.readout_time.values) == list(range(8)) and list(ds.time.values) == list(range(8))
    np.testing.assert_allclose(ds["probabilities"].sum("class").values, 1, atol=1e-6)
    assert ds.latency_min_ms.values[-1].tolist() == [20.0 * t for t in range(8)]  # the default 20-50 ms


@pytest.mark.slow
def test_record_command_with_a_reference_model(tmp_path):
    out = tmp_path / "cornet_s.nc"
    run = subprocess.run([sys.executable, "-m", "visrecur.record", "--model", "cornet_s", "--stimuli", "builtin",
                          "--limit", "2", "--reduction", "mean", "--output", str(out), "--no-progress"],
                         check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    with open_recording(out) as ds:
        assert list(ds.state.values) == ["V1", "V2", "V4", "IT"] and list(ds.time.values) == [0, 1, 2, 3]
        assert ds["state_runs"].values.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
        # Brain-Score's CORnet-S table: V4 steps start at 90 ms, 50 ms apart
        assert ds.latency_min_ms.sel(state="V4").values.tolist() == [90.0, 140.0, 190.0, 240.0]
        assert np.isnan(ds["IT"].values[:, 2:]).all() and not np.isnan(ds["IT"].values[:, :2]).any()
    bad = subprocess.run([sys.executable, "-m", "visrecur.record", "--model", "cornet_s", "--times", "4",
                          "--limit", "1", "--output", str(tmp_path / "x.nc")], check=False, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: step 4 is past")
    assert "Traceback" not in bad.stderr


def test_load_model_resolves_reference_names_and_leaves_zoo_names_alone():
    from visrecur.artifacts.models import load_model
    from visrecur.nn.model import FRNN
    from visrecur.timed import TimedModel
    from visrecur.timed.reference import build

    source = load_model("cornet_z", seed=3)
    assert isinstance(source.model, TimedModel) and not source.trained and source.name == "cornet_z"
    assert source.preprocess.crop_size == (224, 224) and source.time_mapping is None
    assert torch.equal(source.model.module.V1.conv.weight, build("cornet_z", seed=3).module.V1.conv.weight)
    assert isinstance(load_model(visrecur.list_models()[0]).model, FRNN)
