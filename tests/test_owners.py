"""One owner per artifact and service: the defects that copies of a concept caused (milliseconds that drift
between a recording and its analysis, two image decoders, checks only on the command line, two data-root
rules), the registries that make a new layer kind or store format one class, and no hidden global state."""
import json
import os
import threading

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from PIL import Image

import visrecur
from visrecur import FRNN, InputError, VisrecurError
from visrecur.architecture import zoo
from visrecur.architecture.graph import Graph, State, Transition
from visrecur.architecture import layers
from visrecur.architecture.layers import Conv, register_layer_kind
from visrecur.architecture.modelspec import ModelSpec
from visrecur.artifacts import io, results, stores
from visrecur.artifacts.models import ModelSource, display_name, load_model
from visrecur.artifacts.recordings import open_recording, time_mapping
from visrecur.recording import Preprocess, record
from visrecur.recording.stimuli import from_array, from_folder
from visrecur.timing import TimeMapping, TimeMappingError
from visrecur.training import TrainConfig, TrainingError, build_config
from visrecur.training.data import decode_folder

from training_fixtures import colour_folder, tiny_config, train_in_process

PRE = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)


def tiny_model(**overrides):
    torch.manual_seed(0)
    return FRNN(zoo.spec("frnn_2state_shared", channels=(2, 3), input_size=8, readout_time=3, **overrides)).eval()


def stimuli(n=4, seed=0):
    return from_array(np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8))


# --- milliseconds come from the recording ------------------------------------------------------------
def test_a_recording_at_10_ms_per_step_is_scored_with_its_own_milliseconds(tmp_path, capsys):
    """The defect: a recording made at 10 ms per step was scored with 0, 50, 100 ms (the analysis's own
    default overwrote it). Now the scores carry the recording's 0, 10, 20 ms; a conflicting --ms-per-step
    is one line and writes nothing."""
    from analyses.neural_alignment import main

    ids = [f"s{k}" for k in range(8)]
    rec = tmp_path / "rec.nc"
    record(ModelSource(tiny_model(), "tiny", preprocess=PRE), from_array(
        np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8), ids=ids), rec,
        ms_per_step=(10, 10), progress=False)
    assert time_mapping(open_recording(rec)) == TimeMapping((10, 10))
    rng = np.random.default_rng(2)
    rdms = rng.random((3, 8, 8))
    rdms = rdms + rdms.transpose(0, 2, 1)
    rdms[:, np.arange(8), np.arange(8)] = 0
    np.savez(tmp_path / "target.npz", rdms=rdms, stimulus_ids=np.array(ids))
    out = tmp_path / "results"
    assert main(["--recording", str(rec), "--targets", str(tmp_path / "target.npz"), "--bootstrap", "0",
                 "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "neural_alignment.csv")
    first = table[table.state == "h1"].sort_values("time")
    assert first.time.tolist() == [0, 1, 2]
    assert first.latency_min_ms.tolist() == [0, 10, 20] and first.latency_max_ms.tolist() == [0, 10, 20]
    capsys.readouterr()
    refused = tmp_path / "refused"
    assert main(["--recording", str(rec), "--targets", str(tmp_path / "target.npz"), "--bootstrap", "0",
                 "--ms-per-step", "50", "--out-dir", str(refused)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "conflicts with the recording's own (10 ms per step)" in err
    assert not refused.exists()


def test_the_whole_time_mapping_is_written_and_read_back(tmp_path):
    mapping = TimeMapping((20, 30), onset_ms=40, state_onset_ms={"h2": 15})
    path = record(ModelSource(tiny_model(), "tiny", preprocess=PRE), stimuli(), tmp_path / "r.nc",
                  ms_per_step=mapping, progress=False)
    ds = open_recording(path)
    assert time_mapping(ds) == mapping
    # every (state, step)'s range, the per-state onset included: first step, last step
    np.testing.assert_array_equal(ds.latency_min_ms.sel(state="h1").values, [40, 60, 80])
    np.testing.assert_array_equal(ds.latency_max_ms.sel(state="h2").values, [55, 85, 115])
    # the readout at T reads the last state at T - 1: its own step T, with the last state's onset
    np.testing.assert_array_equal(ds.readout_latency_min_ms.values, 55 + 20 * ds.readout_time.values)


def test_a_model_that_states_its_time_mapping_is_recorded_with_it(tmp_path):
    model = tiny_model()
    model.time_mapping = TimeMapping((12, 12))
    source = ModelSource(model, "tiny", preprocess=PRE, time_mapping=model.time_mapping)
    assert time_mapping(record(source, stimuli(), progress=False)) == TimeMapping((12, 12))
    with pytest.raises(TimeMappingError, match="conflicts with the model's own"):
        record(source, stimuli(), progress=False, ms_per_step=(20, 50))


def test_opening_a_netcdf_file_that_is_no_recording_is_one_line(tmp_path):
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    with pytest.raises(InputError, match="is not a visrecur recording"):
        open_recording(tmp_path / "foreign.nc")


# --- one image decoder ----------------------------------------------------------------------------------
def test_a_transparent_pixel_is_decoded_the_same_by_training_analyses_and_recording(tmp_path):
    """The defect: training turned a transparent red pixel red, recording turned it grey. Both (and the
    analyses, which read test images through training's data module) composite over mid-grey now."""
    folder = tmp_path / "data" / "test" / "a"
    folder.mkdir(parents=True)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    rgba[0, 0, 3] = 255  # one opaque red pixel
    Image.fromarray(rgba, "RGBA").save(folder / "x.png")
    expected = np.array([[[255, 0, 0], [128, 128, 128]], [[128, 128, 128], [128, 128, 128]]], dtype=np.uint8)
    training, _, _ = decode_folder(folder.parent, progress=False)
    np.testing.assert_array_equal(training[0].permute(1, 2, 0).numpy(), expected)
    from analyses.common import load_test_split

    analyses, _, _ = load_test_split(tmp_path / "data", None)
    np.testing.assert_array_equal(analyses[0].permute(1, 2, 0).numpy(), expected)
    recording = np.asarray(from_folder(folder).image(0))
    np.testing.assert_array_equal(recording, expected)


# --- validation in the library -----------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    (dict(epochs=0), "--epochs 0 must be at least 1"),
    (dict(batch_size=-3), "--batch-size -3 must be at least 1"),
    (dict(lr=-1.0), "--lr -1.0 must be greater than 0"),
    (dict(momentum=-0.5), "--momentum -0.5 must be at least 0"),
    (dict(loss_readout_times=(0,)), "readout times start at 1"),
    (dict(augment="mixup"), "--augment 'mixup' is not one of cifar, imagenet"),
])
def test_train_config_refuses_from_python_what_the_command_line_refuses(options, message, capsys):
    from visrecur.train import main

    with pytest.raises(TrainingError, match=message):
        TrainConfig(**options)
    with pytest.raises(TrainingError, match=message):
        build_config(**options)
    flag = "--" + next(iter(options)).replace("_", "-")
    value = next(iter(options.values()))
    argv = [flag, *map(str, value)] if isinstance(value, tuple) else [flag, str(value)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err  # the same words


@pytest.mark.parametrize("options", [dict(batch_size=0), dict(batch_size=2.5), dict(workers=-1)])
def test_record_refuses_from_python(options, tmp_path):
    with pytest.raises(VisrecurError, match="must be an integer of at least"):
        record(ModelSource(tiny_model(), "tiny", preprocess=PRE), stimuli(), tmp_path / "r.nc", progress=False,
               **options)
    assert not list(tmp_path.iterdir())


def test_visrecur_record_is_callable_as_documented():
    ds = visrecur.record(ModelSource(tiny_model(), "tiny", preprocess=PRE), stimuli(2), progress=False)
    assert ds.sizes["stimulus"] == 2


# --- one data-root rule ----------------------------------------------------------------------------------
def test_training_with_visrecur_data_set_finds_its_data(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    colour_folder(root / "cifar10-jpeg")
    monkeypatch.setenv("VISRECUR_DATA", str(root))
    assert io.data_root() == root and TrainConfig().data_root == str(root / "cifar10-jpeg")
    cfg = tiny_config(root / "cifar10-jpeg", tmp_path / "out")
    cfg = TrainConfig(**{**cfg.__dict__, "data_root": ""})  # not given: the data-root rule decides
    assert cfg.data_root == str(root / "cifar10-jpeg")
    assert train_in_process(cfg).metrics[0]["train_images"] == 48


# --- registries ---------------------------------------------------------------------------------------
class Dilated(Conv):
    """A 3x3 convolution with dilation 2 (a larger receptive field at the same cost): the whole kind."""

    name, letter = "dilated-test", "[dil]"

    def module(self, layer):
        from torch import nn

        return nn.Conv2d(layer.in_channels, layer.out_channels, 3, stride=layer.stride, padding=2, dilation=2,
                         bias=False)


def dilated_spec(*, readout_time: int = 3, channels=(2, 3), input_size: int = 8, time_steps=None):
    graph = Graph([State("h1", channels[0], input_size), State("h2", channels[1], input_size // 2)],
                  [Transition("h1", "h1", layer="dilated-test"), Transition("h1", "h2", layer="dilated-test"),
                   Transition("h2", "h1"), Transition("h2", "h2", layer="dilated-test")])
    return ModelSpec(graph, readout_time, time_steps, name="frnn_2state_dilated_test", input_size=(input_size,) * 2)


@pytest.fixture
def dilated(monkeypatch):
    """The kind and a zoo model using it, registered as a user would, for this test only."""
    monkeypatch.setattr(layers, "LAYER_KINDS", dict(layers.LAYER_KINDS))
    monkeypatch.setattr(zoo, "MODELS", dict(zoo.MODELS))
    register_layer_kind(Dilated)
    zoo.register_model("frnn_2state_dilated_test")(dilated_spec)


@pytest.mark.slow  # trains one epoch
def test_a_new_transition_kind_is_one_class_and_trains_and_records(dilated, tmp_path):
    assert "dilated-test" in layers.LAYER_KINDS
    spec = zoo.spec("frnn_2state_dilated_test")
    model = FRNN(spec)
    convs = model.blocks["h1->h1"].convs
    assert all(c.dilation == (2, 2) for c in convs)
    assert "BR[dil]x2" in spec.graph.block_name(spec.graph.transition("h1", "h1"))
    # counted as built: every parameter of the recurrent part and the whole model
    assert spec.total_parameters() == sum(p.numel() for p in model.parameters())
    root = colour_folder(tmp_path / "data")
    out = tmp_path / "run"
    trained = train_in_process(tiny_config(root, out, model="frnn_2state_dilated_test", model_overrides={}))
    assert trained.metrics[0]["train_images"] == 48
    loaded = visrecur.load(out / "checkpoint.pt")
    assert all(c.dilation == (2, 2) for c in loaded.blocks["h2->h2"].convs)
    ds = record(loaded, stimuli(3), progress=False)
    assert ds.h1.sizes["time"] == 3 and not np.isnan(ds.h1.values).any()


class H5Store(stores.NetCDFStore):
    """netCDF in files named .h5: a new store format is one class."""

    suffix, name = ".h5", "netCDF as .h5"


def test_a_new_store_format_is_one_class(tmp_path, monkeypatch):
    monkeypatch.setitem(stores.STORES, ".h5", H5Store())
    source = ModelSource(tiny_model(), "tiny", preprocess=PRE)
    path = record(source, stimuli(3), tmp_path / "r.h5", batch_size=2, progress=False)
    in_memory = record(source, stimuli(3), batch_size=2, progress=False)
    np.testing.assert_array_equal(open_recording(path).h1.values, in_memory.h1.values)
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_zoo_model_builds_runs_and_round_trips_its_spec(name):
    """torchvision's generic test, for the zoo: build (small widths), one forward at the readout time,
    logits of the right shape and finite, the spec through to_dict and back."""
    n_states = len(zoo.spec(name).graph.states)
    small = {"channels": 3 if n_states == 1 else tuple(2 + k for k in range(n_states))}  # one state: one width
    if "imagenet" in name:
        small["input_size"] = 32
        small["num_classes"] = 5
    spec = zoo.spec(name, **small)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    torch.manual_seed(0)
    model = FRNN(spec).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *spec.input_size))
    assert logits.shape == (2, spec.num_classes) and torch.isfinite(logits).all()
    assert spec.total_parameters() == sum(p.numel() for p in model.parameters())


# --- no hidden global state --------------------------------------------------------------------------------
def test_importing_brainscore_support_changes_no_environment_variable():
    import importlib

    import visrecur.brainscore

    before = dict(os.environ)
    importlib.reload(visrecur.brainscore)
    assert dict(os.environ) == before


def test_loading_an_untrained_zoo_model_leaves_torchs_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("frnn_2state_shared")
    assert torch.equal(torch.rand(3), expected)
    b = load_model("frnn_2state_shared")  # and it is the same model every time (its own seed)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])


def test_recording_leaves_torchs_random_state_alone():
    source, images = ModelSource(tiny_model(), "tiny", preprocess=PRE), stimuli(2)  # these draw weights
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    record(source, images, progress=False)
    assert torch.equal(torch.rand(3), expected)  # the stimulus loader draws from its own generator


def test_an_in_memory_recording_joins_no_process_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: joining would wait for a second process
    ds = record(ModelSource(tiny_model(), "tiny", preprocess=PRE), stimuli(2), progress=False)
    assert ds.sizes["stimulus"] == 2 and not torch.distributed.is_initialized()


def test_display_names():
    assert display_name(None) == "frnn_4state_cifar10"
    assert display_name("frnn_4state_adjacent_cifar10") == "frnn_4state_adjacent_cifar10"
    assert display_name("runs/x/checkpoint.pt") == "x" and display_name("weights/m.pt") == "m"
    assert display_name("frnn_4state_shared") == "frnn_4state_shared"  # a zoo name: the untrained architecture


# --- services -----------------------------------------------------------------------------------------
def test_atomic_writes_use_unique_temporary_names_and_leave_nothing_on_failure(tmp_path):
    dest = tmp_path / "table.csv"
    seen, barrier = [], threading.Barrier(8)

    def writer(k):
        with io.atomic_path(dest) as tmp:
            seen.append(tmp)
            barrier.wait()  # all eight hold their temporary file at once
            tmp.write_text(f"{k}\n")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 8 and dest.read_text() in {f"{k}\n" for k in range(8)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(RuntimeError):
        with io.atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert dest.read_text() in {f"{k}\n" for k in range(8)} and len(list(tmp_path.iterdir())) == 1


def test_result_tables_carry_units_and_provenance(tmp_path):
    table = results.add_ms(pd.DataFrame({"readout_time": [2, 3], "accuracy_pct": [50.0, 60.0]}), "readout_time",
                           TimeMapping((20, 50)))
    assert list(table.columns) == ["readout_time", "latency_min_ms", "latency_max_ms", "accuracy_pct"]
    assert table.latency_min_ms.tolist() == [40, 60] and table.latency_max_ms.tolist() == [100, 150]
    path = results.write_table(table, tmp_path / "t.csv", description="a test", command="python -m x",
                               units={"accuracy_pct": "percent of test images"}, provenance={"model": "m"})
    back = results.read_table(path)
    pd.testing.assert_frame_equal(back, table)
    assert back.attrs["units"] == {"readout_time": "model step", "latency_min_ms": "ms", "latency_max_ms": "ms",
                                   "accuracy_pct": "percent of test images"}
    assert back.attrs["provenance"]["model"] == "m" and back.attrs["command"] == "python -m x"
    with pytest.raises(InputError, match="missing.csv is missing; make it with python -m y"):
        results.read_table(tmp_path / "missing.csv", "python -m y")
