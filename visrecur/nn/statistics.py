"""Which time-specific batch-norm statistics serve which (transition, step) of a model, owned by the model.

``FRNN`` inherits ``TimeSpecificStatistics``: it answers which of its TSBN layers normalise at which steps
for a readout time, which steps have statistics estimated from data ("trained": in training or by
recalibration), which borrow another step's, how to extend the model to more steps, and how to estimate
missing statistics (``recalibrate``). Nothing outside the model reaches into its layers for this.

A recalibration *policy* says which statistics are re-estimated for a readout time (``POLICIES``: a new
policy is one class); "trained" is the name of using the statistics as trained.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import torch

from visrecur.errors import InputError, TimeStepError
from visrecur.nn.tsbn import TimeSpecificBatchNorm


class TimeSpecificStatistics:
    """The TSBN policy of a model with ``spec``, ``norms`` (transition key -> TSBN per convolution) and
    ``postnet.norm`` (the readout's TSBN, indexed by readout time)."""

    # --- which layers normalise at which steps --------------------------------------------------
    def tsbn_layers(self) -> list[TimeSpecificBatchNorm]:
        return [m for m in self.modules() if isinstance(m, TimeSpecificBatchNorm)]

    def statistics_users(self, readout_time: int, all_readouts: bool = True) -> dict[TimeSpecificBatchNorm, list[int]]:
        """Every TSBN layer -> the steps at which a readout up to ``readout_time`` (or, with
        ``all_readouts=False``, the one readout at ``readout_time``) normalises with it."""
        graph, used = self.spec.graph, {}
        by_key = {tr.key: tr for tr in graph.transitions}
        for key, norms in self.norms.items():
            tr = by_key[key]
            for m in norms:
                used[m] = [t for t in range(1, readout_time) if graph.runs(tr, t)]
        used[self.postnet.norm] = list(range(graph.earliest_readout if all_readouts else readout_time,
                                             readout_time + 1))
        return used

    # --- what was estimated from data -----------------------------------------------------------
    def is_trained(self) -> bool:
        """Whether any TSBN statistics were estimated from data (training or recalibration)."""
        return any(m.trained_steps() for m in self.tsbn_layers())

    def last_trained_step(self) -> int | None:
        """The last step at which a transition's statistics were estimated from data (None: never)."""
        steps = [t for norms in self.norms.values() for m in norms for t in m.trained_steps()]
        return max(steps) if steps else None

    def trained_readouts(self) -> list[int]:
        """Readout times whose post-net statistics were estimated from data."""
        return list(self.postnet.norm.trained_steps())

    def last_trained_readout(self) -> int:
        """The largest readout time with trained post-net statistics (``spec.time_steps`` for a model never
        trained)."""
        trained = self.trained_readouts()
        return max(trained) if trained else self.spec.time_steps

    def untrained_steps(self, readout_time: int) -> list[int]:
        """Steps up to ``readout_time`` at which a readout up to ``readout_time`` would normalise with
        statistics not estimated for that step: another step's, or the initial ones of a transition that
        never ran in training. Empty for a model never trained at all."""
        used = self.statistics_users(readout_time)
        if not any(m.trained_steps() for m in used):
            return []
        steps = set()
        for m, used_steps in used.items():
            if m.time_specific:
                steps |= {t for t in used_steps if t not in m.trained_steps()}
        return sorted(steps)

    def borrowed_statistics(self, readout_time: int, all_readouts: bool = True) -> dict[int, set]:
        """Step t -> the steps whose statistics normalise it, for every step up to ``readout_time`` that a
        readout there would normalise (partly) with statistics not estimated for it: another step's number,
        "initial" for a transition that never ran in training (mean 0, variance 1), or "refused"
        (beyond_trained="error"). Empty when none. ``all_readouts=False``: only what the one readout at
        ``readout_time`` uses."""
        used = self.statistics_users(readout_time, all_readouts)
        model_trained = any(m.trained_steps() for m in used)
        borrowed: dict[int, set] = {}
        for m, steps in used.items():
            if not m.time_specific:
                continue
            for t in steps:
                if model_trained and not m.trained_steps():
                    source = "initial"
                else:
                    try:
                        source = m.slot(t)
                    except TimeStepError:
                        source = "refused"
                if source != t:
                    borrowed.setdefault(t, set()).add(source)
        return borrowed

    def describe_statistics(self, readout_time: int) -> str:
        """One line on which statistics a run up to ``readout_time`` uses (a recording's attrs)."""
        borrowed = self.borrowed_statistics(readout_time)
        if not borrowed:
            return f"every step up to readout {readout_time} uses statistics estimated for it"
        parts = [f"t{t}: " + ", ".join(f"step {s}" if isinstance(s, int) else s
                                       for s in sorted(sources, key=str)) for t, sources in sorted(borrowed.items())]
        return ("statistics estimated for each step except (beyond_trained="
                f"{self.spec.beyond_trained!r}; step: statistics used instead) " + "; ".join(parts))

    def trained_statistics(self):
        """Every transition TSBN's trained running statistics at the steps that transition runs: yields
        (transition, position in its block, step, running mean, running variance), tensors on the CPU."""
        graph = self.spec.graph
        for tr in graph.transitions:
            for position, norm in enumerate(self.norms[tr.key] if tr.key in self.norms else ()):
                for t in [t for t in norm.trained_steps() if graph.runs(tr, t)]:
                    stats = norm.stats[t]
                    yield tr, position, t, stats.running_mean.detach().cpu(), stats.running_var.detach().cpu()

    # --- changing them --------------------------------------------------------------------------
    def set_beyond_trained(self, beyond: str) -> None:
        """What every TSBN layer does in evaluation at a step without trained statistics: "last" (the
        nearest trained step's) or "error"; the model's spec says the same."""
        from visrecur.architecture.graph import BEYOND_TRAINED, _choice

        _choice(beyond, BEYOND_TRAINED, "beyond_trained")
        for m in self.tsbn_layers():
            m.beyond = beyond
        self.spec = dataclasses.replace(self.spec, beyond_trained=beyond)

    def extend_time(self, time_steps: int, init: str = "last") -> None:
        """Let a time-invariant model run and read out up to ``time_steps``: transitions' TSBN get steps up
        to ``time_steps - 1`` (a readout at T reads the last state at T - 1), the post-net's up to
        ``time_steps``. New steps are untrained until trained or recalibrated (``recalibrate``). The model's
        spec is replaced by one built for ``time_steps``; a spec shared with other models is not changed."""
        if self.spec.graph.weight_sharing == "unshared":
            raise TimeStepError("a time-variant (unshared) model has no weights for new steps; extend_time "
                                "works on models with weight_sharing='shared'")
        for m in self.tsbn_layers():
            m.extend(time_steps if m is self.postnet.norm else time_steps - 1, init)
        if time_steps > self.spec.time_steps:
            self.spec = dataclasses.replace(self.spec, time_steps=time_steps)

    @torch.no_grad()
    def recalibrate(self, batches: Iterable, readout_time: int, steps=None, progress: bool = False) -> list[int]:
        """Estimate TSBN statistics from data, each from inputs computed exactly as in evaluation.

        By default every statistic a readout up to ``readout_time`` would otherwise borrow from another
        step (``untrained_steps``; all of them for a model never trained) is estimated; with ``steps``, the
        statistics of those steps are reset and re-estimated. It goes in time order, one (step, position in
        the block) per pass over ``batches`` (a re-iterable of image batches, or of (images, labels)): each
        pass runs the model in evaluation mode, so the inputs of step t come from earlier steps normalised
        with their running (trained or just recalibrated) statistics. Weights and all other statistics stay
        as they are. The model is extended to ``readout_time`` first if needed. Returns the steps estimated.
        """
        from tqdm.auto import tqdm

        if readout_time > self.spec.time_steps:
            self.extend_time(readout_time, init="fresh")
        targets = {}
        for m, used in self.statistics_users(readout_time).items():
            if not m.time_specific:
                continue
            trained = m.trained_steps()
            wanted = [t for t in used if t not in trained or not trained] if steps is None else \
                [t for t in used if t in set(steps)]
            if wanted:
                targets[m] = set(wanted)
        passes = sorted({(t, m.position) for m, wanted in targets.items() for t in wanted})
        if not passes:
            return []
        if iter(batches) is batches:  # a one-shot iterator: every pass needs the same batches
            batches = list(batches)
        earliest = self.spec.graph.earliest_readout
        saved_beyond = {m: m.beyond for m in self.tsbn_layers()}
        was_training = self.training
        self.eval()
        try:
            for m in saved_beyond:
                m.beyond = "last"  # a step not yet estimated may be read on the way: never refuse here
            for t, position in tqdm(passes, desc="recalibrating TSBN", disable=not progress, leave=False):
                collecting = [m for m, wanted in targets.items() if m.position == position and t in wanted]
                for m in collecting:
                    m.forget(t)
                    m.collecting = t
                for images in batches:
                    if isinstance(images, (tuple, list)):
                        images = images[0]
                    self(images, readout_time=[max(t, earliest)], until=t)
                for m in collecting:
                    m.collecting = None
        finally:
            for m in saved_beyond:
                m.collecting = None
                m.beyond = saved_beyond[m]
            self.train(was_training)
        return sorted({t for t, _ in passes})


# --- recalibration policies -----------------------------------------------------------------------
class RecalibrationPolicy:
    """Which statistics are re-estimated for a readout at ``t`` (``steps``: None means those the model
    lacks, ``TimeSpecificStatistics.untrained_steps``)."""

    name = ""
    description = ""

    def check(self, model) -> None:
        """Refuse a model the policy cannot apply to, in one line."""

    def steps(self, model, readout_time: int) -> list[int] | None:
        return None


class Trained(RecalibrationPolicy):
    name = "trained"
    description = "the statistics as trained; steps past training use the last trained step's"


class Past(RecalibrationPolicy):
    name = "past"
    description = "the steps without trained statistics (past the trained ones) re-estimated"


class Every(RecalibrationPolicy):
    name = "every"
    description = "every step's statistics re-estimated anew for each tested readout time"

    def steps(self, model, readout_time):
        return list(range(1, readout_time + 1))  # transitions run from step 1; the post-net reads at t


class AfterFirstState(RecalibrationPolicy):
    name = "after-first-state"
    description = ("the steps after the first state's runs re-estimated (the transition out of it, the later "
                   "states, the post-net); the first state keeps its trained runs'")

    def check(self, model):
        if model.spec.graph.execution != "sequential":
            raise InputError(f"{model.spec.name} is fully recurrent: every state runs at every step, so no steps "
                             "come after the first state's runs; use --recalibrate-steps past or every")

    def steps(self, model, readout_time):
        from visrecur.nn.retime import first_state_unrolls

        return list(range(first_state_unrolls(model.spec.graph, readout_time) + 1, readout_time + 1))


POLICIES: dict[str, RecalibrationPolicy] = {p.name: p for p in (Trained(), Past(), Every(), AfterFirstState())}


def policy(name: str, recalibrating: bool = False) -> RecalibrationPolicy:
    """The policy named ``name``; ``recalibrating``: one that re-estimates statistics (not "trained")."""
    names = [k for k in POLICIES if not recalibrating or k != Trained.name]
    if name not in names:
        raise InputError(f"TSBN policy {name!r} is not one of {', '.join(names)}")
    return POLICIES[name]
