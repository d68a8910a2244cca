"""Accuracy, confidence and model reaction times against time in milliseconds (20-50 ms per step).

    python -m analyses.latency [--model NAME_OR_CHECKPOINT ...] [--limit 1000] [--readout-times 2 3 ... 10]
        [--criterion max_softmax|entropy] [--thresholds 0.5 ... 0.99] [--recalibrate N [--augment-calibration]]
        [--ms-per-step 20 50]

Every readout time comes from one pass per batch (``model(images, readout_time=[...])``). Confidence is
the largest softmax probability (``max_softmax``) or the softmax's entropy divided by log(classes)
(``entropy``: 0 certain, 1 uniform). An image's model reaction time (RT) is the first evaluated readout
time at which its confidence crosses the threshold (max softmax >= threshold; normalised entropy <=
threshold); its decision is the argmax there. An image that has not crossed by the last readout time
evaluated has no RT (``rt_steps`` empty, ``crossed`` False). The speed-accuracy table gives, per
threshold, how many images never crossed, the mean RT and the accuracy over the images that crossed, and
beside them the same with every never-crossing image forced to decide at the last readout time (its RT
counted as that step: a lower bound on the mean). Milliseconds come from ``visrecur.timing.TimeMapping``:
readout time t is t*low to t*high ms after onset (``*_ms_low``, ``*_ms_high``); the mapping is linear, so
a mean RT in ms is the mapping of the mean RT in steps.

Readout times past the trained ones normalise with the last trained step's TSBN statistics, or with
``--recalibrate N`` with statistics estimated from N training images; every table says which
(``tsbn_past_trained``) and ``latency_accuracy.csv`` says which steps borrowed statistics.

Writes, under --out-dir (default results/): latency_accuracy.csv (per model and readout time),
latency_reaction_times.csv (per model, threshold and image), latency_speed_accuracy.csv (per model and
threshold), latency_rt_by_class.csv (the RT distribution of each class: one row per RT step, and one for
"never crossed", with counts and percentages of the class).
"""
from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from analyses import timed_readout
from visrecur.training import data
from visrecur.errors import ArgumentParser, InputError, report_errors
from visrecur.artifacts.io import data_root
from visrecur.timing import DEFAULT_MAPPING, DEFAULT_MS_PER_STEP, TimeMapping

CRITERIA = ("max_softmax", "entropy")
DEFAULT_THRESHOLDS = {"max_softmax": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99),
                      "entropy": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)}


# --- checks ---------------------------------------------------------------------------------------
def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise InputError(f"confidence criterion {criterion!r} is not known; use one of {', '.join(CRITERIA)}")
    return criterion


def check_thresholds(thresholds: Sequence[float]) -> list[float]:
    """Thresholds are probabilities (max softmax) or normalised entropies: each in (0, 1]."""
    values = [float(t) for t in thresholds]
    if not values:
        raise InputError("no thresholds given; give at least one in (0, 1], e.g. --thresholds 0.5 0.9")
    for t in values:
        if not (math.isfinite(t) and 0 < t <= 1):
            raise InputError(f"threshold {t:g} is outside (0, 1]: confidence is a max-softmax probability or an "
                             "entropy divided by log(classes); give thresholds in (0, 1], e.g. 0.5 0.9")
    return sorted(set(values))


def check_consecutive(times: Sequence[int]) -> list[int]:
    times = sorted(set(int(t) for t in times))
    if times != list(range(times[0], times[-1] + 1)):
        raise InputError(f"readout times {' '.join(map(str, times))} skip steps; a reaction time is the first step "
                         f"that crosses, so give every step, e.g. {' '.join(map(str, range(times[0], times[-1] + 1)))}")
    return times


# --- per image, per readout time ------------------------------------------------------------------
@torch.no_grad()
def readout_probabilities(model, batches, readout_times: Sequence[int], progress: bool = False):
    """(softmax probabilities (images, readout times, classes) as float64, labels) from one pass per batch."""
    from tqdm.auto import tqdm

    model.eval()
    times = list(readout_times)
    probs, labels = [], []
    for images, batch_labels in tqdm(data.epoch_batches(batches, 0), total=len(batches), desc="readouts",
                                     disable=not progress, leave=False):
        logits = model(images, readout_time=times)
        probs.append(torch.stack([logits[t].double().softmax(-1) for t in times], dim=1))
        labels.append(batch_labels)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def confidence(probs: np.ndarray, criterion: str) -> np.ndarray:
    """max softmax, or entropy / log(classes) (0 log 0 = 0), over the last axis."""
    if check_criterion(criterion) == "max_softmax":
        return probs.max(-1)
    plogp = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1)), 0.0)
    return -plogp.sum(-1) / np.log(probs.shape[-1])


def crossed(conf: np.ndarray, threshold: float, criterion: str) -> np.ndarray:
    return conf >= threshold if criterion == "max_softmax" else conf <= threshold


def first_crossing(conf: np.ndarray, threshold: float, criterion: str) -> np.ndarray:
    """Index (along the time axis, the last) of the first readout that crosses, -1 where none does."""
    hit = crossed(conf, threshold, criterion)
    return np.where(hit.any(-1), hit.argmax(-1), -1)


# --- tables ---------------------------------------------------------------------------------------
def accuracy_table(probs, labels, times, mapping: TimeMapping = DEFAULT_MAPPING) -> pd.DataFrame:
    """Per readout time: accuracy (with its binomial standard error) and mean confidence both ways."""
    correct = probs.argmax(-1) == labels[:, None]
    acc = correct.mean(0)
    low, high = mapping.latency(times)
    return pd.DataFrame({
        "readout_time": list(times), "time_ms_low": low, "time_ms_high": high,
        "accuracy_pct": 100 * acc, "accuracy_se_pct": 100 * np.sqrt(acc * (1 - acc) / len(labels)),
        "mean_max_softmax": confidence(probs, "max_softmax").mean(0),
        "mean_entropy_norm": confidence(probs, "entropy").mean(0),
        "n_images": len(labels), "chance_accuracy_pct": 100 / probs.shape[-1]})


def reaction_time_table(probs, labels, times, thresholds, criterion: str, mapping: TimeMapping = DEFAULT_MAPPING,
                        classes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (threshold, image): RT in steps and ms (empty when never crossed), the decision at the
    RT and whether it is correct."""
    times = np.asarray(times)
    conf = confidence(probs, criterion)
    decisions = probs.argmax(-1)
    n = len(labels)
    rows = []
    for threshold in check_thresholds(thresholds):
        first = first_crossing(conf, threshold, criterion)
        hit = first >= 0
        at = np.where(hit, first, 0)
        rt = np.where(hit, times[at], np.nan)
        low, high = mapping.latency(rt)
        decision = np.where(hit, decisions[np.arange(n), at], -1)
        rows.append(pd.DataFrame({
            "criterion": criterion, "threshold": threshold, "image": np.arange(n), "label": labels,
            "class_name": [classes[k] for k in labels] if classes is not None else labels.astype(str),
            "crossed": hit, "rt_steps": rt, "rt_ms_low": low, "rt_ms_high": high,
            "confidence_at_rt": np.where(hit, conf[np.arange(n), at], np.nan),
            "decision_at_rt": pd.Series(np.where(hit, decision, 0), dtype="Int64").where(pd.Series(hit)),
            "correct_at_rt": pd.Series(decision == labels, dtype="boolean").where(pd.Series(hit)),
            # forced choice at the last readout time for images that never crossed
            "decision_deadline": np.where(hit, decision, decisions[:, -1]),
            "correct_deadline": np.where(hit, decision, decisions[:, -1]) == labels}))
    return pd.concat(rows, ignore_index=True)


def speed_accuracy_table(rts: pd.DataFrame, last_time: int, mapping: TimeMapping = DEFAULT_MAPPING) -> pd.DataFrame:
    """Per threshold: never-crossed share; mean/median RT and accuracy over images that crossed; and with
    never-crossing images deciding at ``last_time`` (the last readout time evaluated)."""
    rows = []
    for (criterion, threshold), g in rts.groupby(["criterion", "threshold"], sort=True):
        hit = g.crossed.to_numpy(bool)
        rt = g.rt_steps.to_numpy(float)[hit]
        mean_rt = rt.mean() if hit.any() else np.nan
        deadline = np.where(hit, g.rt_steps.to_numpy(float), last_time).mean()
        low, high = mapping.latency([mean_rt, deadline])
        rows.append({"criterion": criterion, "threshold": threshold, "n_images": len(g), "n_crossed": int(hit.sum()),
                     "never_crossed_pct": 100 * (1 - hit.mean()), "mean_rt_steps": mean_rt,
                     "median_rt_steps": np.median(rt) if hit.any() else np.nan,
                     "mean_rt_ms_low": low[0], "mean_rt_ms_high": high[0],
                     "accuracy_at_rt_pct": 100 * g.correct_at_rt[hit].astype(bool).mean() if hit.any() else np.nan,
                     "mean_rt_deadline_steps": deadline, "mean_rt_deadline_ms_low": low[1],
                     "mean_rt_deadline_ms_high": high[1],
                     "accuracy_deadline_pct": 100 * g.correct_deadline.mean(), "last_readout_time": last_time})
    return pd.DataFrame(rows)


def rt_by_class_table(rts: pd.DataFrame, times: Sequence[int], mapping: TimeMapping = DEFAULT_MAPPING) -> pd.DataFrame:
    """The RT distribution of each class: for every (threshold, class), one row per readout time (zero
    counts included) and one with ``crossed`` False for the images that never crossed."""
    rows = []
    for (criterion, threshold, label, name), g in rts.groupby(["criterion", "threshold", "label", "class_name"],
                                                              sort=True):
        counts = g.rt_steps[g.crossed].value_counts()
        for t in list(times) + [None]:
            count = int((~g.crossed).sum()) if t is None else int(counts.get(float(t), 0))
            low, high = mapping.latency(np.nan if t is None else t)
            rows.append({"criterion": criterion, "threshold": threshold, "label": label, "class_name": name,
                         "crossed": t is not None, "rt_steps": np.nan if t is None else t,
                         "rt_ms_low": float(low), "rt_ms_high": float(high),
                         "n_images": count, "pct_of_class": 100 * count / len(g)})
    return pd.DataFrame(rows)


def latency_tables(model, batches, times, thresholds, criterion: str = "max_softmax",
                   mapping: TimeMapping = DEFAULT_MAPPING, classes=None, progress: bool = False) -> dict:
    """The four tables of one model: accuracy, reaction_times, speed_accuracy, rt_by_class."""
    times = check_consecutive(times)
    thresholds = check_thresholds(thresholds)
    probs, labels = readout_probabilities(model, batches, times, progress)
    rts = reaction_time_table(probs, labels, times, thresholds, criterion, mapping, classes)
    return {"accuracy": accuracy_table(probs, labels, times, mapping), "reaction_times": rts,
            "speed_accuracy": speed_accuracy_table(rts, times[-1], mapping),
            "rt_by_class": rt_by_class_table(rts, times, mapping)}


# --- command --------------------------------------------------------------------------------------
@report_errors
def main(argv=None):
    p = ArgumentParser(prog="python -m analyses.latency", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=[timed_readout.DEFAULT_MODEL], metavar="NAME_OR_CHECKPOINT",
                   help="shipped model name(s) or checkpoint path(s)")
    p.add_argument("--data-root", default=str(data_root() / "cifar10-jpeg"))
    p.add_argument("--limit", type=int, help="a fixed class-balanced subset of the test split (seed 0); "
                                             "default: all of it")
    p.add_argument("--readout-times", type=int, nargs="+",
                   help="consecutive readout times; default: the model's earliest to twice its trained steps")
    p.add_argument("--criterion", choices=CRITERIA, default="max_softmax",
                   help="confidence: max softmax (crosses upwards) or normalised entropy (crosses downwards)")
    p.add_argument("--thresholds", type=float, nargs="+",
                   help="in (0, 1]; default: " + "; ".join(f"{c}: {' '.join(map(str, v))}"
                                                          for c, v in DEFAULT_THRESHOLDS.items()))
    p.add_argument("--recalibrate", type=int, metavar="N",
                   help="estimate the TSBN statistics of steps past the trained ones from N training images "
                        "(default: use the last trained step's)")
    p.add_argument("--augment-calibration", action="store_true", help=timed_readout.AUGMENT_HELP)
    p.add_argument("--ms-per-step", nargs=2, type=float, default=list(DEFAULT_MS_PER_STEP), metavar=("LOW", "HIGH"))
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out-dir", default="results")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    timed_readout.check_counts(p, args, ("limit", "recalibrate", "batch_size"))
    timed_readout.check_augment(p, args)
    if args.readout_times and min(args.readout_times) < 1:
        p.error(f"--readout-times {' '.join(map(str, args.readout_times))}: readout times start at 1")
    thresholds = check_thresholds(args.thresholds or DEFAULT_THRESHOLDS[args.criterion])
    mapping = TimeMapping(tuple(args.ms_per_step))
    out_dir = timed_readout.check_output_folder(args.out_dir)
    models = timed_readout.load_models(args.model)
    plans = {}
    for name, model in models.items():
        times = check_consecutive(args.readout_times or range(model.spec.graph.earliest_readout,
                                                              2 * model.spec.time_steps + 1))
        timed_readout.check_readout_times(model, times, name, recalibrating=bool(args.recalibrate))
        plans[name] = times

    images, labels, classes = timed_readout.load_test_split(args.data_root, args.limit)
    tables: dict[str, list] = {}
    for name, model in models.items():
        timed_readout.check_input_size(model, images, name)
        times = plans[name]
        trained = model.last_trained_readout()  # before recalibration marks later steps trained
        policy = "last trained step's statistics"
        if args.recalibrate and max(times) > trained:
            policy = timed_readout.recalibrate(model, args.data_root, args.recalibrate, max(times),
                                                 args.augment_calibration)
        batches = data.TensorBatches(images, labels, args.batch_size, model.preprocess.mean, model.preprocess.std,
                                     train=False)
        result = latency_tables(model, batches, times, thresholds, args.criterion, mapping, classes,
                                progress=not args.no_progress)
        tsbn = timed_readout.tsbn_columns(model, times, trained, policy)
        result["accuracy"] = result["accuracy"].merge(tsbn, on="readout_time")
        for key, table in result.items():
            table.insert(0, "model", name)
            if key != "accuracy":
                table["tsbn_past_trained"] = policy
            tables.setdefault(key, []).append(table)
        summary = result["accuracy"].set_index("readout_time")
        print(f"{name} ({len(labels)} test images, {mapping.describe()}, past training: {policy})")
        print(summary[["time_ms_low", "time_ms_high", "accuracy_pct", "mean_max_softmax", "mean_entropy_norm",
                       "beyond_trained_steps"]].round(3).to_string())
        print(result["speed_accuracy"][["criterion", "threshold", "never_crossed_pct", "mean_rt_steps",
                                        "mean_rt_ms_low", "mean_rt_ms_high", "accuracy_at_rt_pct",
                                        "accuracy_deadline_pct"]].round(2).to_string(index=False))
    written = timed_readout.write_tables({f"latency_{key}": pd.concat(parts, ignore_index=True)
                                          for key, parts in tables.items()}, out_dir)
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    sys.exit(main())
