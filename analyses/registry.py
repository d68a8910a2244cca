"""Every analysis, once: its module (``python -m analyses.NAME``), the result files it writes, the notebook
that draws them, and its options when ``python -m figures`` regenerates everything. ``python -m figures``,
the notebooks' reader (``figures.results``) and the tests read this registry: a new analysis is its module,
its notebook and one entry here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Analysis:
    name: str
    question: str
    outputs: tuple[str, ...]  # result files under results/
    notebook: str | None  # in figures/
    figure_args: Callable[[int, int], list[str]] = field(default=lambda n, m: [])  # (test images, calibration images)

    @property
    def command(self) -> str:
        return f"python -m analyses.{self.name}"


ANALYSES = {a.name: a for a in (
    Analysis("readout_time", "error against readout time, inside and past the trained steps (Fig. 4D/E, 5A)",
             ("readout_time.csv",), "readout_time.ipynb",
             lambda n, m: ["--limit", str(n), "--recalibrate", str(m)]),
    # the shipped FRNNs have at most 4 trained steps: re-estimate steps up to 9 to see the decay
    Analysis("tsbn_decay", "TSBN statistics over time and their per-channel decay (Fig. 5B)",
             ("tsbn_decay.csv", "tsbn_decay_fits.csv", "tsbn_decay_summary.csv"), "tsbn_decay.ipynb",
             lambda n, m: ["--model", "frnn_4state_cifar10", "frnn_4state_adjacent_cifar10", "--recalibrate", "128",
                           "--until", "10"]),
    Analysis("parameters", "effective parameters, depth and MACs per readout time (Fig. 4, Table 1)",
             ("parameters.csv",), "parameters.ipynb"),
    Analysis("transition_matrix", "which transition runs at which step, and each state's arrival (Fig. 2C)",
             ("transition_matrix.csv", "transition_matrix_states.csv"), "transition_matrix.ipynb"),
    # "every" re-estimates all steps at each of the 17 readout times, the slow part (past + every took 62
    # minutes at 2,560 calibration images on 2 cores; recalibration time grows with the number of images)
    Analysis("readout_generalization", "train at one readout time, test at others (Fig. 5A)",
             ("readout_generalization.csv",), "readout_generalization.ipynb",
             lambda n, m: ["--limit", str(n), "--recalibrate", str(m), "--recalibrate-steps", "past", "every",
                           "after-first-state", "--augment-calibration"]),
    Analysis("latency", "accuracy, confidence and model reaction times against milliseconds",
             ("latency_accuracy.csv", "latency_reaction_times.csv", "latency_speed_accuracy.csv",
              "latency_rt_by_class.csv"), "latency.ipynb",
             lambda n, m: ["--model", "frnn_4state_cifar10", "frnn_4state_adjacent_cifar10", "--limit", str(n),
                           "--recalibrate", str(m)]),
    Analysis("masking", "backward masking: accuracy against how long a stimulus is shown",
             ("masking.csv",), "masking.ipynb", lambda n, m: ["--limit", str(n)]),
    Analysis("neural_alignment", "RSA of every (state, step) against brain RDMs, with ceilings and intervals",
             ("neural_alignment.nc", "neural_alignment.csv", "neural_alignment_contrast.csv",
              "neural_alignment_controls.csv"),
             "neural_alignment.ipynb"),
    # 5 architectures x 3 seeds on the 92 images at their own input sizes: tens of minutes on 2 cores
    Analysis("untrained_baselines", "RSA of reference architectures (CORnet, BL-net, ResNet-18) at random "
             "initialisation, several seeds: what architecture alone gives",
             ("untrained_baselines.csv", "untrained_baselines_summary.csv", "untrained_baselines_best.csv"), None),
)}


def writer_of(filename: str) -> Analysis | None:
    """The analysis that writes ``filename``."""
    return next((a for a in ANALYSES.values() if filename in a.outputs), None)


def read_result(filename: str, folder=None):
    """A result table (.csv, through ``visrecur.artifacts.results.read_table``, units in ``attrs``) or
    dataset (.nc) from ``folder`` (default $VISRECUR_RESULTS or results/); a missing file is one line naming
    the command that writes it. What the notebooks read with."""
    import os
    from pathlib import Path

    from visrecur.artifacts.results import read_dataset, read_table

    folder = Path(folder or os.environ.get("VISRECUR_RESULTS", "results"))
    analysis = writer_of(filename)
    command = f"{analysis.command} (from the repository root)" if analysis else None
    reader = read_dataset if filename.endswith(".nc") else read_table
    return reader(folder / filename, command)
