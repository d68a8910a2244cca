"""Training: `TrainConfig` (validated on construction), data and augmentation, the loop, one step, CUDA
graphs, evaluation. ``train(config)`` runs or resumes a training; ``python -m visrecur.train`` is its
command line."""
_LAZY = {"PRESETS": "config", "TrainConfig": "config", "TrainingError": "config", "build_config": "config",
         "lr_at": "config", "train": "loop"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
