"""The paper's formalism in plain Python: states, transitions, the (i, j, t) transition matrix.

One module over ~350 lines on purpose: ``Graph`` is one object whose schedule, arrival times, weight tying
and counts all read the same (i, j, t) rules; ``ModelSpec`` (pre-/post-net, readout time) is in modelspec.py.

Time semantics (Liao & Poggio 2016, "Unrolling depth vs. readout time"):

* Time is an integer step. At ``t = 0`` only the first state holds data (the pre-net output).
* A transition ``i -> j`` runs at step ``t`` when it is active at ``t`` (its time windows, or the
  sequential schedule) and its source was populated at ``t - 1``. Every transition takes one step.
* A state's update at ``t`` is ``h_j(t) = h_j(t-1) + agg_i f_ij(h_i(t-1))`` with the identity
  shortcut (+I), ``agg`` the mean (FRNN) or sum (ResNet) of the transitions that run.
  A state that nothing runs into keeps its value.
* The post-net is one more step: the readout time ``T`` is the step at which the post-net has read
  the last state, so the logits at ``T`` are computed from ``h_last(T - 1)``. This is the convention
  that reproduces both of the paper's numbers that pin it: the 2-state ResNet of Fig. 4A with its
  first state unrolled ``N = T - 3`` times, and the depths of Table 1 (13 at T = 5, 23 at T = 10 for
  the 3-state FRNN with its three-conv pre-net).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from visrecur.architecture.layers import layer_kind
from visrecur.errors import SpecError

AGGREGATIONS = ("mean", "sum")
EXECUTIONS = ("concurrent", "sequential")
WEIGHT_SHARING = ("shared", "unshared")
PRENETS = ("conv", "conv3", "stem")
BEYOND_TRAINED = ("last", "error")
# How a transition between states of different sizes resamples (the paper prescribes none):
# "stride2": every 3x3 (de)convolution strides by at most 2, so every input pixel reaches the output and
#   every output pixel is written; a factor beyond 2**depth is done by average pooling the block's input
#   (downsampling) or nearest-neighbour upsampling its output (upsampling). The default.
# "strided": the factor split over the convolutions' strides, largest first (visrecur 0.1). A stride above
#   2 with a 3x3 kernel skips input pixels (conv) or leaves output pixels unwritten (deconv); kept so that
#   checkpoints made with it load as what they are.
RESAMPLINGS = ("stride2", "strided")


@dataclass(frozen=True)
class State:
    """A processing stage (a cortical area): ``channels`` feature maps of ``size`` = (height, width)
    at the model's reference input size. ``identity`` adds the +I shortcut to its update."""

    name: str
    channels: int
    size: tuple[int, int]
    identity: bool = True

    def __post_init__(self):
        object.__setattr__(self, "size", _pair(self.size, f"state {self.name!r} size"))
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"state name {self.name!r} must be a non-empty string, e.g. State('V1', 8, 32)")
        if int(self.channels) != self.channels or self.channels < 1:
            raise SpecError(f"state {self.name!r} has {self.channels} channels; give a positive integer")


@dataclass(frozen=True)
class Transition:
    """A transition function from ``source`` to ``target``: BN-ReLU-Conv x ``depth`` (BRC), or
    BN-ReLU-Deconv x ``depth`` (BRD) when the target is spatially larger.

    ``windows``: the steps in which it may run, as (first, last) pairs with last ``None`` for open
    ended; ``None`` means every step (this is the transition matrix's time axis).
    ``mid_channels``: width inside the block; default the mean of source and target widths (paper).
    ``shortcut``: add a 1x1 projection of the pre-activated source, as in a ResNet's first block of
    a stage (needed to reproduce a standard ResNet exactly).
    ``layer``: the kind of its convolutions (``visrecur.architecture.layers.LAYER_KINDS``); default
    ``conv`` (BRC) into a state of the same size or smaller, ``deconv`` (BRD) into a larger one.
    """

    source: str
    target: str
    depth: int = 2
    mid_channels: int | None = None
    windows: tuple[tuple[int, int | None], ...] | None = None
    shortcut: bool = False
    layer: str | None = None

    def __post_init__(self):
        if self.layer is not None:
            layer_kind(self.layer)
        if self.depth not in (1, 2, 3):
            raise SpecError(f"transition {self.source}->{self.target} has depth {self.depth}; "
                            "the paper uses BRC/BRD x 2 or x 3 (depth=2 or depth=3)")
        if self.windows is not None:
            windows = []
            for window in self.windows:
                first, last = (window, window) if isinstance(window, int) else tuple(window)
                if first < 1 or (last is not None and last < first):
                    raise SpecError(f"transition {self.source}->{self.target} has window {window}; "
                                    "windows are (first, last) steps with 1 <= first <= last (or last=None)")
                windows.append((int(first), None if last is None else int(last)))
            object.__setattr__(self, "windows", tuple(windows))

    @property
    def key(self) -> str:
        return f"{self.source}->{self.target}"

    def active(self, t: int) -> bool:
        if self.windows is None:
            return True
        return any(first <= t and (last is None or t <= last) for first, last in self.windows)


@dataclass(frozen=True)
class ConvLayer:
    """One layer of a block: a registered layer ``kind`` (``visrecur.architecture.layers``; "conv",
    "deconv", "projection", ...) from ``in_channels`` to ``out_channels``; ``stride`` downsamples (or
    upsamples, for a kind that upsamples)."""

    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int

    @property
    def parameters(self) -> int:
        return layer_kind(self.kind).parameters(self)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return layer_kind(self.kind).output_size(self, size)

    def macs(self, size: tuple[int, int]) -> int:
        """Multiply-accumulates for an input of spatial ``size``."""
        return layer_kind(self.kind).macs(self, size)

    def module(self):
        """The torch module that computes this layer."""
        return layer_kind(self.kind).module(self)


def _pair(value, what) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} must be an int or (height, width), got {value!r}") from None
    if height < 1 or width < 1:
        raise SpecError(f"{what} must be positive, got {value!r}")
    return (height, width)


def _scale_factor(big: tuple[int, int], small: tuple[int, int], what: str) -> int:
    factors = {b / s for b, s in zip(big, small)}
    factor = factors.pop()
    if factors or factor != int(factor):
        raise SpecError(f"{what}: sizes {big} and {small} differ by a non-integer or unequal factor; "
                        "state sizes must differ by the same integer factor in height and width "
                        "(the paper halves them from state to state: 32, 16, 8, 4)")
    return int(factor)


def _split_factor(factor: int, slots: int, resampling: str) -> tuple[list[int], int]:
    """Spread an integer resampling factor over ``slots`` convolutions, early ones first.

    Returns (strides, rest): ``rest`` is the factor left to pooling/upsampling outside the
    convolutions (always 1 for "strided")."""
    if resampling == "stride2":
        halvings = 0
        while factor % 2 == 0 and halvings < slots:
            factor //= 2
            halvings += 1
        return [2] * halvings + [1] * (slots - halvings), factor
    primes, n, p = [], factor, 2
    while n > 1:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    strides = [1] * slots
    for k, prime in enumerate(primes):
        strides[k % slots] *= prime
    return sorted(strides, reverse=True), 1


class Graph:
    """States and transitions over time: the recurrent part of a model.

    Parameters
    ----------
    states : sequence of State, first = the one the pre-net feeds, last = the one the post-net reads.
    transitions : sequence of Transition.
    aggregation : "mean" (FRNN) or "sum" (ResNet) of the transitions that run into a state.
    execution : "concurrent" (every transition may run at every step; windows still apply) or
        "sequential" (multi-state ResNet: state k runs ``self_steps[k]`` self-transitions after its
        arrival, then feeds state k+1, which starts only then).
    self_steps : for sequential execution, self-transitions per state (a ResNet's blocks per stage,
        less the stage's first, downsampling block for every state but the first).
    weight_sharing : "shared" (time-invariant) or "unshared" (time-variant: a copy per step).
    resampling : "stride2" (default) or "strided" (visrecur 0.1's scheme); see ``RESAMPLINGS``.
    tie_groups : explicit groups of (source, target, t) uses that share one set of weights; they
        override ``weight_sharing`` for the uses they name.
    """

    def __init__(self, states: Sequence[State], transitions: Sequence[Transition], *,
                 aggregation: str = "mean", execution: str = "concurrent",
                 self_steps: dict[str, int] | Sequence[int] | None = None,
                 weight_sharing: str = "shared", resampling: str = "stride2",
                 tie_groups: Iterable[Iterable[tuple[str, str, int]]] = ()):
        self.states = tuple(states)
        self.transitions = tuple(transitions)
        _choice(aggregation, AGGREGATIONS, "aggregation")
        _choice(execution, EXECUTIONS, "execution")
        _choice(weight_sharing, WEIGHT_SHARING, "weight_sharing")
        _choice(resampling, RESAMPLINGS, "resampling")
        self.aggregation, self.execution, self.weight_sharing = aggregation, execution, weight_sharing
        self.resampling = resampling
        if not self.states:
            raise SpecError("a graph needs at least one state, e.g. State('V1', 8, 32)")
        names = [s.name for s in self.states]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SpecError(f"state names must be unique; {duplicated} appear more than once")
        self._index = {name: k for k, name in enumerate(names)}
        seen = set()
        for tr in self.transitions:
            self.state_index(tr.source, f"transition {tr.key}")
            self.state_index(tr.target, f"transition {tr.key}")
            if tr.key in seen:
                raise SpecError(f"transition {tr.key} is given twice; give each (source, target) once "
                                "and block it in time with windows")
            seen.add(tr.key)
        self._rest: dict[str, int] = {}
        self._layers = {tr.key: self._plan(tr) for tr in self.transitions}
        self.self_steps = self._check_sequential(self_steps)
        self.tie_groups = self._check_ties(tie_groups)
        self._arrival = self._simulate_arrival()
        unreachable = [s.name for s in self.states if self._arrival[s.name] is None]
        if unreachable:
            raise SpecError(f"state(s) {unreachable} can never receive data from {names[0]!r}; add a "
                            f"transition into them (e.g. Transition({names[0]!r}, {unreachable[0]!r})) "
                            "or open their transitions' time windows")

    # --- lookup -------------------------------------------------------------------------------
    def state_index(self, name: str, where: str = "") -> int:
        if name not in self._index:
            close = difflib.get_close_matches(str(name), list(self._index), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"known states: {list(self._index)}"
            prefix = f"{where}: " if where else ""
            raise SpecError(f"{prefix}unknown state {name!r}; {hint}")
        return self._index[name]

    def state(self, name: str) -> State:
        return self.states[self.state_index(name)]

    @property
    def first(self) -> State:
        return self.states[0]

    @property
    def last(self) -> State:
        return self.states[-1]

    def transition(self, source: str, target: str) -> Transition:
        for tr in self.transitions:
            if tr.source == source and tr.target == target:
                return tr
        self.state_index(source), self.state_index(target)
        raise SpecError(f"there is no transition {source}->{target}; the graph has "
                        f"{[tr.key for tr in self.transitions]}")

    def kind(self, tr: Transition) -> str:
        """self, feedforward (to the next state), feedback (to the previous) or bypass (skips states)."""
        i, j = self.state_index(tr.source), self.state_index(tr.target)
        if i == j:
            return "self"
        if j == i + 1:
            return "feedforward"
        if j == i - 1:
            return "feedback"
        return "bypass"

    def layers(self, tr: Transition) -> tuple[ConvLayer, ...]:
        """The block's convolutions in order, then the projection shortcut if any."""
        return self._layers[tr.key]

    def resample_rest(self, tr: Transition) -> int:
        """The part of the resampling factor done outside the convolutions: average pooling of the
        block's input (downsampling) or nearest-neighbour upsampling of its output; 1 for none."""
        return self._rest[tr.key]

    def block_name(self, tr: Transition) -> str:
        convs = self.convolutions(tr)
        kind = layer_kind(convs[0].kind)
        letter = kind.letter or f"[{kind.name}]"
        resample = math.prod(layer.stride for layer in convs)
        how = "" if resample == 1 else (f" up x{resample}" if kind.upsamples else f" down /{resample}")
        name, rest = f"BR{letter}x{len(convs)}{how}", self.resample_rest(tr)
        if rest > 1:
            name = f"{name} + upsample x{rest}" if kind.upsamples else f"avgpool /{rest} + {name}"
        return name + (" +proj" if tr.shortcut else "")

    def convolutions(self, tr: Transition) -> tuple[ConvLayer, ...]:
        """The block's layers in order, without the projection shortcut."""
        return tuple(layer for layer in self.layers(tr) if layer.kind != "projection")

    def _plan(self, tr: Transition) -> tuple[ConvLayer, ...]:
        src, tgt = self.state(tr.source), self.state(tr.target)
        what = f"transition {tr.key}"
        if all(a >= b for a, b in zip(src.size, tgt.size)):
            upsampling, factor = False, _scale_factor(src.size, tgt.size, what)
        elif all(a <= b for a, b in zip(src.size, tgt.size)):
            upsampling, factor = True, _scale_factor(tgt.size, src.size, what)
        else:
            raise SpecError(f"{what}: source size {src.size} and target size {tgt.size} are larger in "
                            "one dimension and smaller in the other; give both dimensions the same ratio")
        kind = tr.layer or ("deconv" if upsampling else "conv")
        if factor > 1 and layer_kind(kind).upsamples != upsampling:
            raise SpecError(f"{what}: layer kind {kind!r} {'up' if layer_kind(kind).upsamples else 'down'}samples, "
                            f"but the transition goes to a {'larger' if upsampling else 'smaller'} state; give a "
                            f"kind that {'up' if upsampling else 'down'}samples, or none (the default)")
        if factor == 1 and layer_kind(kind).upsamples:
            upsampling = True
        mid = tr.mid_channels or max(1, round((src.channels + tgt.channels) / 2))
        widths = [src.channels] + [mid] * (tr.depth - 1) + [tgt.channels]
        strides, rest = _split_factor(factor, tr.depth, self.resampling)
        self._rest[tr.key] = rest
        layers = [ConvLayer(kind, widths[k], widths[k + 1], 3, strides[k]) for k in range(tr.depth)]
        if tr.shortcut:
            if upsampling:
                raise SpecError(f"{what}: projection shortcuts are for downsampling transitions only; "
                                "drop shortcut=True")
            # reads the block's (pooled) input, so it strides by what the convolutions stride
            layers.append(ConvLayer("projection", src.channels, tgt.channels, 1, factor // rest))
        return tuple(layers)

    # --- schedule -----------------------------------------------------------------------------
    def _check_sequential(self, self_steps):
        if self.execution == "concurrent":
            if self_steps is not None:
                raise SpecError("self_steps is for execution='sequential'; for concurrent graphs block "
                                "transitions in time with Transition(..., windows=...)")
            return None
        if self_steps is None:
            raise SpecError("execution='sequential' needs self_steps: how many self-transitions each "
                            "state runs before it feeds the next, e.g. self_steps={'h1': 3, 'h2': 2}")
        if not isinstance(self_steps, dict):
            self_steps = dict(zip([s.name for s in self.states], self_steps, strict=True))
        for name in self_steps:
            self.state_index(name, "self_steps")
        steps = {s.name: int(self_steps.get(s.name, 0)) for s in self.states}
        for k, s in enumerate(self.states):
            has_self = any(tr.source == tr.target == s.name for tr in self.transitions)
            if steps[s.name] > 0 and not has_self:
                raise SpecError(f"self_steps gives {s.name!r} {steps[s.name]} steps but there is no "
                                f"transition {s.name}->{s.name}; add Transition({s.name!r}, {s.name!r})")
            if k + 1 < len(self.states):
                nxt = self.states[k + 1].name
                if not any(tr.source == s.name and tr.target == nxt for tr in self.transitions):
                    raise SpecError(f"sequential execution feeds each state into the next; add "
                                    f"Transition({s.name!r}, {nxt!r})")
        for tr in self.transitions:
            if self.kind(tr) not in ("self", "feedforward"):
                raise SpecError(f"sequential execution (a multi-state ResNet) has only self and "
                                f"feedforward transitions; {tr.key} is {self.kind(tr)}: use "
                                "execution='concurrent' for fully recurrent graphs")
            if tr.windows is not None:
                raise SpecError(f"{tr.key} has time windows, but sequential execution sets them from "
                                "self_steps; drop windows or use execution='concurrent'")
        return steps

    def active(self, tr: Transition, t: int) -> bool:
        """Whether the transition matrix allows ``tr`` at step ``t`` (ignoring its source's data)."""
        if t < 1:
            return False
        if self.execution == "sequential":
            k = self.state_index(tr.source)
            start = sum(self.self_steps[s.name] + 1 for s in self.states[:k])  # arrival of source
            finish = start + self.self_steps[tr.source]
            if tr.source == tr.target:
                return start < t <= finish
            return t == finish + 1
        return tr.active(t)

    def _horizon(self) -> int:
        bounds = [1]
        for tr in self.transitions:
            for first, last in tr.windows or ():
                bounds.append(first if last is None else last)
        if self.self_steps:
            bounds.append(sum(n + 1 for n in self.self_steps.values()))
        return max(bounds) + len(self.states) + 1

    def _simulate_arrival(self) -> dict[str, int | None]:
        arrival = {s.name: None for s in self.states}
        arrival[self.first.name] = 0
        for t in range(1, self._horizon() + 1):
            for tr in self.transitions:
                src_at = arrival[tr.source]
                if arrival[tr.target] is None and src_at is not None and src_at <= t - 1 and self.active(tr, t):
                    arrival[tr.target] = t
        return arrival

    def arrival_time(self, state: str) -> int:
        """The first step at which ``state`` holds data."""
        self.state_index(state, "arrival_time")
        return self._arrival[state]

    def populated(self, state: str, t: int) -> bool:
        return t >= self.arrival_time(state)

    def runs(self, tr: Transition, t: int) -> bool:
        """Whether ``tr`` is computed at step ``t``: active then, and its source populated at t - 1."""
        return self.active(tr, t) and self.populated(tr.source, t - 1)

    def running(self, t: int) -> list[Transition]:
        return [tr for tr in self.transitions if self.runs(tr, t)]

    @property
    def earliest_readout(self) -> int:
        """The smallest readout time: the post-net needs the last state populated one step before."""
        return self.arrival_time(self.last.name) + 1

    def transition_matrix(self, until: int) -> np.ndarray:
        """Boolean array (source, target, t) for t = 0..until: True where the transition runs."""
        n = len(self.states)
        matrix = np.zeros((n, n, until + 1), dtype=bool)
        for tr in self.transitions:
            i, j = self.state_index(tr.source), self.state_index(tr.target)
            for t in range(1, until + 1):
                matrix[i, j, t] = self.runs(tr, t)
        return matrix

    # --- weights ------------------------------------------------------------------------------
    def _check_ties(self, tie_groups) -> tuple[frozenset, ...]:
        groups, owner = [], {}
        for g, group in enumerate(tie_groups):
            members = frozenset((str(s), str(d), int(t)) for s, d, t in group)
            plans = set()
            for source, target, t in members:
                tr = self.transition(source, target)
                if t < 1:
                    raise SpecError(f"tie group {g}: step {t} of {tr.key}; transitions run at t >= 1")
                if (source, target, t) in owner:
                    raise SpecError(f"tie group {g}: ({source}, {target}, {t}) is already in tie group "
                                    f"{owner[(source, target, t)]}; each use belongs to one group")
                owner[(source, target, t)] = g
                plans.add((self.layers(tr), self.resample_rest(tr)))
            if len(plans) > 1:
                raise SpecError(f"tie group {g} ties transitions with different shapes; only transitions "
                                "with the same source/target widths and resampling can share weights")
            groups.append(members)
        self._tie_owner = owner
        return tuple(groups)

    def weight_key(self, tr: Transition, t: int) -> str:
        """The name of the weights used by ``tr`` at step ``t`` (equal names = tied weights)."""
        if (tr.source, tr.target, t) in self._tie_owner:
            return f"tie{self._tie_owner[(tr.source, tr.target, t)]}"
        return tr.key if self.weight_sharing == "shared" else f"{tr.key}@{t}"

    def uses(self, until: int) -> list[tuple[Transition, int]]:
        """Every (transition, step) computed in steps 1..until."""
        return [(tr, t) for t in range(1, until + 1) for tr in self.running(t)]

    def weight_groups(self, until: int) -> dict[str, Transition]:
        """Weight key -> a transition using it, for every use in steps 1..until (model build order)."""
        groups = {}
        for tr, t in self.uses(until):
            groups.setdefault(self.weight_key(tr, t), tr)
        return groups

    def block_parameters(self, tr: Transition, affine: bool) -> int:
        layers = self.layers(tr)
        bn = sum(2 * layer.in_channels for layer in self.convolutions(tr)) if affine else 0
        return sum(layer.parameters for layer in layers) + bn

    # --- what reaches the readout -------------------------------------------------------------
    def contributing_uses(self, readout_time: int) -> set[tuple[str, int]]:
        """(transition key, step) uses whose output reaches the post-net at ``readout_time``
        (Fig. 4 caption: transitions that have not contributed by t are not counted)."""
        needed = {self.last.name}
        used = set()
        for t in range(readout_time - 1, 0, -1):
            before = set()
            for name in needed:
                inputs = [tr for tr in self.running(t) if tr.target == name]
                for tr in inputs:
                    used.add((tr.key, t))
                    before.add(tr.source)
                keeps_old = self.state(name).identity or not inputs
                if keeps_old and self.populated(name, t - 1):
                    before.add(name)
            needed = before
        return used

    def effective_parameters(self, readout_time: int, affine: bool = False) -> int:
        """Parameters of the recurrent part that contribute to the output at ``readout_time``."""
        keys = {}
        for key, t in self.contributing_uses(readout_time):
            tr = next(tr for tr in self.transitions if tr.key == key)
            keys[self.weight_key(tr, t)] = tr
        return sum(self.block_parameters(tr, affine) for tr in keys.values())

    def effective_depth(self, readout_time: int) -> int:
        """Convolutions on the longest path from the first state (t = 0) to the last state read out."""
        depth = {(self.first.name, 0): 0}
        for t in range(1, readout_time):
            for s in self.states:
                inputs = [tr for tr in self.running(t) if tr.target == s.name]
                candidates = [depth[(tr.source, t - 1)] + self.block_depth(tr) for tr in inputs]
                if (s.identity or not inputs) and (s.name, t - 1) in depth:
                    candidates.append(depth[(s.name, t - 1)])
                if candidates:
                    depth[(s.name, t)] = max(candidates)
        return depth[(self.last.name, readout_time - 1)]

    def block_depth(self, tr: Transition) -> int:
        return len(self.convolutions(tr))

    def macs(self, readout_time: int, scale: float = 1.0) -> int:
        """Multiply-accumulates of every transition computed up to ``readout_time``."""
        total = 0
        for tr, _ in self.uses(readout_time - 1):
            h, w = self.state(tr.source).size
            size = (round(h * scale), round(w * scale))
            if not layer_kind(self.layers(tr)[0].kind).upsamples and self.resample_rest(tr) > 1:  # pooling: no MACs
                size = tuple(math.ceil(v / self.resample_rest(tr)) for v in size)
            block_input = size
            for layer in self.layers(tr):
                if layer.kind == "projection":  # the shortcut reads the block's input
                    total += layer.macs(block_input)
                else:
                    total += layer.macs(size)
                    size = layer.output_size(size)
        return total

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "states": [dataclasses.asdict(s) for s in self.states],
            "transitions": [dataclasses.asdict(tr) for tr in self.transitions],
            "aggregation": self.aggregation,
            "execution": self.execution,
            "self_steps": self.self_steps,
            "weight_sharing": self.weight_sharing,
            "resampling": self.resampling,
            "tie_groups": [sorted(group) for group in self.tie_groups],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Graph":
        states = [State(**{**s, "size": tuple(s["size"])}) for s in data["states"]]
        transitions = []
        for tr in data["transitions"]:
            windows = tr.get("windows")
            transitions.append(Transition(**{**tr, "windows": None if windows is None else
                                             tuple(tuple(w) for w in windows)}))
        return cls(states, transitions, aggregation=data["aggregation"], execution=data["execution"],
                   self_steps=data.get("self_steps"), weight_sharing=data["weight_sharing"],
                   # files written before the field existed used the strided scheme
                   resampling=data.get("resampling", "strided"),
                   tie_groups=[[tuple(use) for use in group] for group in data.get("tie_groups", [])])

    def __eq__(self, other):
        return isinstance(other, Graph) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (f"Graph(states={[s.name for s in self.states]}, transitions="
                f"{[tr.key for tr in self.transitions]}, aggregation={self.aggregation!r}, "
                f"execution={self.execution!r}, weight_sharing={self.weight_sharing!r}, "
                f"resampling={self.resampling!r})")


def _choice(value, allowed, what):
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"{what}={value!r} is not one of {list(allowed)}{hint}")
