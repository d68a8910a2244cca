"""Backward masking: accuracy against how long a stimulus is shown before a mask replaces it.

    python -m analyses.masking [--model NAME_OR_CHECKPOINT ...] [--limit 1000] [--durations 1 2 3 4 5]
        [--masks blank noise image] [--presentations held flash] [--readout-time T] [--seed 0]

The model's time-varying input (docs/conventions.md): frame 0 becomes h(0) through the pre-net; frame
t >= 1 goes through the same pre-net and is added to the first state's update at step t. A readout at T
reads the last state at step T - 1, so frames 0..T-1 are all that can reach it. "Shown for k steps"
(k = 1..T) is one of two presentations:

* ``held``: frames 0..k-1 are the stimulus and frames k..T-1 the mask: the stimulus is on for k steps
  and the mask replaces it at step k. At k = T no mask frame reaches the readout (the stimulus stays on).
* ``flash``: frame 0 is the stimulus, frames 1..k-1 are empty (None: no input, as in training, where
  every image was shown at t = 0 only), frames k..T-1 the mask: the mask follows the flash k steps
  later (a stimulus onset asynchrony of k steps). At k = T this is the model's ordinary run.

The two agree at k = 1. A mask is one image per stimulus, the same in every mask frame:

* ``blank``: the training set's mean colour everywhere, i.e. zeros after normalisation (a grey screen).
  It is an input, not the absence of one (that is None): it passes through the pre-net, whose batch
  norms turn it into a non-zero constant added to the first state.
* ``noise``: white noise, every pixel and channel uniform in 0..255, normalised like the images, one
  per stimulus drawn from ``--seed``.
* ``image``: another image of the same test subset from a different class, drawn per stimulus from
  ``--seed``; ``mask_class_pct`` is how often the model names the mask's class instead.

Durations in ms are the mask's onset after the stimulus's, k steps, through visrecur.timing.TimeMapping
(k * low to k * high ms, default 20-50). ``mask_reaches_readout`` says whether a change to the first state
at step k can reach the last state by step T - 1 along the transitions that run (in the adjacent-only
4-state model V1 -> IT takes 3 steps, so at T = 5 only k = 1 can change the readout); where it cannot,
every mask gives the same accuracy, that of the presentation without a mask (such frames are not run). Writes results/masking.csv, one row
per model, presentation, mask and k.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from analyses import common
from visrecur.artifacts.checkpoint import list_pretrained
from visrecur.errors import InputError, report_errors
from visrecur.recording.preprocess import normalize
from visrecur.timed.protocol import is_timed
from visrecur.timing import DEFAULT_MAPPING, TimeMapping

MASKS = ("blank", "noise", "image")
PRESENTATIONS = ("held", "flash")


# --- checks ---------------------------------------------------------------------------------------
def check_masks(masks: Sequence[str]) -> list[str]:
    for mask in masks:
        if mask not in MASKS:
            raise InputError(f"unknown mask type {mask!r}; use {', '.join(MASKS)}")
    return list(dict.fromkeys(masks))


def check_presentations(presentations: Sequence[str]) -> list[str]:
    for presentation in presentations:
        if presentation not in PRESENTATIONS:
            raise InputError(f"unknown presentation {presentation!r}; use {' or '.join(PRESENTATIONS)}")
    return list(dict.fromkeys(presentations))


def check_durations(durations: Sequence[int], readout_time: int) -> list[int]:
    """Stimulus durations k in steps: 1 (frame 0 only) up to the readout time (no mask frame reaches it)."""
    durations = sorted(set(int(k) for k in durations))
    if not durations:
        raise InputError("no stimulus durations given; give at least one, e.g. --durations 1 2 3")
    if durations[0] < 1:
        raise InputError(f"stimulus duration {durations[0]} steps: a stimulus is shown for at least 1 step "
                         "(frame 0); give durations >= 1")
    if durations[-1] > readout_time:
        raise InputError(f"stimulus duration {durations[-1]} steps is longer than the run: a readout at "
                         f"t={readout_time} reads the last state at step {readout_time - 1}, so no frame from step "
                         f"{readout_time} on reaches it; give durations 1..{readout_time} or a later --readout-time")
    return durations


# --- the schedule ---------------------------------------------------------------------------------
def frame_schedule(k: int, readout_time: int, presentation: str) -> tuple:
    """What frames 0..T-1 show: "stimulus", "mask" or None (no input)."""
    check_durations([k], readout_time)
    if check_presentations([presentation])[0] == "held":
        return ("stimulus",) * k + ("mask",) * (readout_time - k)
    return ("stimulus",) + (None,) * (k - 1) + ("mask",) * (readout_time - k)


def frames(schedule: Sequence, stimulus: torch.Tensor, mask: torch.Tensor | None) -> list:
    """The model's input sequence for a schedule (a frame list as ``FRNN.forward`` takes it)."""
    chosen = {"stimulus": stimulus, "mask": mask, None: None}
    if mask is None and "mask" in schedule:
        raise InputError("this schedule has mask frames; give a mask")
    return [chosen[kind] for kind in schedule]


def reaches_readout(graph, step: int, readout_time: int) -> bool:
    """Whether a frame at ``step`` (a change to the first state at that step) can reach the last state by
    step T - 1, the step the readout at T reads, along the transitions that run at each step. A state once
    changed is counted as changed from then on, so False is certain: the readout does not depend on it."""
    changed = {graph.first.name}
    for t in range(step + 1, readout_time):
        changed |= {tr.target for tr in graph.running(t) if tr.source in changed}
    return step <= readout_time - 1 and graph.last.name in changed


def effective_schedule(schedule: Sequence, graph, readout_time: int) -> tuple:
    """The schedule with every frame that cannot reach the readout replaced by None: it gives the same
    logits, with less work, and lets schedules that differ only there share one run."""
    return tuple(kind if t == 0 or reaches_readout(graph, t, readout_time) else None
                 for t, kind in enumerate(schedule))


def make_masks(kind: str, images: torch.Tensor, labels: torch.Tensor, mean, std, seed: int = 0):
    """(normalised masks, one per stimulus; the image mask's labels, else None)."""
    from visrecur.checks import seed_arg

    seed_arg(seed, "--seed")
    check_masks([kind])
    if kind == "blank":
        return torch.zeros(images.shape, dtype=torch.float32), None
    if kind == "noise":
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randint(0, 256, tuple(images.shape), generator=generator, dtype=torch.uint8)
        return normalize(noise, mean, std), None
    labels_np = labels.numpy()
    if len(np.unique(labels_np)) < 2:
        raise InputError("image masks come from another class, but the test images hold only one class; "
                         "use blank or noise masks, or more test images")
    rng = np.random.default_rng(seed)
    partner = np.array([rng.choice(np.flatnonzero(labels_np != label)) for label in labels_np])
    return normalize(images[partner], mean, std), labels[partner]


# --- the analysis ---------------------------------------------------------------------------------
@torch.no_grad()
def masking_table(model, images: torch.Tensor, labels: torch.Tensor, durations: Sequence[int],
                  masks: Sequence[str] = MASKS, presentations: Sequence[str] = PRESENTATIONS,
                  readout_time: int | None = None, mapping: TimeMapping = DEFAULT_MAPPING, seed: int = 0,
                  batch_size: int = 500, progress: bool = False) -> pd.DataFrame:
    """Accuracy at ``readout_time`` (default the model's) for every presentation, mask and duration.
    ``images``: uint8, normalised with the model's preprocessing. Frames that cannot reach the readout are
    left out (``effective_schedule``), and a schedule shared by several rows (e.g. every mask once the mask
    comes too late to reach the readout, both presentations at k = 1) is run once."""
    from tqdm.auto import tqdm

    if is_timed(model):
        return timed_masking_table(model, images, labels, durations, masks, presentations, readout_time, mapping,
                                   seed, batch_size)
    model.eval()
    T = model.spec.readout_time if readout_time is None else readout_time
    durations = check_durations(durations, T)
    masks, presentations = check_masks(masks), check_presentations(presentations)
    mean, std = model.preprocess.mean, model.preprocess.std
    stimulus = normalize(images, mean, std)
    mask_images = {kind: make_masks(kind, images, labels, mean, std, seed) for kind in masks}
    predictions: dict[tuple, torch.Tensor] = {}

    def predict(schedule, kind):
        schedule = effective_schedule(schedule, model.spec.graph, T)
        key = tuple(kind if frame == "mask" else frame for frame in schedule)
        if key not in predictions:
            mask = mask_images[kind][0] if kind else None
            out = [model(frames(schedule, stimulus[i:i + batch_size], None if mask is None else mask[i:i + batch_size]),
                         readout_time=T).argmax(1) for i in range(0, len(labels), batch_size)]
            predictions[key] = torch.cat(out)
        return predictions[key]

    unmasked = (predict(("stimulus",) + (None,) * (T - 1), None) == labels).double().mean().item()
    jobs = [(p, m, k) for p in presentations for m in masks for k in durations]
    rows = []
    for presentation, kind, k in tqdm(jobs, desc="masking", disable=not progress, leave=False):
        schedule = frame_schedule(k, T, presentation)
        predicted = predict(schedule, kind)
        acc = (predicted == labels).double().mean().item()
        mask_labels = mask_images[kind][1]
        first = model.spec.graph.first.name  # frames enter the first state
        (onset_low, k_low), (onset_high, k_high) = mapping.latency([0, k], first)
        readout_low, readout_high = mapping.latency(T, model.spec.graph.last.name)
        rows.append({"presentation": presentation, "mask": kind, "stimulus_steps": k, "mask_onset_step": k,
                     "duration_min_ms": k_low - onset_low, "duration_max_ms": k_high - onset_high,
                     "readout_time": T, "latency_min_ms": float(readout_low), "latency_max_ms": float(readout_high),
                     "mask_reaches_readout": reaches_readout(model.spec.graph, k, T),
                     "accuracy_pct": 100 * acc, "accuracy_se_pct": 100 * np.sqrt(acc * (1 - acc) / len(labels)),
                     "mask_class_pct": (100 * (predicted == mask_labels).double().mean().item()
                                        if mask_labels is not None else np.nan),
                     "unmasked_accuracy_pct": 100 * unmasked, "n_images": len(labels),
                     "frames": " ".join({None: "-", "stimulus": "S", "mask": "M"}[f] for f in schedule)})
    return pd.DataFrame(rows)


@torch.no_grad()
def timed_masking_table(model, images, labels, durations, masks=MASKS, presentations=("held",),
                        readout_step: int | None = None, mapping: TimeMapping = DEFAULT_MAPPING, seed: int = 0,
                        batch_size: int = 500) -> pd.DataFrame:
    """Backward masking of a timed model that takes a frame per step (``StepModel(frames=True)``, e.g.
    BL-net's ``frame_model``): frame t goes to step t, and the readout at step R reads frames 0..R, so
    "shown for k steps" (k = 1..R + 1) is the stimulus in frames 0..k-1 and the mask from frame k (``held``;
    ``flash`` needs frames with no input, which these models do not take)."""
    if not model.takes_frames:
        raise InputError(f"masking needs a model that takes a frame per step; {model.name} takes one image per "
                         "pass (BL-net does: visrecur.timed.reference.blnet.frame_model)")
    if list(check_presentations(presentations)) != ["held"]:
        raise InputError(f"{model.name} takes an image at every step, never no input: only the held presentation "
                         "applies (--presentations held)")
    R = max(model.readout_steps) if readout_step is None else readout_step
    if R not in model.readout_steps:
        raise InputError(f"{model.name} reads out at steps {list(model.readout_steps)}, not at {R}")
    too_long = [int(k) for k in durations if int(k) > R + 1]
    if too_long:
        raise InputError(f"stimulus duration {max(too_long)} steps is longer than the run: the readout at step {R} "
                         f"reads frames 0..{R}; give durations 1..{R + 1}")
    durations = check_durations(durations, R + 1)
    mean, std = model.preprocess.mean, model.preprocess.std
    stimulus = normalize(images, mean, std)
    model.eval()
    first, last = model.areas[0], model.areas[-1]
    readout_low, readout_high = mapping.latency(R, last)
    rows = []
    for kind in check_masks(masks):
        mask, mask_labels = make_masks(kind, images, labels, mean, std, seed)
        for k in durations:
            # later frames cannot reach the readout at R (steps are causal); they are the mask too
            predicted = torch.cat([
                model.run([stimulus[i:i + batch_size]] * k + [mask[i:i + batch_size]] * (model.n_steps - k))[R]
                .argmax(1)
                for i in range(0, len(labels), batch_size)])
            acc = (predicted == labels).double().mean().item()
            (onset_low, k_low), (onset_high, k_high) = mapping.latency([0, k], first)
            rows.append({"presentation": "held", "mask": kind, "stimulus_steps": k, "mask_onset_step": k,
                         "duration_min_ms": k_low - onset_low, "duration_max_ms": k_high - onset_high,
                         "readout_time": R, "latency_min_ms": float(readout_low), "latency_max_ms": float(readout_high),
                         "mask_reaches_readout": k <= R, "accuracy_pct": 100 * acc,
                         "accuracy_se_pct": 100 * np.sqrt(acc * (1 - acc) / len(labels)),
                         "mask_class_pct": (100 * (predicted == mask_labels).double().mean().item()
                                            if mask_labels is not None else np.nan),
                         "n_images": len(labels), "frames": "S" * k + "M" * (R + 1 - k)})
    return pd.DataFrame(rows)


def _frame_taking(name: str, model):
    """BL-net as the frame-taking model it is; any other timed model is refused in one line."""
    from visrecur.timed.reference.blnet import frame_model

    if name == "blnet" and not model.takes_frames:
        model = frame_model(model)
    if not model.takes_frames:
        raise InputError(f"analyses.masking does not apply to {name}: it shows a stimulus then a mask as frames at "
                         "successive steps, and this model takes one image per forward pass")
    return model


# --- command --------------------------------------------------------------------------------------
@report_errors
def main(argv=None):
    p = common.parser(__doc__, "masking")
    common.add_model(p, several=True, default=[n for n in list_pretrained() if n.startswith("frnn_")])
    common.add_data(p)
    p.add_argument("--durations", type=int, nargs="+", metavar="K",
                   help="stimulus durations in steps, 1..readout time; default: all of them")
    p.add_argument("--masks", nargs="+", default=list(MASKS), metavar="MASK", help=f"of {', '.join(MASKS)}")
    p.add_argument("--presentations", nargs="+", default=list(PRESENTATIONS), metavar="HOW",
                   help="held: stimulus frames 0..k-1, mask from k; flash: stimulus at frame 0, nothing until "
                        "the mask at k")
    p.add_argument("--readout-time", type=int, help="default: each model's own readout time")
    p.add_argument("--seed", type=int, default=0, help="draws the noise masks and the image masks' partners")
    common.add_time_mapping_options(p)
    p.add_argument("--batch-size", type=int, default=500, help="test images per batch")
    common.add_output(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    common.check_counts(p, args, ("limit", "batch_size", "readout_time"))
    if not 0 <= args.seed < 2 ** 32:
        p.error(f"--seed {args.seed} must be a whole number from 0 to 2**32 - 1")
    masks, presentations = check_masks(args.masks), check_presentations(args.presentations)
    out_dir = common.output_folder(args.out_dir)
    models = common.load_models(args.model, timed=True)
    plans = {}
    for name, model in models.items():
        if is_timed(model):  # a timed model that takes a frame per step (BL-net), read out at one of its steps
            models[name] = model = _frame_taking(name, model)
            R = max(model.readout_steps) if args.readout_time is None else args.readout_time
            plans[name] = (R, check_durations(args.durations or range(1, R + 2), R + 1),
                           common.time_mapping(args, p, model.time_mapping))
            continue
        T = args.readout_time or model.spec.readout_time
        common.check_readout_times(model, [T], name)
        plans[name] = (T, check_durations(args.durations or range(1, T + 1), T),
                       common.time_mapping(args, p, model.time_mapping))

    images, labels, _ = common.load_test_split(args.data_root, args.limit)
    tables = []
    for name, model in models.items():
        common.check_input_size(model, images, name)
        T, durations, mapping = plans[name]
        if is_timed(model):
            table = timed_masking_table(model, images, labels, durations, masks,
                                        ["held"] if args.presentations == list(PRESENTATIONS) else presentations,
                                        T, mapping, args.seed, args.batch_size)
            table.insert(0, "model", name)
            tables.append(table)
            print(f"{name}: accuracy (%) at readout step {T} ({len(labels)} test images), by stimulus duration k")
            print(table.pivot_table(index=["presentation", "mask"], columns="stimulus_steps",
                                    values="accuracy_pct").round(1).to_string())
            continue
        table = masking_table(model, images, labels, durations, masks, presentations, T, mapping, args.seed,
                              args.batch_size, progress=not args.no_progress)
        tsbn = common.tsbn_columns(model, [T], model.last_trained_readout())
        table = table.merge(tsbn, on="readout_time")
        table.insert(0, "model", name)
        tables.append(table)
        print(f"{name}: accuracy (%) at readout t={T} ({len(labels)} test images; unmasked "
              f"{table.unmasked_accuracy_pct.iloc[0]:.1f}%), by stimulus duration k (steps; {mapping.describe()})")
        print(table.pivot_table(index=["presentation", "mask"], columns="stimulus_steps", values="accuracy_pct")
              .round(1).to_string())
    written = common.write({"masking": pd.concat(tables, ignore_index=True)}, out_dir,
                           common.command_line("masking", argv),
                           "accuracy per model, presentation, mask and stimulus duration",
                           {"models": list(models), "test_images": len(labels)})
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    sys.exit(main())
