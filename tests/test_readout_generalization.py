"""Fig. 5A: a multi-state ResNet trained at one readout time, tested at others (visrecur.nn.retime and
analyses.readout_generalization). The paper: 2-state ResNet, first state unrolled N = t - 3 times."""
import pandas as pd
import pytest
import torch

from analyses.readout_generalization import generalization_errors, main
from visrecur.architecture import zoo
from visrecur.training.data import TensorBatches
from visrecur.errors import InputError, SpecError
from visrecur.training.evaluate import evaluate
from visrecur.nn.retime import first_state_unrolls, retime

TRAINED = 6  # N = 3 runs of h1's self-transition, then h1->h2 at step 4, h2->h2 at 5, readout at 6


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = zoo.build("resnet_2state_shared", readout_time=TRAINED, channels=(2, 3), input_size=8)
    model.train()
    for _ in range(4):  # statistics that differ from step to step
        model(torch.randn(16, 3, 8, 8) * 2 + 1)
    model.eval()
    return model


def states(model, x, t):
    seen = {}
    model(x, readout_time=t, observer=lambda name, step, h: seen.__setitem__((name, step), h.clone()))
    return seen


def test_unrolls_follow_the_paper():
    graph = zoo.build("resnet_2state_shared", readout_time=13, channels=(2, 3), input_size=8).spec.graph
    assert [first_state_unrolls(graph, t) for t in (7, 13, 23)] == [4, 10, 20]  # N = t - 3
    assert retime(zoo.build("resnet_2state_shared", readout_time=13, channels=(2, 3), input_size=8),
                  23).spec.graph.self_steps == {"h1": 20, "h2": 1}


def test_trained_readout_is_the_model_itself(trained):
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(retime(trained, TRAINED)(x), trained(x))


def test_schedule_first_last_trained_and_first_past(trained):
    """h1 runs once more per extra readout step; h1 after k runs is the same in every retimed model
    while k <= N (trained statistics run by run); run N + 1 (first past) uses run N's statistics."""
    x = torch.randn(4, 3, 8, 8)
    base = states(trained, x, TRAINED)
    longer = retime(trained, TRAINED + 1)
    seen = states(longer, x, TRAINED + 1)
    for k in (1, 3):  # first run, last trained run (N = 3)
        assert torch.equal(seen[("h1", k)], base[("h1", k)])
    # first run past: h1 <- h1 + F(h1) with run 3's statistics, computed by hand from a model whose
    # step-4 statistics are copied from step 3
    by_hand = retime(trained, TRAINED + 1)
    for norm in by_hand.norms["h1->h1"]:
        norm.stats[4].load_state_dict(norm.stats[3].state_dict())
    assert torch.equal(seen[("h1", 4)], states(by_hand, x, TRAINED + 1)[("h1", 4)])
    assert not torch.allclose(seen[("h1", 4)], seen[("h1", 3)])
    # the later states run once each, one step later, with the statistics they were trained with
    assert ("h2", 5) in seen and ("h2", 4) not in seen and ("h2", 4) in base
    torch.testing.assert_close(longer.norms["h1->h2"][0].stats[5].running_mean,
                               trained.norms["h1->h2"][0].stats[4].running_mean)
    torch.testing.assert_close(longer.postnet.norm.stats[TRAINED + 1].running_var,
                               trained.postnet.norm.stats[TRAINED].running_var)


def test_one_step_shorter_reads_h1_earlier(trained):
    x = torch.randn(4, 3, 8, 8)
    shorter = retime(trained, TRAINED - 1)
    assert shorter.spec.graph.self_steps["h1"] == 2
    seen, base = states(shorter, x, TRAINED - 1), states(trained, x, TRAINED)
    assert torch.equal(seen[("h1", 2)], base[("h1", 2)])
    # h1 stops after its N = 2 runs (it only holds its value), one step earlier than in training
    assert torch.equal(seen[("h1", 3)], seen[("h1", 2)]) and not torch.equal(base[("h1", 3)], base[("h1", 2)])
    assert ("h2", 3) in seen and ("h2", 2) not in seen


def test_analysis_at_trained_readout_equals_plain_evaluation(trained):
    batches = TensorBatches(torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8),
                            torch.randint(0, 10, (20,)), 10, (0.5,) * 3, (0.25,) * 3, train=False)
    with torch.no_grad():
        table = generalization_errors(trained, batches, [TRAINED - 1, TRAINED, TRAINED + 1])
        plain = evaluate(trained, batches, [TRAINED], "cpu")[TRAINED]
    row = table.set_index("readout_time")
    assert row.loc[TRAINED, "error"] == plain
    assert row.loc[TRAINED, "borrowed_statistics"] == "none"
    assert row.loc[TRAINED + 1, "borrowed_statistics"] == "4<-3"  # first past: run 4 borrows run 3
    assert list(row["relative_to_trained"]) == ["before", "trained", "after"]
    assert list(row["latency_min_ms"]) == [20 * 5, 20 * 6, 20 * 7] and row.loc[7, "latency_max_ms"] == 350
    assert list(row["first_state_unrolls"]) == [2, 3, 4]


def test_recalibration_estimates_the_runs_past_training(trained):
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    batches = TensorBatches(images, torch.zeros(16, dtype=torch.long), 8, (0.5,) * 3, (0.25,) * 3, train=False)

    with torch.no_grad():
        table = generalization_errors(trained, batches, [TRAINED, TRAINED + 2],
                                      calibration=[x for x, _ in batches.batches()])
    assert set(table["borrowed_statistics"]) == {"none"}
    assert set(table["tsbn_policy"]) == {"past"} and set(table["calibration"]) == {"16 training images"}
    # the model itself is untouched
    assert trained.norms["h1->h1"][0].trained_steps() == [1, 2, 3]


def test_every_step_recalibrated_on_the_test_batch_equals_batch_statistics(trained):
    """Every step re-estimated from one batch, then evaluated on that batch: each normalisation uses that
    batch's own mean and variance, which is what a training-mode forward does (independent of the
    recalibration's passes). Checked before, at and past the trained readout time (N = 2, 3, 4)."""
    import copy

    model = copy.deepcopy(trained)
    with torch.no_grad():  # a read-out that tells the images apart: class k <- h2's channel k (an untrained
        model.postnet.fc.weight.zero_()  # one answers one class for all); classes 3..9 never win
        model.postnet.fc.weight[:3].copy_(torch.eye(3))
        model.postnet.fc.bias.zero_()
    torch.manual_seed(3)
    # a colour per image plus noise: global features that differ from image to image, so predictions do
    colours = torch.rand(32, 3, 1, 1) * 200
    images = (colours + torch.rand(32, 3, 8, 8) * 55).to(torch.uint8)
    one_batch = TensorBatches(images, torch.zeros(32, dtype=torch.long), 32, (0.5,) * 3, (0.25,) * 3, train=False)
    x = next(iter(one_batch.batches()))[0]
    times = [TRAINED - 1, TRAINED, TRAINED + 1]
    with torch.no_grad():
        # labels: what batch statistics predict at the trained time; the errors elsewhere by hand
        predicted = {t: retime(model, t).train()(x, readout_time=t).argmax(1) for t in times}
        labels = predicted[TRAINED]
        expected = {t: (predicted[t] != labels).float().mean().item() for t in times}
        batches = TensorBatches(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=False)
        every = generalization_errors(model, batches, times, calibration=[x], recalibrate="every")
        last = generalization_errors(model, batches, times)
    assert dict(zip(every["readout_time"], every["error"])) == pytest.approx(expected)
    assert every.set_index("readout_time").loc[TRAINED, "error"] == 0
    assert len(set(labels.tolist())) == 3  # predictions that vary, so errors can differ
    assert (last["error"] > 0).all()  # the trained statistics (fitted to other inputs) do differ: not vacuous
    assert set(every["tsbn_policy"]) == {"every"} and set(every["calibration"]) == {"32 training images"}
    assert model.norms["h1->h1"][0].trained_steps() == [1, 2, 3]  # the model itself is untouched
    # after-first-state: h1 keeps its trained runs' statistics, every later step uses the batch's own,
    # built by hand by putting only the later steps' batch norms in training mode
    with torch.no_grad():
        after = generalization_errors(model, batches, times, calibration=[x], recalibrate="after-first-state")
        by_hand = {}
        for t in times:
            tested = retime(model, t).eval()
            for key in ("h1->h2", "h2->h2"):
                tested.norms[key].train()
            tested.postnet.norm.train()
            by_hand[t] = (tested(x, readout_time=t).argmax(1) != labels).float().mean().item()
    assert dict(zip(after["readout_time"], after["error"])) == pytest.approx(by_hand)
    # h1's first run past training still borrows run 3's statistics (N = 4 at t = 7); with "every", none
    assert list(after["borrowed_statistics"]) == ["none", "none", "4<-3"]
    assert list(every["borrowed_statistics"]) == ["none", "none", "none"]
    assert set(after["tsbn_policy"]) == {"after-first-state"} and set(after["calibration"]) == {"32 training images"}
    with pytest.raises(InputError, match="is not one of past, every, after-first-state"):
        generalization_errors(model, batches, times, calibration=[x], recalibrate="all")


def test_concurrent_models_read_out_without_retiming():
    torch.manual_seed(1)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=3, input_size=8).eval()
    batches = TensorBatches(torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (12,)),
                            6, (0.5,) * 3, (0.25,) * 3, train=False)
    with torch.no_grad():
        table = generalization_errors(model, batches, [2, 3, 5])
        expected = evaluate(model, batches, [2, 3, 5], "cpu")
    assert dict(zip(table["readout_time"], table["error"])) == expected
    with pytest.raises(SpecError, match="reads out at any readout time"):
        retime(model, 4)
    with pytest.raises(InputError, match="no steps come after the first state's runs"):
        generalization_errors(model, batches, [3], calibration=[next(iter(batches.batches()))[0]],
                              recalibrate="after-first-state")


def test_refusals(trained):
    with pytest.raises(SpecError, match=r"readout_time >= 4"):
        retime(trained, 3)
    unshared = zoo.build("resnet_2state_unshared", readout_time=6, channels=(2, 3), input_size=8)
    with pytest.raises(SpecError, match="weight_sharing='shared'"):
        retime(unshared, 7)


@pytest.mark.parametrize("argv, message", [
    (["--limit", "0"], "--limit 0 must be at least 1"),
    (["--recalibrate-steps", "every"], "--recalibrate-steps says which statistics"),
    (["--readout-times", "0", "5"], "readout times start at 1"),
    (["--ms-per-step", "50", "20"], "0 < low <= high"),
    (["--out", "g.txt"], "give a name ending in .csv"),
])
def test_command_refuses_bad_input(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv if "--out" in argv else argv + ["--out", "g.csv"])
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    assert code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_command_on_a_checkpoint(tmp_path, trained, monkeypatch):
    """End to end on a tiny saved checkpoint and a tiny image folder."""
    from PIL import Image

    from visrecur.artifacts import checkpoint as ck

    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for k in range(3):
                Image.new("RGB", (8, 8), (40 * k, 100 if c == "a" else 10, 0)).save(
                    tmp_path / "imgs" / split / c / f"{k}.png")
    torch.save({"format": ck.FORMAT, "model": trained.state_dict(), "spec": trained.spec.to_dict(),
                    "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}, tmp_path / "m.pt")
    out = tmp_path / "g.csv"
    main(["--model", str(tmp_path / "m.pt"), "--data-root", str(tmp_path / "imgs"), "--readout-times", "5", "6", "8",
          "--recalibrate", "4", "--recalibrate-steps", "past", "every", "--out", str(out)])
    table = pd.read_csv(out)
    assert len(table) == 9 and set(table["test_images"]) == {6}
    assert list(table["tsbn_policy"].unique()) == ["trained", "past", "every"]
    assert list(table["calibration"].unique()) == ["none", "4 training images"]
    main(["--model", str(tmp_path / "m.pt"), "--data-root", str(tmp_path / "imgs"), "--readout-times", "6",
          "--recalibrate", "4", "--recalibrate-steps", "every", "--augment-calibration", "--out", str(out)])
    assert list(pd.read_csv(out)["tsbn_policy"]) == ["trained", "every"]
    assert list(pd.read_csv(out)["calibration"]) == ["none", "4 augmented training images"]
    assert main(["--model", str(tmp_path / "m.pt"), "--data-root", str(tmp_path / "imgs"),
                 "--readout-times", "3", "--out", str(tmp_path / "h.csv")]) == 2
    assert not (tmp_path / "h.csv").exists()


def run_notebook(monkeypatch, results):
    import json

    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path
    notebook = Path(__file__).resolve().parents[1] / "figures" / "readout_generalization.ipynb"
    monkeypatch.setenv("VISRECUR_RESULTS", str(results))
    monkeypatch.setenv("VISRECUR_FIGURES", str(results / "out"))
    namespace = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), notebook.name, "exec"), namespace)
    return namespace


@pytest.mark.slow  # runs a notebook
def test_notebook_draws_the_table(trained, tmp_path, monkeypatch):
    batches = TensorBatches(torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8),
                            torch.randint(0, 10, (10,)), 10, (0.5,) * 3, (0.25,) * 3, train=False)
    calibration = [x for x, _ in batches.batches()]
    with torch.no_grad():  # every policy the analysis writes: a line each
        table = pd.concat([generalization_errors(trained, batches, [5, 6, 7, 8])] + [
            generalization_errors(trained, batches, [5, 6, 7, 8], calibration=calibration, recalibrate=steps)
            for steps in ("past", "every", "after-first-state")])
    table["test_images"] = 10
    table.to_csv(tmp_path / "readout_generalization.csv", index=False)
    namespace = run_notebook(monkeypatch, tmp_path)
    assert (tmp_path / "out" / "readout_generalization.png").stat().st_size > 5000
    legend = [text.get_text() for text in namespace["ax"].get_legend().get_texts()]
    assert legend == [f"TSBN statistics: {policy}" for policy in table["tsbn_policy"].unique()]
    assert len(legend) == 4


def test_notebook_names_the_command_when_results_are_missing(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="python -m analyses.readout_generalization"):
        run_notebook(monkeypatch, tmp_path)
