"""Time-resolved models other than FRNNs (CORnet, BL-net, feedforward baselines, your own) under one
protocol, ``TimedModel``, so that recording and the analyses take them: ``visrecur.adapt`` over any
``nn.Module``, ``StepModel`` from an explicit step function, and reference architectures by name
(``visrecur.timed.reference.build``). docs/timed_models.md."""
from visrecur.timed.adapter import Adapted, adapt, pass_label
from visrecur.timed.protocol import StepModel, TimedModel, TimedModelError, is_timed

__all__ = ["Adapted", "StepModel", "TimedModel", "TimedModelError", "adapt", "is_timed", "pass_label"]
