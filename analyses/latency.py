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
readout time t is t*low to t*high ms after onset (``*_min_ms``, ``*_max_ms``); the mapping is linear, so
a mean RT in ms is the mapping of the mean RT in steps.

Readout times past the trained ones normalise with the last trained step's TSBN statistics, or with
``--recalibrate N`` with statistics estimated from N training images; every table says which
(``tsbn_policy``, ``calibration``) and ``latency_accuracy.csv`` says which steps borrowed statistics.

A timed model (``visrecur.timed``) with readouts at several steps, e.g. BL-net (``--model blnet``,
untrained), is read out at its readout steps (default all of them; each reads the last area at that
step, whose milliseconds the table gives): its reaction time is, as BL-net defines it (Spoerer et al.
2020), the first step whose readout's softmax entropy falls to the threshold (``--criterion entropy``;
here normalised by log(classes)), and an image whose entropy never does has no decision (``crossed``
False; the deadline columns decide at the last step). Test images are resized to its input size; it has
no TSBN statistics (``tsbn_policy`` "none"). A timed model with fewer than two readout steps is refused.

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

from analyses import common
from visrecur.artifacts.results import CALIBRATION, NO_CALIBRATION, TSBN_POLICY
from visrecur.errors import InputError, report_errors
from visrecur.timed import is_timed
from visrecur.timing import DEFAULT_MAPPING, TimeMapping
from visrecur.training import data

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


def check_timed_readouts(model, times: Sequence[int]) -> None:
    """A timed model gives reaction times only where it reads out at several steps (BL-net: every step)."""
    missing = [t for t in times if t not in model.readout_steps]
    if missing:
        raise InputError(f"{model.name} reads out at steps {list(model.readout_steps) or 'none'}, not at "
                         f"{' '.join(map(str, missing))}; give --readout-times among those")
    if len(model.readout_steps) < 2:
        raise InputError(f"{model.name} reads out at one step only ({list(model.readout_steps)}): reaction times "
                         "need readouts at several steps (e.g. blnet)")


# --- per image, per readout time ------------------------------------------------------------------
@torch.no_grad()
def readout_probabilities(model, batches, readout_times: Sequence[int], progress: bool = False):
    """(softmax probabilities (images, readout times, classes) as float64, labels) from one pass per batch."""
    from tqdm.auto import tqdm

    model.eval()
    times = list(readout_times)
    probs, labels = [], []
    timed = is_timed(model)
    if timed:
        check_timed_readouts(model, times)
    for images, batch_labels in tqdm(data.epoch_batches(batches, 0), total=len(batches), desc="readouts",
                                     disable=not progress, leave=False):
        # a timed model (CORnet, BL-net, ...) reads out at its own steps, all from one run; an FRNN at the
        # readout times asked
        logits = model.run(images) if timed else model(images, readout_time=times)
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
def accuracy_table(probs, labels, times, mapping: TimeMapping = DEFAULT_MAPPING, state: str | None = None) -> pd.DataFrame:
    """Per readout time: accuracy (with its binomial standard error) and mean confidence both ways."""
    correct = probs.argmax(-1) == labels[:, None]
    acc = correct.mean(0)
    low, high = mapping.latency(times, state)
    return pd.DataFrame({
        "readout_time": list(times), "latency_min_ms": low, "latency_max_ms": high,
        "accuracy_pct": 100 * acc, "accuracy_se_pct": 100 * np.sqrt(acc * (1 - acc) / len(labels)),
        "mean_max_softmax": confidence(probs, "max_softmax").mean(0),
        "mean_entropy_norm": confidence(probs, "entropy").mean(0),
        "n_images": len(labels), "chance_accuracy_pct": 100 / probs.shape[-1]})


def reaction_time_table(probs, labels, times, thresholds, criterion: str, mapping: TimeMapping = DEFAULT_MAPPING,
                        classes: Sequence[str] | None = None, state: str | None = None) -> pd.DataFrame:
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
        low, high = mapping.latency(rt, state)
        decision = np.where(hit, decisions[np.arange(n), at], -1)
        rows.append(pd.DataFrame({
            "criterion": criterion, "threshold": threshold, "image": np.arange(n), "label": labels,
            "class_name": [classes[k] for k in labels] if classes is not None else labels.astype(str),
            "crossed": hit, "rt_steps": rt, "rt_min_ms": low, "rt_max_ms": high,
            "confidence_at_rt": np.where(hit, conf[np.arange(n), at], np.nan),
            "decision_at_rt": pd.Series(np.where(hit, decision, 0), dtype="Int64").where(pd.Series(hit)),
            "correct_at_rt": pd.Series(decision == labels, dtype="boolean").where(pd.Series(hit)),
            # forced choice at the last readout time for images that never crossed
            "decision_deadline": np.where(hit, decision, decisions[:, -1]),
            "correct_deadline": np.where(hit, decision, decisions[:, -1]) == labels}))
    return pd.concat(rows, ignore_index=True)


def speed_accuracy_table(rts: pd.DataFrame, last_time: int, mapping: TimeMapping = DEFAULT_MAPPING,
                         state: str | None = None) -> pd.DataFrame:
    """Per threshold: never-crossed share; mean/median RT and accuracy over images that crossed; and with
    never-crossing images deciding at ``last_time`` (the last readout time evaluated)."""
    rows = []
    for (criterion, threshold), g in rts.groupby(["criterion", "threshold"], sort=True):
        hit = g.crossed.to_numpy(bool)
        rt = g.rt_steps.to_numpy(float)[hit]
        mean_rt = rt.mean() if hit.any() else np.nan
        deadline = np.where(hit, g.rt_steps.to_numpy(float), last_time).mean()
        low, high = mapping.latency([mean_rt, deadline], state)
        rows.append({"criterion": criterion, "threshold": threshold, "n_images": len(g), "n_crossed": int(hit.sum()),
                     "never_crossed_pct": 100 * (1 - hit.mean()), "mean_rt_steps": mean_rt,
                     "median_rt_steps": np.median(rt) if hit.any() else np.nan,
                     "mean_rt_min_ms": low[0], "mean_rt_max_ms": high[0],
                     "accuracy_at_rt_pct": 100 * g.correct_at_rt[hit].astype(bool).mean() if hit.any() else np.nan,
                     "mean_rt_deadline_steps": deadline, "mean_rt_deadline_min_ms": low[1],
                     "mean_rt_deadline_max_ms": high[1],
                     "accuracy_deadline_pct": 100 * g.correct_deadline.mean(), "last_readout_time": last_time})
    return pd.DataFrame(rows)


def rt_by_class_table(rts: pd.DataFrame, times: Sequence[int], mapping: TimeMapping = DEFAULT_MAPPING,
                      state: str | None = None) -> pd.DataFrame:
    """The RT distribution of each class: for every (threshold, class), one row per readout time (zero
    counts included) and one with ``crossed`` False for the images that never crossed."""
    rows = []
    for (criterion, threshold, label, name), g in rts.groupby(["criterion", "threshold", "label", "class_name"],
                                                              sort=True):
        counts = g.rt_steps[g.crossed].value_counts()
        for t in list(times) + [None]:
            count = int((~g.crossed).sum()) if t is None else int(counts.get(float(t), 0))
            low, high = mapping.latency(np.nan if t is None else t, state)
            rows.append({"criterion": criterion, "threshold": threshold, "label": label, "class_name": name,
                         "crossed": t is not None, "rt_steps": np.nan if t is None else t,
                         "rt_min_ms": float(low), "rt_max_ms": float(high),
                         "n_images": count, "pct_of_class": 100 * count / len(g)})
    return pd.DataFrame(rows)


def latency_tables(model, batches, times, thresholds, criterion: str = "max_softmax",
                   mapping: TimeMapping = DEFAULT_MAPPING, classes=None, progress: bool = False,
                   state: str | None = None) -> dict:
    """The four tables of one model: accuracy, reaction_times, speed_accuracy, rt_by_class. Readout times
    map to ms as steps of ``state`` (the last state, which the readout reads; None: the mapping's base)."""
    times = check_consecutive(times)
    thresholds = check_thresholds(thresholds)
    probs, labels = readout_probabilities(model, batches, times, progress)
    rts = reaction_time_table(probs, labels, times, thresholds, criterion, mapping, classes, state)
    return {"accuracy": accuracy_table(probs, labels, times, mapping, state), "reaction_times": rts,
            "speed_accuracy": speed_accuracy_table(rts, times[-1], mapping, state),
            "rt_by_class": rt_by_class_table(rts, times, mapping, state)}


# --- timed models (visrecur.timed): readouts at their own steps ---------------------------------------
def resized_batches(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500):
    """Test batches at a timed model's input size (bilinear, antialiased), normalised its way."""
    import torch.nn.functional as F

    size = tuple(model.preprocess.crop_size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8)
    return data.TensorBatches(images, labels, batch_size, model.preprocess.mean, model.preprocess.std, train=False)


def timed_latency_tables(model, images, labels, times, thresholds, args, mapping, classes) -> dict:
    batches = resized_batches(model, images, labels, args.batch_size)
    result = latency_tables(model, batches, times, thresholds, args.criterion, mapping, classes,
                            progress=not args.no_progress, state=model.areas[-1])
    for table in result.values():
        table[TSBN_POLICY], table[CALIBRATION] = "none", NO_CALIBRATION
    return result


# --- command --------------------------------------------------------------------------------------
@report_errors
def main(argv=None):
    p = common.parser(__doc__, "latency")
    common.add_model(p, several=True)
    common.add_data(p)
    p.add_argument("--readout-times", type=int, nargs="+",
                   help="consecutive readout times; default: the model's earliest to twice its trained steps")
    p.add_argument("--criterion", choices=CRITERIA, default="max_softmax",
                   help="confidence: max softmax (crosses upwards) or normalised entropy (crosses downwards)")
    p.add_argument("--thresholds", type=float, nargs="+",
                   help="in (0, 1]; default: " + "; ".join(f"{c}: {' '.join(map(str, v))}"
                                                          for c, v in DEFAULT_THRESHOLDS.items()))
    common.add_recalibration(p, help="estimate the TSBN statistics of steps past the trained ones from N training "
                                     "images (default: use the last trained step's)")
    common.add_time_mapping_options(p)
    p.add_argument("--batch-size", type=int, default=500, help="test images per batch")
    common.add_output(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    common.check_counts(p, args, ("limit", "batch_size"))
    common.check_recalibration(p, args)
    if not all(common.is_timed_name(name) for name in args.model):  # a timed model's readouts start at step 0
        common.check_readout_time_options(p, args.readout_times)
    thresholds = check_thresholds(args.thresholds or DEFAULT_THRESHOLDS[args.criterion])
    out_dir = common.output_folder(args.out_dir)
    timed = [name for name in args.model if common.is_timed_name(name)]
    if timed and args.recalibrate:
        raise InputError(f"{timed[0]} is a timed model without TSBN statistics: --recalibrate does not apply "
                         "to it; drop --recalibrate or give FRNNs only")
    models = common.load_models(args.model, "latency", timed=True)
    plans = {}
    for name, model in models.items():
        if is_timed(model):
            times = check_consecutive(args.readout_times or model.readout_steps)
            check_timed_readouts(model, times)
            plans[name] = (times, common.time_mapping(args, p, model.time_mapping))
            continue
        times = check_consecutive(args.readout_times or range(model.spec.graph.earliest_readout,
                                                              2 * model.spec.time_steps + 1))
        common.check_readout_times(model, times, name, recalibrating=bool(args.recalibrate))
        plans[name] = (times, common.time_mapping(args, p, model.time_mapping))

    images, labels, classes = common.load_test_split(args.data_root, args.limit)
    tables: dict[str, list] = {}
    for name, model in models.items():
        times, mapping = plans[name]
        if is_timed(model):
            result = timed_latency_tables(model, images, labels, times, thresholds, args, mapping, classes)
            for key, table in result.items():
                table.insert(0, "model", name)
                tables.setdefault(key, []).append(table)
            print(f"{name} (timed, {len(labels)} test images at {model.preprocess.crop_size[0]} px, "
                  f"{mapping.describe()})")
            print(result["speed_accuracy"][["criterion", "threshold", "never_crossed_pct", "mean_rt_steps",
                                            "mean_rt_min_ms", "mean_rt_max_ms"]].round(2).to_string(index=False))
            continue
        batches = common.test_batches(model, images, labels, args.batch_size)
        trained = model.last_trained_readout()  # before recalibration marks later steps trained
        policy, calibration = "trained", NO_CALIBRATION
        if args.recalibrate and max(times) > trained:
            policy = "past"
            calibration = common.recalibrate(model, args.data_root, args.recalibrate, max(times),
                                             args.augment_calibration)
        result = latency_tables(model, batches, times, thresholds, args.criterion, mapping, classes,
                                progress=not args.no_progress, state=model.spec.graph.last.name)
        tsbn = common.tsbn_columns(model, times, trained, policy, calibration)
        result["accuracy"] = result["accuracy"].merge(tsbn, on="readout_time")
        for key, table in result.items():
            table.insert(0, "model", name)
            if key != "accuracy":
                table[TSBN_POLICY], table[CALIBRATION] = policy, calibration
            tables.setdefault(key, []).append(table)
        summary = result["accuracy"].set_index("readout_time")
        print(f"{name} ({len(labels)} test images, {mapping.describe()}, TSBN policy past training: {policy}"
              + (f", {calibration}" if calibration != NO_CALIBRATION else "") + ")")
        print(summary[["latency_min_ms", "latency_max_ms", "accuracy_pct", "mean_max_softmax", "mean_entropy_norm",
                       "beyond_trained_steps"]].round(3).to_string())
        print(result["speed_accuracy"][["criterion", "threshold", "never_crossed_pct", "mean_rt_steps",
                                        "mean_rt_min_ms", "mean_rt_max_ms", "accuracy_at_rt_pct",
                                        "accuracy_deadline_pct"]].round(2).to_string(index=False))
    written = common.write({f"latency_{key}": pd.concat(parts, ignore_index=True) for key, parts in tables.items()},
                           out_dir, common.command_line("latency", argv),
                           {"latency_accuracy.csv": "accuracy and confidence per model and readout time",
                            "latency_reaction_times.csv": "reaction time per model, threshold and image",
                            "latency_speed_accuracy.csv": "speed-accuracy trade-off per model and threshold",
                            "latency_rt_by_class.csv": "reaction-time distribution of each class"},
                           {"models": list(models), "test_images": len(labels)})
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    sys.exit(main())
