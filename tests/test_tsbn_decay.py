"""TSBN decay fits (Fig. 5B): planted constants come back, and every channel the fit cannot judge says why."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analyses.tsbn_decay import decay_curve, fit_decay, fit_statistics, main, summarise_fits, tsbn_statistics
from visrecur import Preprocess
from visrecur.architecture import zoo
from visrecur.artifacts.checkpoint import FORMAT
from visrecur.timing import TimeMapping

# (kind, transition, channel) -> (asymptote, amplitude, tau): decays from above and rises from below
PLANTED = {("self", "V1->V1", 0): (2.0, 3.0, 2.5), ("self", "V1->V1", 1): (-1.0, -0.5, 1.2),
           ("self", "V1->V1", 2): (10.0, 4.0, 4.0), ("feedforward", "V1->V2", 0): (0.3, 1.0, 0.8)}


def synthetic(steps=range(1, 11), noise=0.0, seed=0, planted=PLANTED):
    """A tsbn_statistics-shaped table whose running mean follows the planted curves and whose running
    variance follows the same curves shifted by +5 (positive, as variances are)."""
    rng, rows = np.random.default_rng(seed), []
    t = np.asarray(list(steps), dtype=float)
    for (kind, transition, channel), (a, b, tau) in planted.items():
        y = decay_curve(t, a, b, tau, t[0])
        for step, mean, var in zip(t, y + rng.normal(0, noise, len(t)), y + 5 + rng.normal(0, noise, len(t))):
            rows.append({"transition": transition, "kind": kind, "bn_position": 0, "channel": channel,
                         "time": int(step), "running_mean": mean, "running_var": var})
    return pd.DataFrame(rows)


def test_noise_free_fit_recovers_planted_constants_and_ms():
    fits = fit_statistics(synthetic(), TimeMapping((20, 50))).set_index(["transition", "channel", "statistic"])
    for (kind, transition, channel), (a, b, tau) in PLANTED.items():
        for statistic, shift in (("running_mean", 0), ("running_var", 5)):
            row = fits.loc[(transition, channel, statistic)]
            assert row.status == "fit" and row.well_fit and row.kind == kind
            assert np.isclose(row.asymptote, a + shift, atol=1e-6) and np.isclose(row.amplitude, b, atol=1e-6)
            assert np.isclose(row.tau_steps, tau, rtol=1e-6) and row.r2 > 1 - 1e-9 and row.rmse < 1e-6
            # tau in ms through the mapping: 20 and 50 ms per step
            assert np.isclose(row.tau_min_ms, 20 * tau, rtol=1e-6) and np.isclose(row.tau_max_ms, 50 * tau, rtol=1e-6)
            assert (row.first_step, row.last_step, row.n_steps) == (1, 10, 10)
    one = fit_statistics(synthetic(), TimeMapping(30)).iloc[0]
    assert np.isclose(one.tau_min_ms, 30 * one.tau_steps) and np.isclose(one.tau_max_ms, 30 * one.tau_steps)


def test_noisy_fit_within_tolerance():
    """Noise of 1% of the amplitude (0.03 on an amplitude of 3) over 12 steps: tau within 15%, asymptote
    within 0.05, in each of 20 noise draws."""
    planted = {("self", "V1->V1", 0): (2.0, 3.0, 2.5)}
    for seed in range(20):
        fit = fit_statistics(synthetic(range(1, 13), noise=0.03, seed=seed, planted=planted)).iloc[0]
        assert fit.status == "fit" and fit.well_fit
        assert abs(fit.tau_steps - 2.5) < 0.15 * 2.5 and abs(fit.asymptote - 2.0) < 0.05
        assert abs(fit.amplitude - 3.0) < 0.1 and 0 < fit.tau_steps_se < 0.5


def test_too_few_steps_constant_and_straight_channels():
    t = np.arange(1, 6)
    # 3 steps: below the 4 a three-constant fit needs; 4 steps (the least) is fitted
    short = fit_decay(t[:3], decay_curve(t[:3], 1.0, 2.0, 1.5, 1))
    assert short["status"] == "too_few_steps" and np.isnan([short["asymptote"], short["tau_steps"], short["r2"]]).all()
    enough = fit_decay(t[:4], decay_curve(t[:4], 1.0, 2.0, 1.5, 1))
    assert enough["status"] == "fit" and np.isclose(enough["tau_steps"], 1.5, rtol=1e-5)
    assert fit_decay(t[:4], decay_curve(t[:4], 1.0, 2.0, 1.5, 1), min_steps=5)["status"] == "too_few_steps"
    constant = fit_decay(t, np.full(5, 0.7))
    assert constant["status"] == "constant" and constant["asymptote"] == pytest.approx(0.7)
    assert constant["amplitude"] == 0 and np.isnan(constant["tau_steps"]) and constant["change"] == 0
    line = fit_decay(t, 3 * t + 1.0)  # never levels off: no decay fits it
    assert line["status"] == "no_asymptote" and line["change"] == 12
    speeding_up = fit_decay(t, 2.0 ** t)
    assert speeding_up["status"] == "no_asymptote"
    jump = fit_decay(t, np.array([5.0, 1, 1, 1, 1]))  # all the change within the first step
    assert jump["status"] == "jump"
    # a decay too slow for the steps seen (tau 20 over a span of 9 steps): fitted exactly, but the
    # asymptote would be an extrapolation; tau = 9 (the span) still counts
    t = np.arange(1, 11)
    slow = fit_decay(t, decay_curve(t, 1.0, 2.0, 20.0, 1))
    assert slow["status"] == "no_asymptote" and slow["r2"] > 0.999999 and np.isclose(slow["tau_steps"], 20, rtol=1e-4)
    assert fit_decay(t, decay_curve(t, 1.0, 2.0, 8.9, 1))["status"] == "fit"


def test_summary_per_kind_by_hand():
    table = synthetic()
    short = synthetic(range(1, 4), planted={("feedback", "V2->V1", 0): (1.0, 1.0, 1.0)})
    flat = synthetic(planted={("bypass", "V1->V4", 0): (1.0, 0.0, 1.0)})  # amplitude 0: constant
    fits = fit_statistics(pd.concat([table, short, flat]))
    summary = summarise_fits(fits).set_index(["kind", "statistic"])
    self_mean = summary.loc[("self", "running_mean")]
    assert self_mean.n_channels == 3 and self_mean.n_fit == 3 and self_mean.fraction_well_fit == 1.0
    taus = sorted(tau for (kind, *_), (_, _, tau) in PLANTED.items() if kind == "self")
    assert self_mean.tau_steps_median == pytest.approx(np.median(taus), rel=1e-6)
    assert self_mean.tau_steps_q25 == pytest.approx(np.percentile(taus, 25), rel=1e-6)
    assert self_mean.tau_min_ms_median == pytest.approx(20 * np.median(taus), rel=1e-6)
    feedback = summary.loc[("feedback", "running_var")]
    assert feedback.n_too_few_steps == 1 and feedback.n_fit == 0 and np.isnan(feedback.fraction_well_fit)
    bypass = summary.loc[("bypass", "running_mean")]
    assert bypass.n_constant == 1 and np.isnan(bypass.fraction_well_fit)
    assert set(summary.reset_index().kind) == {"self", "feedforward", "feedback", "bypass"}


def tiny_trained(readout=6, time_steps=8):
    """frnn_2state (2 and 3 channels, 8x8) whose TSBN statistics were estimated at readout ``readout``:
    transitions ran at steps 1..readout-1, nothing later."""
    torch.manual_seed(0)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=readout, time_steps=time_steps,
                      input_size=8)
    model.train()
    for _ in range(3):
        model(torch.randn(8, 3, 8, 8) * 2 + 1, readout_time=readout)
    return model.eval()


def test_fits_use_only_the_steps_run_in_training():
    """Trained at readout 6 (steps 1..5) in a model built for 8: h1->h1 is fitted on steps 1..5 (first step
    1, last trained step 5, never step 6 past it); h2->h1 runs from step 2: 4 steps, the least fitted."""
    fits = fit_statistics(tsbn_statistics(tiny_trained()))
    own = fits[fits.transition == "h1->h1"]
    assert (own.first_step == 1).all() and (own.last_step == 5).all() and (own.n_steps == 5).all()
    back = fits[fits.transition == "h2->h1"]
    assert (back.first_step == 2).all() and (back.last_step == 5).all() and (back.n_steps == 4).all()
    assert set(fits.kind) == {"self", "feedforward", "feedback"}
    assert (fits.status != "too_few_steps").all()
    # 2 BNs per transition: source width, then the mean width; 2 statistics each
    assert len(own) == 2 * (2 + 2) and len(fits[fits.transition == "h2->h2"]) == 2 * (3 + 3)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny trained model as a checkpoint, beside data/ with 3 training and 3 test images per class."""
    tmp_path = tmp_path_factory.mktemp("tsbn")
    model = tiny_trained()
    path = tmp_path / "tiny.pt"
    torch.save({"format": FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict(),
                "preprocess": Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3).to_dict()}, path)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(2):
            folder = tmp_path / "data" / split / f"c{c}"
            folder.mkdir(parents=True)
            for k in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    return path


def test_command_writes_raw_fits_and_summary(checkpoint, tmp_path):
    out = tmp_path / "results"
    assert main(["--checkpoint", str(checkpoint), "--out-dir", str(out), "--recalibrate", "4", "--until", "7",
                 "--data-root", str(checkpoint.parent / "data")]) == 0
    raw = pd.read_csv(out / "tsbn_decay.csv")
    fits = pd.read_csv(out / "tsbn_decay_fits.csv")
    summary = pd.read_csv(out / "tsbn_decay_summary.csv")
    recalibrated = raw[raw.estimated_by == "recalibration on 4 training images"]
    trained = raw[raw.estimated_by == "training"]
    # trained: steps 1..5; recalibrated: every step a readout at 7 runs, 1..6 (one past training)
    assert sorted(trained.time.unique()) == [1, 2, 3, 4, 5] and sorted(recalibrated.time.unique()) == list(range(1, 7))
    assert (raw.model == str(checkpoint)).all()
    assert set(fits.estimated_by) == set(raw.estimated_by) and len(fits) == 2 * 2 * 19  # channels: h1->h1 2+2, h1->h2 2+2, h2->h1 3+2, h2->h2 3+3
    assert {"tau_min_ms", "tau_max_ms", "r2", "rmse", "well_fit", "status"} <= set(fits.columns)
    assert {"fraction_well_fit", "tau_steps_median", "tau_steps_q25", "tau_steps_q75", "r2_median"} <= set(summary.columns)
    assert not list(out.glob("*.tmp"))


def test_refit_rewrites_only_the_fits(tmp_path):
    """--refit fits a raw table already written (one without model/estimated_by columns too) with other
    options, and leaves the raw table alone."""
    out = tmp_path / "results"
    out.mkdir()
    synthetic().to_csv(out / "tsbn_decay.csv", index=False)
    before = (out / "tsbn_decay.csv").read_text()
    assert main(["--refit", str(out / "tsbn_decay.csv"), "--min-steps", "11", "--out-dir", str(out)]) == 0
    fits = pd.read_csv(out / "tsbn_decay_fits.csv")
    assert (fits.status == "too_few_steps").all() and (out / "tsbn_decay.csv").read_text() == before
    assert main(["--refit", str(out / "tsbn_decay.csv"), "--out-dir", str(out)]) == 0
    assert (pd.read_csv(out / "tsbn_decay_fits.csv").status == "fit").all()
    assert (pd.read_csv(out / "tsbn_decay_summary.csv").estimated_by == "training").all()


@pytest.mark.parametrize("args, message", [
    (["--min-steps", "3"], "needs at least 4 steps"),
    (["--r2-threshold", "0"], "must be in (0, 1]"),
    (["--r2-threshold", "1.5"], "must be in (0, 1]"),
    (["--ms-per-step", "50", "20"], "give the smaller duration first"),
    (["--until", "8"], "give --recalibrate N too"),
    (["--recalibrate", "0"], "must be at least 1 image"),
    (["--recalibrate", "2", "--until", "1"], "readout time >= 2"),
    (["--recalibrate", "2", "--data-root", "nowhere"], "does not exist"),
    (["--untrained"], "no transition has TSBN statistics estimated from data"),
    (["--refit", "nothing.csv"], "--refit nothing.csv: no such file"),
    (["--refit", "tiny.csv"], "has no column(s) ['running_var']"),
    (["--refit", "tiny.csv", "--recalibrate", "2"], "drop --model and --recalibrate"),
], ids=["min-steps", "r2-zero", "r2-above-one", "ms-low-high", "until-alone", "recalibrate-zero", "until-1",
        "no-data", "untrained", "refit-missing", "refit-columns", "refit-and-checkpoint"])
def test_bad_input_one_line(args, message, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args == ["--untrained"]:
        model = zoo.build("frnn_2state_shared", channels=(2, 3), input_size=8)
        torch.save({"format": FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict()}, "bare.pt")
        args = ["--checkpoint", "bare.pt"]
    elif args[0] == "--refit" and len(args) == 2:
        synthetic().drop(columns="running_var").to_csv("tiny.csv", index=False)
    else:
        args = ["--checkpoint", str(checkpoint), *args]
    try:
        code = main([*args, "--out-dir", "out"])
    except SystemExit as exit:  # argparse-level refusals exit from inside the parser
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error:")
    assert not (tmp_path / "out").exists()
