"""Checks of timed models, entropy reaction times, paired model comparisons and the step maximum, each
against an expectation derived by hand from the documentation (docs/timed_models.md,
docs/neural_alignment.md, docs/data_integrity.md, docs/latency_and_masking.md) and the papers
(Kubilius et al. 2019 for CORnet-S's schedule, Spoerer et al. 2020 for BL-net), not from the code."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.stats import spearmanr
from torch import nn

import visrecur
from visrecur.artifacts.recordings import state_array
from visrecur.recording.stimuli import from_array

# Identity preprocessing on 4 x 4 images: the model sees pixel / 255 exactly.
PLAIN = {"crop_size": (4, 4), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
IMAGES = (np.arange(3 * 4 * 4 * 3, dtype=np.uint8).reshape(3, 4, 4, 3) * 2)


class Double(nn.Module):
    def forward(self, x):
        return 2.0 * x


class Leak(nn.Module):
    """h <- h / 2 + a: from h = 0, call k gives (2 - 2**-k) a."""

    def forward(self, a, h):
        return 0.5 * h + a


class TwoAreas(nn.Module):
    """Area A called once, area B three times per forward; logits = spatial mean of B's last output."""

    def __init__(self):
        super().__init__()
        self.A = Double()
        self.B = Leak()
        self.unused = Double()

    def calls(self, x):
        return 3

    def forward(self, x):
        a = self.A(x)
        h = torch.zeros_like(a)
        for _ in range(self.calls(x)):
            h = self.B(a, h)
        return h.mean(dim=(2, 3))


class InputDependentCalls(TwoAreas):
    def calls(self, x):  # 3 on the all-zero probe, 2 on any real image
        return 3 if float(x.abs().sum()) == 0 else 2


def expected_inputs():
    return IMAGES.astype(np.float64).transpose(0, 3, 1, 2) / 255.0


def adapted(cls=TwoAreas, **options):
    return visrecur.adapt(cls(), areas={"A": "A", "B": "B"}, preprocess=visrecur.Preprocess(**PLAIN), **options)


# Base 10 ms per step from a 5 ms onset; A delayed 3 ms; B delayed 7 ms and 20 ms per step.
MAPPING = {"ms_per_step": 10.0, "onset_ms": 5.0, "state_onset_ms": {"A": 3.0, "B": 7.0}, "state_ms_per_step": {"B": 20.0}}


@pytest.fixture(scope="module")
def tiny_recording():
    model = adapted(time_mapping=visrecur.TimeMapping(**MAPPING))
    return model, visrecur.record(model, from_array(IMAGES), progress=False)


def test_adapted_steps_are_the_call_counts(tiny_recording):
    model, _ = tiny_recording
    assert model.steps == {"A": (0,), "B": (0, 1, 2)}
    assert tuple(model.readout_steps) == (2,)  # a (batch, classes) output reads out at the last area's last step


def test_adapted_values_first_last_and_past_last_step(tiny_recording):
    _, ds = tiny_recording
    x = expected_inputs()
    a = 2.0 * x
    np.testing.assert_allclose(ds["A"].sel(time=0).values, a, rtol=1e-6, atol=1e-7)  # A's first = last step
    assert np.isnan(ds["A"].sel(time=[1, 2]).values).all()  # past A's last step: NaN
    np.testing.assert_allclose(ds["B"].sel(time=0).values, a, rtol=1e-6, atol=1e-7)  # B's first step
    np.testing.assert_allclose(ds["B"].sel(time=1).values, 1.5 * a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ds["B"].sel(time=2).values, 1.75 * a, rtol=1e-6, atol=1e-7)  # B's last step
    np.testing.assert_allclose(ds["logits"].sel(readout_time=2).values, (1.75 * a).mean(axis=(2, 3)),
                               rtol=1e-6, atol=1e-7)


def test_adapted_state_runs_marks_exactly_the_steps_run(tiny_recording):
    _, ds = tiny_recording
    runs = ds["state_runs"].transpose("state", "time")
    assert runs.sel(state="A").values.tolist() == [1, 0, 0]
    assert runs.sel(state="B").values.tolist() == [1, 1, 1]


def test_adapted_ms_coordinates_from_the_mapping_by_hand(tiny_recording):
    _, ds = tiny_recording
    # onset + state onset + step * state's ms per step
    a_ms = [5 + 3 + 0 * 10.0, np.nan, np.nan]
    b_ms = [5 + 7 + t * 20.0 for t in range(3)]
    for col in ("latency_min_ms", "latency_max_ms"):
        np.testing.assert_array_equal(ds[col].sel(state="A").values, a_ms)
        np.testing.assert_array_equal(ds[col].sel(state="B").values, b_ms)
    np.testing.assert_array_equal(state_array(ds, "B")["latency_min_ms"].values, b_ms)
    np.testing.assert_array_equal(ds["readout_latency_min_ms"].values, [b_ms[2]])  # the last area at step 2


def test_adapted_ms_range_and_first_step():
    # B's first call is step 1 (first_step); a (low, high) range gives latencies onset + t*low .. onset + t*high
    model = adapted(first_step={"B": 1}, time_mapping=visrecur.TimeMapping((10.0, 30.0), onset_ms=2.0))
    assert model.steps == {"A": (0,), "B": (1, 2, 3)}
    ds = visrecur.record(model, from_array(IMAGES), progress=False)
    assert ds["state_runs"].sel(state="B").values.tolist() == [0, 1, 1, 1]
    assert np.isnan(ds["B"].sel(time=0).values).all()
    np.testing.assert_allclose(ds["B"].sel(time=1).values, 2.0 * expected_inputs(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ds["latency_min_ms"].sel(state="B").values, [np.nan, 12.0, 22.0, 32.0])
    np.testing.assert_array_equal(ds["latency_max_ms"].sel(state="B").values, [np.nan, 32.0, 62.0, 92.0])


def test_adapted_refuses_steps_past_every_area():
    model = adapted()
    with pytest.raises(visrecur.VisrecurError) as err:
        visrecur.record(model, from_array(IMAGES), times=[0, 1, 2, 3], progress=False)
    assert "\n" not in str(err.value) and "3" in str(err.value)
    with pytest.raises(visrecur.VisrecurError):
        visrecur.record(model, from_array(IMAGES), states=["A"], times=[1], progress=False)


def test_adapted_refuses_a_changed_call_count_naming_the_module():
    model = adapted(InputDependentCalls)
    assert model.steps["B"] == (0, 1, 2)  # from the probe on zeros
    with pytest.raises(visrecur.VisrecurError) as err:
        visrecur.record(model, from_array(IMAGES), progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "'B'" in msg


def test_adapted_refuses_a_module_never_called_naming_it():
    with pytest.raises(visrecur.VisrecurError) as err:
        visrecur.adapt(TwoAreas(), areas={"A": "A", "U": "unused"}, preprocess=visrecur.Preprocess(**PLAIN))
    msg = str(err.value)
    assert "\n" not in msg and "unused" in msg


def test_step_model_state_and_declared_steps():
    # X runs at 0..2 with x_t = x_{t-1} * 3 + 1 from the image mean; Y only at step 2, = x_2 - 1
    def step(images, state, t):
        out = {}
        if t == 0:
            out["X"] = images.mean(dim=(1, 2, 3)).unsqueeze(1)
        else:
            out["X"] = state["X"] * 3 + 1
        if t == 2:
            out["Y"] = out["X"] - 1
            out["logits"] = torch.cat([out["Y"], -out["Y"]], dim=1)
        return out

    model = visrecur.StepModel(step, areas=["X", "Y"], steps={"X": (0, 1, 2), "Y": (2,)}, readout_steps=(2,),
                               preprocess=visrecur.Preprocess(**PLAIN))
    ds = visrecur.record(model, from_array(IMAGES), progress=False)
    m = expected_inputs().mean(axis=(1, 2, 3))
    x = [m, 3 * m + 1, 9 * m + 4]
    for t in range(3):
        np.testing.assert_allclose(ds["X"].sel(time=t).values.ravel(), x[t], rtol=1e-6)
    assert np.isnan(ds["Y"].sel(time=[0, 1]).values).all()
    np.testing.assert_allclose(ds["Y"].sel(time=2).values.ravel(), x[2] - 1, rtol=1e-6)
    assert ds["state_runs"].sel(state="Y").values.tolist() == [0, 0, 1]

    def wrong(images, state, t):  # returns Y at step 1, which it did not declare
        return {"X": images.mean(dim=(1, 2, 3)).unsqueeze(1), "Y": images.mean(dim=(1, 2, 3)).unsqueeze(1)}

    bad = visrecur.StepModel(wrong, areas=["X", "Y"], steps={"X": (0, 1, 2), "Y": (2,)}, readout_steps=(2,),
                             preprocess=visrecur.Preprocess(**PLAIN))
    with pytest.raises(visrecur.VisrecurError):
        visrecur.record(bad, from_array(IMAGES), progress=False)


# Reference architectures (documented lookup: visrecur.timed.reference.build / load_model).

def test_reference_schedules_from_the_papers():
    from visrecur.timed.reference import build

    # CORnet-S (Kubilius et al. 2019): V1 1, V2 2, V4 4, IT 2 recurrent steps; read out after IT's last
    s = build("cornet_s", input_size=32)
    assert s.steps == {"V1": (0,), "V2": (0, 1), "V4": (0, 1, 2, 3), "IT": (0, 1)}
    assert tuple(s.readout_steps) == (1,)
    # CORnet-Z and ResNet-18 as time = depth: stage k's only step is k
    assert build("cornet_z", input_size=32).steps == {"V1": (0,), "V2": (1,), "V4": (2,), "IT": (3,)}
    r = build("resnet18_time", input_size=32)
    assert r.steps == {"stem": (0,), "layer1": (1,), "layer2": (2,), "layer3": (3,), "layer4": (4,)}
    assert tuple(r.readout_steps) == (4,)


@pytest.mark.slow
def test_blnet_eight_steps_readout_every_step():
    from visrecur.timed.reference import build

    b = build("blnet", input_size=64)  # Spoerer et al. 2020: 7 layers, 8 steps, a readout at each
    assert b.steps == {f"layer{i}": tuple(range(8)) for i in range(1, 8)}
    assert tuple(b.readout_steps) == tuple(range(8))


def test_blnet_too_small_input_is_one_line():
    from visrecur.timed.reference import build

    with pytest.raises(visrecur.VisrecurError):
        build("blnet", input_size=32)


@pytest.mark.slow
def test_cornet_s_recording_schedule_and_brainscore_ms():
    from visrecur.timed.reference import build

    ds = visrecur.record(build("cornet_s", input_size=32), from_array(IMAGES[:2].repeat(8, 1).repeat(8, 2)),
                         reduction="mean", progress=False)
    runs = ds["state_runs"].transpose("state", "time")
    expected_runs = {"V1": [1, 0, 0, 0], "V2": [1, 1, 0, 0], "V4": [1, 1, 1, 1], "IT": [1, 1, 0, 0]}
    # Brain-Score's CORnet-S table: (first bin start, width) V1 (50, 100), V2 (70, 100), V4 (90, 50), IT (100, 100)
    table = {"V1": (50, 100), "V2": (70, 100), "V4": (90, 50), "IT": (100, 100)}
    for area, row in expected_runs.items():
        assert runs.sel(state=area).values.tolist() == row
        values = ds[area].values
        ran = np.array(row, dtype=bool)
        assert np.isfinite(values[:, ran]).all() and np.isnan(values[:, ~ran]).all()
        onset, width = table[area]
        ms = [onset + t * width if r else np.nan for t, r in enumerate(row)]
        np.testing.assert_array_equal(ds["latency_min_ms"].sel(state=area).values, ms)
    assert ds["readout_time"].values.tolist() == [1]


@pytest.mark.slow
def test_blnet_recording_has_a_readout_at_every_step():
    from visrecur.timed.reference import build

    ds = visrecur.record(build("blnet", input_size=64), from_array(IMAGES[:2].repeat(16, 1).repeat(16, 2)),
                         reduction="mean", progress=False)
    assert ds["readout_time"].values.tolist() == list(range(8))
    assert (ds["state_runs"].values == 1).all()
    assert np.isfinite(ds["logits"].values).all()


# Reaction times from an entropy threshold (docs/latency_and_masking.md, docs/timed_models.md)

LOGITS = np.array([
    [[0, 0, 0, 0], [5, 0, 0, 0], [9, 0, 0, 0], [12, 0, 0, 0]],    # crosses at step 1 (not 0)
    [[20, 0, 0, 0], [20, 0, 0, 0], [20, 0, 0, 0], [20, 0, 0, 0]],  # crosses at step 0
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 10, 0, 0]],    # crosses only at the last step
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],     # never (uniform: entropy 1)
], dtype=np.float64)


def normalised_entropy(logits):
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return -(p[p > 0] * np.log(p[p > 0])).sum() / np.log(len(p))


def test_entropy_reaction_times_from_hand_made_logits():
    from analyses.latency import latency_tables

    threshold = 0.1
    hand = []
    for image in LOGITS:
        below = [t for t in range(4) if normalised_entropy(image[t]) <= threshold]
        hand.append(below[0] if below else None)
    assert hand == [1, 0, 3, None]  # the cases: a middle step, the first, the last, never

    table = torch.tensor(LOGITS, dtype=torch.float32)

    def step(images, state, t):  # image i is a constant image of value i / 255
        idx = (images[:, 0, 0, 0] * 255).round().long()
        return {"X": images.mean(dim=(1, 2, 3)).unsqueeze(1), "logits": table[idx, t]}

    model = visrecur.StepModel(step, areas=["X"], steps={"X": range(4)}, readout_steps=range(4),
                               preprocess=visrecur.Preprocess(**PLAIN))
    images = (torch.arange(4, dtype=torch.float32) / 255).view(4, 1, 1, 1).expand(4, 3, 4, 4).contiguous()
    labels = torch.tensor([0, 0, 1, 0])
    out = latency_tables(model, [(images, labels)], [0, 1, 2, 3], [threshold], "entropy",
                         mapping=visrecur.TimeMapping(25.0, onset_ms=10.0))
    rts = out["reaction_times"].sort_values("image")
    assert rts["crossed"].tolist() == [True, True, True, False]
    assert rts["rt_steps"].iloc[:3].tolist() == [1, 0, 3] and np.isnan(rts["rt_steps"].iloc[3])
    np.testing.assert_array_equal(rts["rt_min_ms"].iloc[:3].values, [10 + 25 * t for t in (1, 0, 3)])
    assert rts["decision_at_rt"].iloc[:3].tolist() == [0, 0, 1]
    speed = out["speed_accuracy"].iloc[0]
    assert speed["never_crossed_pct"] == 25.0
    assert speed["mean_rt_steps"] == pytest.approx(4 / 3)
    assert speed["mean_rt_deadline_steps"] == pytest.approx((1 + 0 + 3 + 3) / 4)  # never -> the last step


# Paired comparisons (docs/neural_alignment.md)

def _planted(seed=1, n=20, subjects=4):
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n)]

    def sym(m):
        m = (m + m.T) / 2
        np.fill_diagonal(m, 0)
        return m

    base = sym(np.abs(rng.normal(size=(n, n))) + 1)
    target = xr.DataArray(np.stack([sym(base + 0.3 * np.abs(rng.normal(size=(n, n)))) for _ in range(subjects)]),
                          dims=("subject", "stimulus", "stimulus_b"),
                          coords={"subject": range(subjects), "stimulus": ids, "stimulus_b": ids})

    def model(noise):
        return xr.DataArray(sym(base + noise * np.abs(rng.normal(size=(n, n)))), dims=("stimulus", "stimulus_b"),
                            coords={"stimulus": ids, "stimulus_b": ids})

    return target, model(0.1), model(3.0), ids


def test_compare_models_identical_is_zero_with_p_one():
    from visrecur.neural import compare_models

    target, a, _, _ = _planted()
    r = compare_models(a, a.copy(), target, n_boot=200)
    assert float(r["difference"]) == 0.0 and float(r["p_value"]) == 1.0


def test_compare_models_planted_closer_model_wins_and_swap_flips():
    from visrecur.neural import compare_models

    target, a, b, _ = _planted()
    n = 200
    r = compare_models(a, b, target, n_boot=n)
    iu = np.triu_indices(a.shape[0], 1)
    mean = target.mean("subject").values[iu]
    assert float(r["score_a"]) == pytest.approx(spearmanr(a.values[iu], mean)[0], abs=1e-12)
    assert float(r["score_b"]) == pytest.approx(spearmanr(b.values[iu], mean)[0], abs=1e-12)
    assert float(r["difference"]) > 0 and float(r["difference_ci_low"]) > 0
    assert float(r["p_value"]) == pytest.approx(2 / (n + 1))  # every resample favours a: the smallest p
    s = compare_models(b, a, target, n_boot=n)
    assert float(s["difference"]) == pytest.approx(-float(r["difference"]))
    assert float(s["difference_ci_high"]) < 0
    assert float(s["p_value"]) == pytest.approx(float(r["p_value"]))


def test_compare_models_refuses_different_stimuli_naming_the_first():
    from visrecur.neural import compare_models

    target, a, b, ids = _planted()
    other = list(ids)
    other[5], other[9] = "zz", "yy"
    b = b.assign_coords(stimulus=other, stimulus_b=other)
    with pytest.raises(visrecur.VisrecurError) as err:
        compare_models(a, b, target, n_boot=20)
    msg = str(err.value)
    assert "\n" not in msg and "'zz'" in msg and "'yy'" not in msg


def test_compare_models_refuses_recordings_of_different_stimuli():
    from visrecur.neural import compare_models, model_rdms

    model = adapted()
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    first = visrecur.record(model, from_array(images, ids=[f"i{k}" for k in range(6)]), progress=False)
    second = visrecur.record(model, from_array(images, ids=[f"i{k}" for k in range(3)] + ["j3", "j4", "j5"]),
                             progress=False)
    rdm = model_rdms(first).sel(state="B", time=2)
    target = rdm.expand_dims(subject=[0]).copy()
    with pytest.raises(visrecur.VisrecurError) as err:
        compare_models(first, second, target, n_boot=20)
    assert "'j3'" in str(err.value) and "'j4'" not in str(err.value)


# Data integrity (docs/data_integrity.md)

def test_step_maximum_spec_accepts_max_and_refuses_one_more():
    from visrecur.architecture.modelspec import MAX_STEPS

    assert MAX_STEPS == 1000
    name = "frnn_2state_shared"
    assert visrecur.spec(name, readout_time=MAX_STEPS).readout_time == MAX_STEPS
    with pytest.raises(visrecur.SpecError) as err:
        visrecur.build(name, readout_time=MAX_STEPS + 1)
    msg = str(err.value)
    assert "\n" not in msg and "1000" in msg and "1001" in msg


@pytest.mark.slow
def test_step_maximum_build_accepts_max():
    from visrecur.architecture.modelspec import MAX_STEPS

    model = visrecur.build("frnn_2state_shared", readout_time=MAX_STEPS)
    assert model.spec.readout_time == MAX_STEPS


def _tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def test_overwrite_refuses_a_folder_of_unrelated_files(tmp_path):
    out = tmp_path / "rec.nc"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    before, around = _tree(out), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(visrecur.VisrecurError) as err:
        visrecur.record(adapted(), from_array(IMAGES), out, overwrite=True, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "rec.nc" in msg
    assert _tree(out) == before  # untouched, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == around  # no partial or lock left beside it


def test_overwrite_refuses_another_programs_netcdf(tmp_path):
    out = tmp_path / "rec.nc"
    xr.Dataset({"v": ("x", np.arange(5.0))}, attrs={"title": "not visrecur's"}).to_netcdf(out)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    with pytest.raises(visrecur.VisrecurError) as err:
        visrecur.record(adapted(), from_array(IMAGES), out, overwrite=True, progress=False)
    assert "\n" not in str(err.value)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nc"]


def test_overwrite_replaces_its_own_recording(tmp_path):
    # the counterpart: a recording visrecur made is replaced with --overwrite, refused without
    out = tmp_path / "rec.nc"
    visrecur.record(adapted(), from_array(IMAGES), out, progress=False)
    with pytest.raises(visrecur.VisrecurError):
        visrecur.record(adapted(), from_array(IMAGES[:2]), out, progress=False)
    visrecur.record(adapted(), from_array(IMAGES[:2]), out, overwrite=True, progress=False)
    with xr.open_dataset(out) as ds:
        assert ds.sizes["stimulus"] == 2


@pytest.mark.slow
def test_overwrite_cli_refuses_a_folder_in_one_line(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "rec.nc"
    out.mkdir()
    (out / "x.txt").write_text("mine\n")
    before = _tree(out)
    run = subprocess.run([sys.executable, "-m", "visrecur.record", "--model", "cornet_z", "--stimuli", "builtin",
                          "--output", str(out), "--overwrite", "--reduction", "mean"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.stderr and "--overwrite" in errors[0]
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["rec.nc"]


def test_adapted_recording_describes_itself(tiny_recording):
    _, ds = tiny_recording
    # a space-separated list (netCDF attributes are flat)
    assert [int(t) for t in str(ds["A"].attrs["steps"]).split()] == [0]
    assert [int(t) for t in str(ds["B"].attrs["steps"]).split()] == [0, 1, 2]
    assert ds.attrs["model_kind"] == "adapted"


def test_cornet_s_mapping_bins_are_brainscores():
    from visrecur.timed.reference import cornet_s_time_mapping

    mapping = cornet_s_time_mapping()
    # Brain-Score's CORnet-S TIME_MAPPINGS: (first bin start, width, steps) per area
    for area, (start, width, n) in {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4),
                                    "IT": (100, 100, 2)}.items():
        expected = [[start + k * width, start + (k + 1) * width] for k in range(n)]
        np.testing.assert_array_equal(mapping.bins(range(n), area), expected)


def test_reaction_times_refuse_a_single_readout_and_missing_steps():
    from analyses.latency import latency_tables

    batches = [(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]))]
    for times in ([2], [0, 1, 2]):  # one readout only; steps it does not read out at
        with pytest.raises(visrecur.VisrecurError) as err:
            latency_tables(adapted(), batches, times, [0.5], "entropy")
        assert "\n" not in str(err.value)


def test_compare_models_table_skips_steps_not_reached():
    from scipy.stats import false_discovery_control

    from visrecur.neural import compare_models, model_rdms

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(10, 4, 4, 3), dtype=np.uint8)
    table = model_rdms(visrecur.record(adapted(), from_array(images), progress=False))
    n = table.sizes["stimulus"]
    noise = rng.random((n, n))
    other = table.sel(state="B", time=2).copy(data=(noise + noise.T) * (1 - np.eye(n)))
    subjects = table.sel(state="B", time=2).values + 0.05 * rng.random((3, n, n))
    subjects = (subjects + subjects.transpose(0, 2, 1)) * (1 - np.eye(n))
    target = xr.DataArray(subjects, dims=("subject", "stimulus", "stimulus_b"),
                          coords={"subject": range(3), "stimulus": table.stimulus.values,
                                  "stimulus_b": table.stimulus.values})
    r = compare_models(table, other, target, n_boot=100)
    tested = np.isfinite(r["p_value"].values)
    # A runs only at step 0: its steps 1 and 2 are not tested; every step of B is
    assert r["p_value"].sel(state="A").notnull().values.tolist() == [True, False, False]
    assert r["p_value"].sel(state="B").notnull().all()
    assert r["p_value"].sel(state="A", time=[1, 2]).isnull().all()
    p = r["p_value"].values[tested]
    np.testing.assert_allclose(r["p_fdr"].values[tested], false_discovery_control(p))
    assert (r["difference"].sel(state="B") > 0).all()


class Mean(nn.Module):
    def forward(self, h):
        return h.mean(dim=(2, 3))


class ReadEveryStep(TwoAreas):
    """As TwoAreas, with a readout module called after every call of B."""

    def __init__(self):
        super().__init__()
        self.head = Mean()

    def forward(self, x):
        a = self.A(x)
        h = torch.zeros_like(a)
        for _ in range(3):
            h = self.B(a, h)
            logits = self.head(h)
        return logits


def test_adapted_readout_module_reads_out_at_every_call():
    model = adapted(ReadEveryStep, readout="head")
    assert tuple(model.readout_steps) == (0, 1, 2)
    # pass labels are 1-based call numbers of the module
    assert model.pass_labels()[("B", 0)] == "B:1" and model.pass_labels()[("B", 2)] == "B:3"
    ds = visrecur.record(model, from_array(IMAGES), progress=False)
    a = 2.0 * expected_inputs()
    for t, factor in enumerate((1.0, 1.5, 1.75)):  # (2 - 2**-t)
        np.testing.assert_allclose(ds["logits"].sel(readout_time=t).values, (factor * a).mean(axis=(2, 3)),
                                   rtol=1e-6, atol=1e-7)
    # default mapping 20-50 ms per step: readout t at 20t .. 50t ms
    np.testing.assert_array_equal(ds["readout_latency_min_ms"].values, [0, 20, 40])
    np.testing.assert_array_equal(ds["readout_latency_max_ms"].values, [0, 50, 100])
    one_by_one = visrecur.record(model, from_array(IMAGES), batch_size=1, progress=False)
    np.testing.assert_array_equal(one_by_one["B"].values, ds["B"].values)  # batching changes nothing


def test_timed_refusals_in_one_line():
    model = adapted()
    wrong_mapping = visrecur.TimeMapping(10.0, state_onset_ms={"Z": 3.0})
    cases = [
        lambda: visrecur.record(model, from_array(IMAGES), max_steps=5, progress=False),
        lambda: visrecur.record(model, from_array(IMAGES), ms_per_step=wrong_mapping, progress=False),
        lambda: adapted(time_mapping=wrong_mapping),
        lambda: model.run(torch.zeros(2, 3, 3, 4, 4), lambda *args: None),  # a frame sequence
    ]
    for case in cases:
        with pytest.raises(visrecur.VisrecurError) as err:
            case()
        assert "\n" not in str(err.value)


def test_step_model_frames_go_to_their_steps():
    def step(frame, state, t):  # X accumulates the frames' means
        previous = 0 if state["X"] is None else state["X"]
        return {"X": frame.mean(dim=(1, 2, 3)).unsqueeze(1) + previous}

    model = visrecur.StepModel(step, areas=["X"], steps={"X": (0, 1, 2)}, frames=True,
                               preprocess=visrecur.Preprocess(**PLAIN))
    seen = {}

    def observe(area, t, value):
        seen[t] = value.ravel().tolist()

    frames = torch.stack([torch.full((2, 3, 4, 4), v) for v in (1.0, 10.0, 100.0)], dim=1)
    model.run(frames, observe)
    assert seen == {0: [1.0, 1.0], 1: [11.0, 11.0], 2: [111.0, 111.0]}
    seen.clear()
    model.run(torch.full((2, 3, 4, 4), 2.0), observe)  # a plain batch: the same image at every step
    assert seen == {0: [2.0, 2.0], 1: [4.0, 4.0], 2: [6.0, 6.0]}


def test_load_model_finds_a_reference_architecture_by_name():
    from visrecur.artifacts.models import load_model

    source = load_model("cornet_z")  # the one model resolver (docs/timed_models.md)
    assert source.model.steps == {"V1": (0,), "V2": (1,), "V4": (2,), "IT": (3,)}
    assert source.trained is False  # random initialisation: recordings carry the untrained warning


def test_load_model_unknown_name_points_to_the_reference_names():
    from visrecur.artifacts.models import load_model

    with pytest.raises(visrecur.VisrecurError) as err:
        load_model("cornet_q")
    msg = str(err.value)
    assert "cornet_s" in msg or "list_reference" in msg
