"""Bounded work: step counts and readout times are checked against a stated maximum (MAX_STEPS, raised
with max_steps= / --max-steps) before any work, with what they would cost; a recording's memory and disk
are estimated before its first batch."""
import time

import numpy as np
import pytest
import torch
from test_record import random_stimuli, small_source

import visrecur
from visrecur import InputError, SpecError
from visrecur.architecture import zoo
from visrecur.architecture.modelspec import MAX_STEPS
from visrecur.recording import record, recorder
from visrecur.recording.recorder import check_resources, plan


def measured_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


@pytest.mark.parametrize("name", ["frnn_4state_shared", "frnn_4state_unshared", "resnet_2state_unshared"])
@pytest.mark.parametrize("readout_time", [5, 13])
def test_the_memory_estimate_matches_the_built_model(name, readout_time):
    model = visrecur.build(name, readout_time=readout_time)
    estimate, real = model.spec.memory_bytes(), measured_bytes(model)
    assert abs(estimate - real) / real < 0.05, (estimate, real)


def test_the_estimate_past_the_counted_steps_grows_as_the_model_does():
    # extrapolated from the steps it counts: compare with a model actually built that long
    spec = zoo.spec("frnn_4state_unshared", readout_time=5)
    model = visrecur.build("frnn_4state_unshared", readout_time=40)
    assert abs(spec.memory_bytes(40) - measured_bytes(model)) / measured_bytes(model) < 0.05


def test_specs_at_the_maximum_one_past_and_raised():
    assert zoo.spec("frnn_2state_shared", readout_time=MAX_STEPS).time_steps == MAX_STEPS
    with pytest.raises(SpecError) as err:
        zoo.spec("frnn_2state_shared", readout_time=MAX_STEPS + 1)
    message = str(err.value)
    assert "\n" not in message
    assert f"readout_time={MAX_STEPS + 1} needs {MAX_STEPS + 1} model steps, more than the maximum of {MAX_STEPS}" \
        in message
    assert f"max_steps={MAX_STEPS + 1}, --max-steps {MAX_STEPS + 1}" in message
    with pytest.raises(SpecError, match=f"time_steps={MAX_STEPS + 1} needs"):
        zoo.spec("frnn_2state_shared", readout_time=4, time_steps=MAX_STEPS + 1)
    raised = zoo.spec("frnn_2state_shared", readout_time=MAX_STEPS + 1, max_steps=MAX_STEPS + 1)
    assert raised.to_dict()["max_steps"] == MAX_STEPS + 1  # a checkpoint keeps what it was allowed
    assert type(raised).from_dict(raised.to_dict()) == raised
    assert "max_steps" not in zoo.spec("frnn_2state_shared").to_dict()  # specs as before the maximum existed


@pytest.mark.slow
def test_a_model_is_built_and_run_at_the_maximum():
    model = visrecur.build("frnn_2state_shared", readout_time=MAX_STEPS, channels=(2, 3)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32), readout_time=MAX_STEPS).shape == (1, 10)


def test_a_huge_readout_time_is_refused_at_once_with_its_cost():
    start = time.perf_counter()
    with pytest.raises(SpecError, match=r"readout_time=1000000 needs 1000000 model steps.* about \d+\.\d GB"):
        visrecur.build("frnn_4state_unshared", readout_time=10 ** 6)
    assert time.perf_counter() - start < 1.0  # nothing was allocated


def test_recorded_steps_first_last_and_one_past():
    source = small_source(max_steps=6)  # a small maximum: steps 0..5 may be recorded
    model = source.model
    assert plan(model, None, [0], None)[1] == [0]
    assert plan(model, None, [5], None)[1] == [5]
    with pytest.raises(SpecError, match="--times up to 6 needs 7 model steps, more than the maximum of 6"):
        plan(model, None, [6], None)
    with pytest.raises(SpecError, match="readout_time=7 needs 7 model steps"):
        plan(model, None, None, 7)
    ds = record(source, random_stimuli(1), times=[5], progress=False)
    assert ds["time"].values.tolist() == [5]
    ds = record(source, random_stimuli(1), times=[6], readout_time=7, max_steps=7, progress=False)
    assert ds["time"].values.tolist() == [6] and ds["readout_time"].values.max() == 7


def test_the_model_refuses_to_run_past_its_maximum():
    model = small_source(max_steps=6).model
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        model(x, readout_time=6)
        with pytest.raises(SpecError, match="running until step 6 needs 7 model steps"):
            model(x, readout_time=[4], until=6)
        with pytest.raises(SpecError, match="readout_time=7 needs 7"):
            model(x, readout_time=7)


def test_recording_memory_and_disk_are_estimated_before_any_work(tmp_path, monkeypatch):
    source, stimuli = small_source(), random_stimuli(4)
    ds = record(source, stimuli, batch_size=2, progress=False)
    stored = sum(ds[name].size for name in ds.data_vars if ds[name].dtype == np.float32) * 4
    captured = {}
    original = recorder.check_resources

    def spy(template, batch_size, output):
        captured["estimate"] = original(template, batch_size, output)
        return captured["estimate"]

    monkeypatch.setattr(recorder, "check_resources", spy)
    record(source, stimuli, tmp_path / "r.nc", batch_size=2, progress=False)
    batch, whole = captured["estimate"]
    assert whole == stored  # the whole recording's float32 values, computed from its layout
    assert batch == 3 * 2 * stored // 4  # three copies of a batch of 2

    monkeypatch.setattr(recorder, "_available_memory", lambda: batch - 1)
    with pytest.raises(InputError, match=r"a batch of 2 stimuli needs about .* available; lower --batch-size"):
        record(source, stimuli, tmp_path / "m.nc", batch_size=2, progress=False)
    monkeypatch.setattr(recorder, "_available_memory", lambda: None)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 12, 10 ** 12, whole - 1))
    with pytest.raises(InputError, match="the recording would take about .* but .* is free"):
        record(source, stimuli, tmp_path / "d.nc", batch_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]  # nothing written by the refused runs
    assert check_resources  # the function the spy wrapped


@pytest.mark.parametrize("argv, message", [
    (["--times", "100000"], "--times up to 100000 needs 100001 model steps, more than the maximum of 1000"),
    (["--readout-time", "1000000"], "readout_time=1000000 needs 1000000 model steps"),
    (["--max-steps", "0"], "--max-steps 0 must be at least 1"),
])
def test_command_line_bounds_are_one_line_and_write_nothing(argv, message, tmp_path, monkeypatch, capsys):
    from visrecur.record import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if "--max-steps" in argv else _no_exit():
        assert main([*argv, "--limit", "2", "--no-progress", "--output", "r.nc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert list(tmp_path.iterdir()) == []


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
