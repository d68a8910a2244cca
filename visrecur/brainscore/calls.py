"""The keywords Brain-Score 2.4.2 passes to a ``BrainModel``, as its benchmarks and model helpers call it
(enumerated from the installed wheel, with the files using each call form, in
tests/test_brainscore_calls.py): any other keyword is one line naming the ones defined, not a TypeError.

* ``start_task(task, fitting_stimuli | choice_labels, number_of_trials=, require_variance=, aggregation=)``
  (``ProbabilitiesMapping.start_task``, ``LabelBehavior.start_task``; Lonnqvist2024, Malania2007, Kato2026);
* ``start_recording(recording_target, time_bins)``;
* ``look_at(stimuli, number_of_trials=, require_variance=)`` (the second also positional: Hebart2023,
  Marques2020's properties).
"""
from __future__ import annotations

from visrecur.errors import InputError

KEYWORDS = {
    "start_task": ("fitting_stimuli", "choice_labels", "number_of_trials", "require_variance", "aggregation"),
    "start_recording": ("recording_target", "time_bins"),
    "look_at": ("stimuli", "number_of_trials", "require_variance"),
}


class KeywordError(InputError):
    """A keyword Brain-Score's BrainModel interface does not define."""


def check_keywords(method: str, options: dict) -> dict:
    """``options`` if every keyword is one Brain-Score defines for ``method``, else one line."""
    unknown = [k for k in options if k not in KEYWORDS[method]]
    if unknown:
        raise KeywordError(f"{method}() got the keyword {unknown[0]!r}, which Brain-Score's BrainModel does not "
                           f"define; {method} takes {', '.join(KEYWORDS[method])}")
    return options
