"""The arguments of ``visrecur.recording.record`` (also ``visrecur.record(...)``) checked before anything is
built or run: a value of the wrong type, or an option that would have no effect in the combination given,
is one ``VisrecurError`` naming it and the fix, the same the command line gives."""
from __future__ import annotations

import numpy as np

from visrecur.checks import names_arg, path_arg
from visrecur.errors import InputError, TimeStepError


def check_record_arguments(*, output, states, times, readout_time, reduction, pca_fit, preprocess, overwrite,
                           resume) -> None:
    from visrecur.recording.preprocess import Preprocess
    from visrecur.recording.reductions import Reduction
    from visrecur.recording.stimuli import StimulusSet

    if output is not None:
        path_arg(output, "output")
    if preprocess is not None and not isinstance(preprocess, Preprocess):
        raise InputError(f"preprocess must be a visrecur.Preprocess(input_size, mean, std), not "
                         f"{type(preprocess).__name__}")
    names = names_arg(states, "states")
    if names == []:
        raise InputError("states=[] would record nothing; give the states to record, or None for all of them")
    if names and len(set(names)) < len(names):
        raise InputError(f"states {' '.join(names)}: {_first_repeat(names)!r} is given twice; name each state once")
    if times is not None:
        if isinstance(times, (str, bytes)) or not hasattr(times, "__iter__") or not all(
                isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in times):
            raise TimeStepError(f"times must be a list of whole time steps, e.g. [0, 1, 2], not {times!r:.40}")
        if len(list(times)) == 0:
            raise TimeStepError("times=[] would record nothing; give the steps to record, or None for 0..T-1")
        if len(set(times)) < len(list(times)):
            raise TimeStepError(f"times {' '.join(map(str, times))}: step {_first_repeat(list(times))} is given twice; "
                                "give each step once")
    if readout_time is not None and (isinstance(readout_time, bool) or not isinstance(readout_time, (int, np.integer))):
        raise TimeStepError(f"readout_time must be a whole number of steps, not {readout_time!r:.40}")
    if pca_fit is not None:
        if not isinstance(pca_fit, StimulusSet):
            raise InputError(f"pca_fit must be a StimulusSet (like stimuli), not {type(pca_fit).__name__}")
        parsed = reduction if isinstance(reduction, Reduction) else Reduction.parse(reduction)
        if not parsed.needs_fit():
            raise InputError(f"pca_fit (--pca-fit) gives the images a fitted reduction learns from, but reduction "
                             f"{parsed.spec!r} fits nothing; drop it, or use a fitted reduction such as pca:100")
    for flag, value in (("overwrite", overwrite), ("resume", resume)):
        if not isinstance(value, bool):
            raise InputError(f"{flag} must be True or False, not {value!r:.40}")
        if value and output is None:
            raise InputError(f"{flag}=True applies to an output file, but no output was given; give output=PATH "
                             "or drop it")


def _first_repeat(values):
    seen = set()
    return next(v for v in values if v in seen or seen.add(v))
