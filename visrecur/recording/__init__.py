"""Recording: stimulus sets, image decoding, preprocessing, reductions, and ``record()``, which runs a
model over stimuli and keeps what every state did at every time step."""
_LAZY = {"Preprocess": "preprocess", "Reduction": "reductions", "StimulusSet": "stimuli", "resolve": "stimuli",
         "record": "recorder"}
__all__ = list(_LAZY)


def __getattr__(name):  # the parts load on first use: checkpoints import preprocessing without the recorder
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
