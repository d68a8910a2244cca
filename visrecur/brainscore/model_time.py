"""What the Brain-Score adapter and plugin ask of a model's time, answered for an FRNN (its spec's graph)
and for a timed model (``visrecur.timed``: its areas and per-area steps), so that neither needs to know
which it has: the states (regions map to them by name), each state's arrival and last step, the readout
times and which step of the last state a readout reads, and the readout's classes.

An FRNN's readout at T reads the last state at step T - 1 (its post-net is one more step); a timed
model's readout at step T reads the last area at its step T. An FRNN state runs at every step (the
limit is the model's: ``VisrecurBrainModel._step_limit``); a timed model's area runs its own steps only,
so a time bin that needs a later step of that area is refused in one line."""
from __future__ import annotations

from visrecur.errors import TimeStepError
from visrecur.timed import is_timed


class FRNNTime:
    kind = "frnn"

    def __init__(self, model):
        self.model, self.spec = model, model.spec
        self.states = [s.name for s in self.spec.graph.states]
        self.name = self.spec.name

    def arrival(self, state: str) -> int:
        return self.spec.graph.arrival_time(state)

    def last_step(self, state: str) -> int | None:
        """The last step ``state`` runs (None: as many as the model can run)."""
        return None

    @property
    def default_readout_time(self) -> int:
        return self.spec.readout_time

    def check_readout_time(self, t: int) -> None:
        self.spec.check_readout_time(t)

    def readout_step(self, t: int) -> int:
        """The step of the last state that the readout at ``t`` reads."""
        return t - 1

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes


class TimedTime(FRNNTime):
    kind = "timed"

    def __init__(self, model):
        self.model, self.spec = model, None
        self.states, self.name = list(model.areas), model.name

    def arrival(self, state: str) -> int:
        return self.model.arrival_time(state)

    def last_step(self, state: str) -> int:
        return self.model.area_steps(state)[-1]

    @property
    def default_readout_time(self) -> int | None:
        return self.model.readout_steps[-1] if self.model.readout_steps else None

    def check_readout_time(self, t: int | None) -> None:
        steps = list(self.model.readout_steps)
        if t is None and not steps:
            return
        if t not in steps:
            raise TimeStepError(f"{self.name} reads out at steps {steps or 'none'}, not at {t}; give "
                                + (f"a readout time among {steps}" if steps else "no readout time"))

    def readout_step(self, t: int) -> int:
        return t

    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes


def model_time(model) -> FRNNTime:
    """The answers for ``model``: a ``TimedTime`` for a timed model, else an ``FRNNTime``."""
    return TimedTime(model) if is_timed(model) else FRNNTime(model)
