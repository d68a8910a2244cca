"""Every way brainscore-vision 2.4.2 calls a BrainModel, answered by VisrecurBrainModel offline.

``CALL_FORMS`` is the enumeration, made from the installed wheel (grep for start_task, start_recording,
look_at and visual_degrees over brainscore_vision/benchmarks, benchmark_helpers, model_helpers and
data; the files using each form named beside it; paths relative to brainscore_vision/). Each form is
called on the adapter with stand-in stimuli (Brain-Score's S3 data cannot be loaded here) and its stated
behaviour checked. Then Brain-Score's own benchmark classes and helpers run on stand-in assemblies:
NeuralBenchmark (static and 30 bins of 10 ms, per-bin metric), TrainTestNeuralBenchmark, RSABenchmark
on LAION's (0, 0) bin, the memory preflight, Kar2019's temporal check with its own bins, Marques2020's
record_from_model, and Hebart2023's odd-one-out benchmark itself.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from test_brainscore_model import standin_stimuli, tiny, trained

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NEURAL_COMMON = "benchmark_helpers/neural_common.py"
NEURAL_USERS = ("majajhong2015, freemanziemba2013 (benchmark.py, public_benchmarks.py), cadena2017, rajalingham2020, "
                "sanghavi2020 (three), cowley2026, li2026, muzellec2026, "
                "benchmarks/igustibagus2024/domain_transfer_neural.py, "
                "allen2022_fmri, allen2022_fmri_surface, hebart2023_fmri, gifford2022, papale2025, laion_fmri (through "
                "benchmark_helpers/multi_subject.py's per-subject and k-fold wrappers), bracci2019's region map")

# (form id, the call as Brain-Score writes it, files using it, what the adapter does)
CALL_FORMS = [
    ("visual_degrees", "candidate.visual_degrees()",
     f"{NEURAL_COMMON}; benchmark_helpers/properties_common.py; benchmark_helpers/memory.py; every behavioural "
     "benchmark's place_on_screen; model_helpers/generic_plugin_tests.py (0 < v < 9000); "
     "model_helpers/check_submission/check_models.py", "degrees"),
    ("record_timebins_from_assembly", "start_recording(region, time_bins=timebins_from_assembly(assembly))",
     f"{NEURAL_COMMON} (NeuralBenchmark, TrainTestNeuralBenchmark, RSABenchmark), used by {NEURAL_USERS}",
     "neural"),
    ("record_squeezed_single_bin", "start_recording(region, time_bins=[assembly['time_bin'].values])  # one 0-d tuple",
     f"{NEURAL_COMMON} timebins_from_assembly on a squeezed assembly: allen2022_fmri, hebart2023_fmri, papale2025, "
     "gifford2022, laion_fmri ((0, 0)), li2026", "neural"),
    ("record_zero_length", "start_recording(region, time_bins=[(0, 0)])",
     "benchmarks/laion_fmri/benchmark.py (its comment: Allen2022 / Hebart2023 do the same)", "neural"),
    ("record_kar2019", "start_recording('IT', time_bins=[(70 + 10 k, 80 + 10 k) for k < 18])",
     "benchmarks/kar2019/benchmark.py (TIME_BINS)", "neural"),
    ("record_li2026_temporal", "start_recording(region, time_bins=30 bins of 10 ms, 0-300 ms)",
     "benchmarks/li2026/benchmark.py (_TemporalNeuralBenchmark via NeuralBenchmark)", "neural"),
    ("record_0_250", "start_recording(self.region, time_bins=[(0, 250)])", "benchmarks/coggan2024_fMRI/benchmark.py",
     "neural"),
    ("record_70_170_keyword", "start_recording('IT', time_bins=[(70, 170)])",
     "benchmarks/igustibagus2024/domain_transfer_analysis.py; data/igustibagus2024/merged_assembly/"
     "helpers_background_id.py; benchmark_helpers/properties_common.py (marques2020's six TIMEBINS)", "neural"),
    ("record_positional_bins", "start_recording(self.region, [(TIME_BIN_ST, TIME_BIN_END)])",
     "benchmarks/islam2021/benchmark.py; benchmarks/bracci2019/benchmark.py", "neural"),
    ("record_keywords", "start_recording(recording_target=BrainModel.RecordingTarget.V1, time_bins=[(50, 100)])",
     "model_helpers/generic_plugin_tests.py (and its probe with (100, 200))", "neural"),
    ("look_at_keyword_trials", "look_at(stimulus_set, number_of_trials=self._number_of_trials)",
     f"{NEURAL_COMMON}; most behavioural benchmarks; benchmark_helpers/memory.py (number_of_trials=1)", "neural"),
    ("look_at_plain", "look_at(stimulus_set)",
     "benchmarks/islam2021/benchmark.py; benchmarks/igustibagus2024/domain_transfer_analysis.py; "
     "model_helpers/check_submission/check_models.py", "neural"),
    ("look_at_positional_trials", "look_at(stimulus_set, number_of_trials)",
     "benchmark_helpers/properties_common.py (marques2020: 10 and 20 trials); benchmarks/hebart2023/benchmark.py",
     "neural"),
    ("look_at_stimuli_keyword", "look_at(stimuli=stimuli, number_of_trials=1)", "model_helpers/generic_plugin_tests.py",
     "neural"),
    ("look_at_one_stimulus", "look_at(stimulus_set[:1] with identifier None, number_of_trials=...)",
     "benchmarks/kar2019/benchmark.py (check_stimulus_set); benchmark_helpers/memory.py (probe_set)", "neural"),
    ("label_imagenet", "start_task(BrainModel.Task.label, 'imagenet')",
     "benchmarks/imagenet/benchmark.py; benchmarks/objectnet/benchmark.py; benchmarks/imagenet_c/benchmark.py",
     "refused: needs a model that reads out the 1000 ImageNet classes"),
    ("label_choices", "start_task(BrainModel.Task.label, choice_labels)",
     "benchmarks/geirhos2021, hermann2020, baker2022, scialom2024, bmd2024 (benchmark.py)", "labels"),
    ("label_choices_aggregation", "start_task(BrainModel.Task.label, choice_labels, aggregation='max')",
     "benchmarks/kato2026/benchmark.py", "labels"),
    ("label_ten_trials", "start_task(label, choice_labels); look_at(stimulus_set, number_of_trials=10)",
     "benchmarks/geirhos2021/benchmark.py; benchmarks/scialom2024/benchmark.py", "labels"),
    ("probabilities_positional", "start_task(BrainModel.Task.probabilities, fitting_stimuli)",
     "benchmarks/rajalingham2018, maniquet2024, coggan2024_behavior, ferguson2024 (benchmark.py); "
     "model_helpers/check_submission/check_models.py", "probabilities"),
    ("probabilities_one_trial", "start_task(probabilities, fitting_stimuli=..., number_of_trials=1)",
     "benchmarks/lonnqvist2024/benchmark.py", "probabilities"),
    ("probabilities_variance", "start_task(probabilities, fitting_stimuli=..., number_of_trials=2, "
     "require_variance=True); look_at(stimulus_set, number_of_trials=10, require_variance=True)",
     "benchmarks/malania2007/benchmark.py", "probabilities x10 trials"),
    ("probabilities_keywords", "start_task(BrainModel.Task.probabilities, fitting_stimuli=stimuli)",
     "model_helpers/generic_plugin_tests.py", "probabilities"),
    ("probe_tasks", "start_task(task=task) for label, probabilities, odd_one_out; then "
     "start_task(task=task, fitting_stimuli=fitting_stimuli)",
     "model_helpers/generic_plugin_tests.py (ProbeModel.can_start_task_specific)", "probe"),
    ("odd_one_out", "start_task(BrainModel.Task.odd_one_out); look_at(triplet_stimuli, self._number_of_trials)",
     "benchmarks/hebart2023/benchmark.py", "odd one out"),
]


@pytest.fixture(scope="module")
def stimuli(brainscore, tmp_path_factory):
    """Ten non-square stand-in images; labels among the tiny model's classes ('0'..'9'), object_name."""
    return standin_stimuli(tmp_path_factory.mktemp("stimuli"), "3737373737", "visrecur-call-forms",
                           object_name=list("ababababab"))


@pytest.fixture(scope="module")
def adapter(brainscore):
    from visrecur.brainscore import VisrecurBrainModel

    return VisrecurBrainModel(trained(tiny()), progress=False)


def squeezed_bin(start, end):
    value = np.empty((), dtype=object)
    value[()] = (start, end)
    return value


def multiindex_bins(bins):
    import pandas as pd

    return pd.MultiIndex.from_tuples(bins, names=["time_bin_start", "time_bin_end"]).values


def call(form: str, model, stimuli):
    """Issue the form's calls as Brain-Score does; return what the last one returned."""
    from brainscore_vision.benchmarks.kar2019.benchmark import TIME_BINS
    from brainscore_vision.model_interface import BrainModel

    Task = BrainModel.Task
    one = stimuli[:1]
    one.identifier = None
    recordings = {
        "record_timebins_from_assembly": ("IT", multiindex_bins([(70, 105), (105, 140)])),
        "record_squeezed_single_bin": ("V1", [squeezed_bin(70, 170)]),
        "record_zero_length": ("V1", [(0, 0)]),
        "record_kar2019": ("IT", TIME_BINS),
        "record_li2026_temporal": ("V1", multiindex_bins([(t, t + 10) for t in range(0, 300, 10)])),
        "record_0_250": ("V4", [(0, 250)]),
        "record_70_170_keyword": ("IT", [(70, 170)]),
    }
    if form == "visual_degrees":
        return model.visual_degrees()
    if form in recordings:
        region, bins = recordings[form]
        model.start_recording(region, time_bins=bins)
        return model.look_at(stimuli, number_of_trials=1)
    if form == "record_positional_bins":
        model.start_recording("IT", [(70, 170)])
        return model.look_at(stimuli)
    if form == "record_keywords":
        model.start_recording(recording_target=BrainModel.RecordingTarget.V1, time_bins=[(50, 100)])
        return model.look_at(stimuli=stimuli, number_of_trials=1)
    if form.startswith("look_at"):
        model.start_recording("IT", time_bins=[(70, 170)])
        return {"look_at_keyword_trials": lambda: model.look_at(stimuli, number_of_trials=35),
                "look_at_plain": lambda: model.look_at(stimuli),
                "look_at_positional_trials": lambda: model.look_at(stimuli, 20),
                "look_at_stimuli_keyword": lambda: model.look_at(stimuli=stimuli, number_of_trials=1),
                "look_at_one_stimulus": lambda: model.look_at(one, number_of_trials=1)}[form]()
    if form == "label_imagenet":
        model.start_task(Task.label, "imagenet")
    if form in ("label_choices", "label_ten_trials"):
        model.start_task(Task.label, ["7", "3"])
        return model.look_at(stimuli, number_of_trials=10 if form == "label_ten_trials" else 1)
    if form == "label_choices_aggregation":
        model.start_task(Task.label, ["7", "3"], aggregation="max")
        return model.look_at(stimuli, number_of_trials=1)
    if form == "probabilities_positional":
        model.start_task(Task.probabilities, stimuli)
        return model.look_at(stimuli, number_of_trials=1)
    if form == "probabilities_one_trial":
        model.start_task(Task.probabilities, fitting_stimuli=stimuli, number_of_trials=1)
        return model.look_at(stimuli, number_of_trials=1)
    if form == "probabilities_variance":
        model.start_task(Task.probabilities, fitting_stimuli=stimuli, number_of_trials=2, require_variance=True)
        return model.look_at(stimuli, number_of_trials=10, require_variance=True)
    if form == "probabilities_keywords":
        model.start_task(Task.probabilities, fitting_stimuli=stimuli)
        return model.look_at(stimuli=stimuli, number_of_trials=1)
    if form == "probe_tasks":
        from brainscore_vision.model_helpers.generic_plugin_tests import ProbeModel

        return {task: ProbeModel().can_start_task_specific(model, task=task, fitting_stimuli=stimuli)
                for task in (Task.label, Task.probabilities, Task.odd_one_out)}
    if form == "odd_one_out":
        model.start_task(Task.odd_one_out)
        triplets = stimuli.iloc[[0, 1, 2, 3, 4, 5, 0, 9, 8]].reset_index(drop=True)
        triplets.stimulus_paths, triplets.identifier = stimuli.stimulus_paths, None
        return model.look_at(triplets, 1)
    raise AssertionError(f"no call for form {form}")


def test_the_table_names_real_files(brainscore):
    """Every file named in the table exists in the installed wheel (and the table is the one checked)."""
    import brainscore_vision
    from pathlib import Path

    root = Path(brainscore_vision.__file__).parent
    for form, _, files, _ in CALL_FORMS:
        for path in re.findall(r"[a-z_0-9]+(?:/[A-Za-z_0-9]+)+\.py", files):
            assert (root / path).is_file(), (form, path)
    assert len({row[0] for row in CALL_FORMS}) == len(CALL_FORMS)


@pytest.mark.parametrize("form,written,files,expected", CALL_FORMS, ids=[row[0] for row in CALL_FORMS])
def test_every_call_form_is_answered(form, written, files, expected, adapter, stimuli):
    import warnings

    from visrecur.brainscore import TaskError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreached and past-trained warnings: tested in test_brainscore_time.py
        if expected.startswith("refused"):
            with pytest.raises(TaskError, match=expected.partition(": ")[2]):
                call(form, adapter, stimuli)
            return
        out = call(form, adapter, stimuli)
    if expected == "degrees":
        assert out == 8
    elif expected == "neural":
        assert out.dims == ("presentation", "neuroid", "time_bin")
        assert list(out.indexes["time_bin"].names) == ["time_bin_start", "time_bin_end"]
        assert out.sizes["presentation"] == (1 if form == "look_at_one_stimulus" else 10)
        assert len(set(out["neuroid_id"].values)) == out.sizes["neuroid"] and not np.isnan(out.values).any()
    elif expected == "labels":
        assert out.dims == ("choice", "presentation") and set(out.values[0]) <= {"7", "3"}
        assert out.sizes["presentation"] == 10  # ten trials of a deterministic model: one presentation each
    elif expected.startswith("probabilities"):
        trials = 10 if "x10" in expected else 1
        assert out.dims == ("presentation", "choice") and set(out["choice"].values) == {"3", "7"}
        assert out.sizes["presentation"] == 10 * trials
        np.testing.assert_allclose(out.values.sum(1), 1, rtol=1e-6)
        if trials > 1:  # microsaccades: the trials of a stimulus differ
            assert np.ptp(out.values[:10, 0]) > 0 and out["microsaccade_shift_x_degrees"].values[1] != 0
    elif expected == "probe":
        assert out == {"label": True, "probabilities": True, "odd_one_out": True}
    elif expected == "odd one out":
        assert out.dims == ("choice", "presentation") and out.sizes["presentation"] == 3
        assert all(choice in triplet.split("|") for choice, triplet in zip(out.values[0], out["presentation"].values))


def test_imagenet_readouts_go_through_brainscores_labelbehavior(brainscore, stimuli):
    """A model that reads out 1000 classes: 'imagenet' gives synsets, labels map to ImageNet classes by
    Brain-Score's table and pool by aggregation (LabelBehavior itself); checked here from the logits."""
    from brainscore_vision.model_helpers.brain_transformation.behavior import LabelToImagenetIndices

    from visrecur.brainscore import VisrecurBrainModel

    model = VisrecurBrainModel(tiny(num_classes=1000), progress=False)
    model.start_task("label", "imagenet")
    synsets = model.look_at(stimuli)
    logits, _ = model._logits(stimuli)
    assert synsets["logit"].values.tolist() == logits.argmax(1).tolist() and synsets.values[0][0].startswith("n")
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    for aggregation, pool in (("mean", np.mean), ("max", np.max)):
        model.start_task("label", ["dog", "cat"], aggregation=aggregation)
        pooled = np.stack([pool(p[:, LabelToImagenetIndices.label_to_indices(c)], 1) for c in ("dog", "cat")], 1)
        assert model.look_at(stimuli).values[0].tolist() == [["dog", "cat"][k] for k in pooled.argmax(1)]


@pytest.mark.parametrize("method,kwargs", [("start_task", {"task": "label", "choices": ["3"]}),
                                           ("look_at", {"trials": 2}),
                                           ("start_recording", {"recording_target": "IT", "time_bins": [(70, 170)],
                                                                "region": "IT"})])
def test_a_keyword_brainscore_does_not_define_is_one_line(adapter, stimuli, method, kwargs):
    from visrecur.brainscore.calls import KeywordError

    args = (stimuli,) if method == "look_at" else ()
    with pytest.raises(KeywordError, match=rf"{method}\(\) got the keyword '\w+', which Brain-Score's BrainModel does "
                                           rf"not define; {method} takes "):
        getattr(adapter, method)(*args, **kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"number_of_trials": 0}, "number_of_trials=0 must be a whole number of at least 1"),
    ({"number_of_trials": 2.5}, "number_of_trials=2.5 must be"),
    ({"require_variance": "yes"}, "require_variance='yes' must be True or False"),
])
def test_bad_trials_are_one_line(adapter, stimuli, kwargs, message):
    from visrecur.errors import InputError

    adapter.start_recording("V1", [(0, 35)])
    with pytest.raises(InputError, match=re.escape(message)):
        adapter.look_at(stimuli, **kwargs)


def test_bad_tasks_are_one_line(adapter, stimuli):
    from visrecur.brainscore import TaskError

    for args, kwargs, message in [
        (("label", ["3"]), {"aggregation": "median"}, "aggregation='median' is not one of Brain-Score's (mean, max)"),
        (("probabilities", stimuli), {"aggregation": "max"}, "aggregation applies to the label task only"),
        (("label", ["cat"]), {}, "label(s) 'cat' name no class of this model's readout"),
        (("probabilities",), {}, "this task needs fitting_stimuli: a Brain-Score StimulusSet with an 'image_label'"),
        (("count",), {}, "task 'count' is not one of Brain-Score's"),
    ]:
        with pytest.raises(TaskError, match=re.escape(message)):
            adapter.start_task(*args, **kwargs)


# --- Brain-Score's own benchmark classes and helpers on stand-in data ---------------------------------
def neural_assembly(stimuli, region, bins, neuroids=6, seed=0):
    """presentation x neuroid x time_bin stand-in recordings; one bin is squeezed as Brain-Score does."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    rng = np.random.default_rng(seed)
    bins = np.asarray(bins, dtype=float)
    assembly = NeuroidAssembly(rng.standard_normal((len(stimuli), neuroids, len(bins))),
                               dims=["presentation", "neuroid", "time_bin"], coords={
        **{c: ("presentation", stimuli[c].to_numpy()) for c in stimuli.columns},
        "neuroid_id": ("neuroid", [f"n{k}" for k in range(neuroids)]), "region": ("neuroid", [region] * neuroids),
        "subject": ("neuroid", ["s0", "s1"] * (neuroids // 2)),
        "time_bin_start": ("time_bin", bins[:, 0]), "time_bin_end": ("time_bin", bins[:, 1])})
    if len(bins) == 1:
        assembly = assembly.isel(time_bin=0)
    assembly.attrs["stimulus_set"] = stimuli
    return assembly


def test_brainscores_neural_benchmarks_run_on_the_adapter(adapter, stimuli):
    """NeuralBenchmark (one bin (70, 170); 30 bins of 10 ms with Brain-Score's per-bin RDM metric),
    TrainTestNeuralBenchmark and RSABenchmark on LAION's (0, 0), each Brain-Score's own __call__; the
    memory preflight probes through start_recording and look_at."""
    import warnings

    from brainscore_core.metrics import Score
    from brainscore_vision.benchmark_helpers.memory import preallocate_memory
    from brainscore_vision.benchmark_helpers.neural_common import (NeuralBenchmark, RSABenchmark,
                                                                     TrainTestNeuralBenchmark)
    from brainscore_vision.metric_helpers.temporal import PerTime
    from brainscore_vision.metrics.rdm.metric import RDMMetric

    static = NeuralBenchmark("standin.IT-rdm", neural_assembly(stimuli, "IT", [(70, 170)]), RDMMetric(), 8, 1,
                             ceiling_func=lambda: Score(1.0), version=1, parent="IT")
    ten_ms = [(t, t + 10) for t in range(0, 300, 10)]
    temporal = NeuralBenchmark("standin.V1-temporal", neural_assembly(stimuli, "V1", ten_ms),
                               lambda source, target: Score(np.mean(PerTime(RDMMetric())(source, target).values)),
                               8, 1, ceiling_func=lambda: Score(1.0), version=1, parent="V1")
    half = [stimuli.iloc[:5].reset_index(drop=True), stimuli.iloc[5:].reset_index(drop=True)]
    for part in half:
        part.stimulus_paths, part.identifier = stimuli.stimulus_paths, None
    traintest = TrainTestNeuralBenchmark(
        "standin.V4-split", lambda: Score(1.0), 1, neural_assembly(half[0], "V4", [(70, 170)]),
        neural_assembly(half[1], "V4", [(70, 170)], seed=1),
        lambda source_train, target_train, source_test, target_test: Score(
            float(source_train.shape[0] == 5 and source_test.ndim == 2)), 8, 1, "V4")
    laion = neural_assembly(stimuli, "V1", [(0, 0)])
    rsa = RSABenchmark("standin.V1-rdm", 1, laion, "V1", 8, 1, "", ceiler=lambda assembly: Score(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = {name: benchmark(adapter) for name, benchmark in
                  (("static", static), ("temporal", temporal), ("traintest", traintest), ("rsa", rsa))}
        preallocate_memory(adapter, static, raise_if_oom=False)
    assert all(np.isfinite(float(s)) for s in scores.values()), scores
    assert float(scores["traintest"]) == 1.0  # the split's stand-in metric saw 5 presentations and 2-D activity


def test_kar2019_and_marques2020_helpers_on_the_adapter(adapter, stimuli, monkeypatch):
    """Kar2019's own bins and its temporally_varying check on one stimulus; Marques2020's
    record_from_model (stimuli placed on screen, look_at with the trials positional, the bin squeezed)."""
    import warnings

    import brainscore_vision
    from brainscore_vision.benchmark_helpers import properties_common
    from brainscore_vision.benchmarks.kar2019.benchmark import TIME_BINS, temporally_varying

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter.start_recording("IT", time_bins=TIME_BINS)
        one = stimuli[:1]
        one.identifier = None
        assert bool(temporally_varying(adapter.look_at(one, number_of_trials=1)))
        on_screen = stimuli.copy()
        on_screen["degrees"] = 8.0
        on_screen.stimulus_paths, on_screen.identifier = stimuli.stimulus_paths, "standin-gratings"
        monkeypatch.setattr(brainscore_vision, "load_stimulus_set", lambda identifier: on_screen)
        adapter.start_recording("V1", time_bins=[(70, 170)])
        activations = properties_common.record_from_model(adapter, "standin-gratings", 10)
    assert activations.dims == ("presentation", "neuroid") and activations.sizes["presentation"] == 10


def test_hebart2023_benchmark_runs_on_the_adapter(adapter, stimuli, monkeypatch):
    """Hebart2023Match itself, its data swapped for stand-ins: triplets whose third image is the odd one
    by the adapter's own features are all 'correct', so the raw score is 1."""
    from brainscore_core.supported_data_standards.brainio.assemblies import BehavioralAssembly
    from brainscore_vision.benchmarks.hebart2023 import benchmark as hebart

    from test_brainscore_model import features_by_hand

    features = features_by_hand(adapter.model, stimuli)
    rows = []
    for i, j, k in [(0, 1, 2), (3, 4, 5), (6, 7, 8), (1, 5, 9)]:
        similarity = {(i, j): features[i] @ features[j], (i, k): features[i] @ features[k],
                      (j, k): features[j] @ features[k]}
        pair = max(similarity, key=similarity.get)
        rows.append([*pair, ({i, j, k} - set(pair)).pop()])  # the odd one third, as Hebart's data put it
    ids = np.array([[f"id{v}" for v in row] for row in rows], dtype=object)
    assembly = BehavioralAssembly(np.zeros(len(rows)), dims=["presentation"], coords={
        "image_1": ("presentation", ids[:, 0]), "image_2": ("presentation", ids[:, 1]),
        "image_3": ("presentation", ids[:, 2])})
    indexed = stimuli.set_index(stimuli["stimulus_id"].values)
    indexed.stimulus_paths, indexed.identifier = stimuli.stimulus_paths, "standin-things"
    monkeypatch.setattr(hebart, "load_dataset", lambda identifier: assembly)
    monkeypatch.setattr(hebart, "load_stimulus_set", lambda identifier: indexed)
    score = hebart.Hebart2023Match()(adapter)
    assert float(score.attrs["raw"]) == 1.0
