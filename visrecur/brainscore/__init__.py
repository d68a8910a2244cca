"""Brain-Score for visrecur models: ``VisrecurBrainModel`` (a time-binned ``BrainModel`` answering every
call form of brainscore-vision 2.4.2), offline benchmarks in Brain-Score's terms, and
``python -m visrecur.brainscore plugin`` (a submission folder), ``check`` (Brain-Score's plugin tests on
it, offline) and ``score``.

brainscore-vision is an optional extra (``pip install -e ".[brainscore]"``); importing this package does
not import it, and asking for any of its parts without it raises one line naming the extra.
"""
from .environment import (BRAINSCORE_VERSION, DEFAULT_VISUAL_DEGREES, INSTALL_HINT, BrainScoreMissing, available,
                          isolate, require)
from .regions import BRAINSCORE_REGIONS, RegionError

_LAZY = {"VisrecurBrainModel": "model", "UnreachedStateWarning": "model", "PastTrainedWarning": "model",
         "TaskError": "behavior", "PastTrainedError": "timebins", "preset_mapping": "presets",
         "check_plugin": "check",
         "Cichy2014RSA": "benchmarks", "PlantedLatencyBenchmark": "temporal",
         "write_plugin": "plugin", "score": "scoring", "load_benchmark": "scoring"}

__all__ = ["BRAINSCORE_VERSION", "DEFAULT_VISUAL_DEGREES", "INSTALL_HINT", "BrainScoreMissing", "available", "isolate", "require",
           "BRAINSCORE_REGIONS", "RegionError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
