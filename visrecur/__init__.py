"""visrecur: multi-state fully recurrent networks (Liao & Poggio 2016) as time-resolved models of the
ventral visual stream: build them from a spec, train them, record every state at every time step."""
from visrecur.errors import CheckpointError, InputError, SpecError, TimeStepError, VisrecurError
from visrecur.architecture.graph import Graph, State, Transition
from visrecur.architecture.modelspec import ModelSpec

__version__ = "0.2.0"

__all__ = ["Graph", "ModelSpec", "State", "Transition", "FRNN", "build", "spec", "list_models",
           "load", "list_pretrained", "Preprocess", "record", "TimeMapping", "VisrecurError", "SpecError", "TimeStepError", "InputError", "CheckpointError",
           "adapt", "TimedModel", "StepModel"]


def __getattr__(name):
    # torch-dependent parts load on first use, so the graph formalism imports without torch
    if name == "FRNN":
        from visrecur.nn.model import FRNN
        return FRNN
    if name in ("build", "spec", "list_models"):
        from visrecur.architecture import zoo
        return getattr(zoo, name)
    if name == "TimeMapping":
        from visrecur.timing import TimeMapping
        return TimeMapping
    if name in ("adapt", "TimedModel", "StepModel"):  # time-resolved models other than FRNNs
        from visrecur import timed
        return getattr(timed, name)
    if name == "Preprocess":
        from visrecur.recording.preprocess import Preprocess
        return Preprocess
    if name == "record":  # the command module, callable as record() (visrecur/record.py)
        import importlib

        return importlib.import_module("visrecur.record")
    if name in ("load", "list_pretrained"):
        from visrecur.artifacts import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(f"module 'visrecur' has no attribute {name!r}")
