"""Every architecture of Liao & Poggio (2016) by name.

Spec builders return a ``ModelSpec`` (plain Python); ``build(name, **overrides)`` returns the model.
Widths the paper's text gives are used as given (Fig. 3 and Table 1). Figure 4's widths are drawn in
the figure, not written in the text: the ResNets here use the CIFAR ResNet widths 16/32/64 and the
2-state FRNN the first two widths of Table 1's 3-state FRNN (64/128); override ``channels`` to change.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from functools import partial
from typing import Callable

from visrecur.errors import SpecError, VisrecurError
from visrecur.architecture.graph import Graph, State, Transition
from visrecur.architecture.modelspec import ModelSpec, allowing_steps

VENTRAL_STREAM_STATES = ("V1", "V2", "V4", "IT")


def _states(names, channels, size):
    channels = tuple(channels) if isinstance(channels, (list, tuple)) else None
    if channels is None or len(channels) != len(names):
        raise SpecError(f"channels must give one width per state {list(names)}, got {channels!r}; "
                        f"e.g. channels={tuple(8 * 2**k for k in range(len(names)))}")
    return [State(name, c, size // 2**k) for k, (name, c) in enumerate(zip(names, channels))]


def resnet_1state_spec(*, shared: bool = True, channels: int = 16, readout_time: int = 10,
                       time_steps: int | None = None, num_classes: int = 10, input_size: int = 32,
                       bn_affine: bool = False, block_depth: int = 2) -> ModelSpec:
    """Eq. 1 and 4: one state with a self-transition and +I, h_t = K(h_{t-1}) + h_{t-1}.
    Read out at T it is a pre-activation ResNet stage of T - 1 blocks (with shared weights: an RNN)."""
    graph = Graph([State("h1", channels, input_size)], [Transition("h1", "h1", depth=block_depth)],
                  aggregation="sum", weight_sharing="shared" if shared else "unshared")
    return ModelSpec(graph, readout_time, time_steps, name=f"resnet_1state_{_sharing(shared)}",
                     num_classes=num_classes, input_size=(input_size, input_size), bn_affine=bn_affine)


def _sequential_resnet(names, channels, self_steps, *, shared, input_size, first_size, num_classes,
                       bn_affine, prenet, name, readout_time=None, time_steps=None, block_depth=2):
    states = _states(names, channels, first_size)
    transitions = [Transition(n, n, depth=block_depth) for n, steps in zip(names, self_steps) if steps]
    transitions += [Transition(a, b, depth=block_depth, mid_channels=c, shortcut=True)
                    for a, b, c in zip(names, names[1:], channels[1:])]
    graph = Graph(states, transitions, aggregation="sum", execution="sequential",
                  self_steps=dict(zip(names, self_steps)),
                  weight_sharing="shared" if shared else "unshared")
    full = sum(self_steps) + len(names)  # last state's final update + 1 step for the post-net
    return ModelSpec(graph, full if readout_time is None else readout_time, time_steps, name=name,
                     num_classes=num_classes,
                     input_size=(input_size, input_size), prenet=prenet, bn_affine=bn_affine)


def resnet_2state_spec(*, shared: bool = True, readout_time: int = 13, channels=(16, 32),
                       time_steps: int | None = None, num_classes: int = 10, input_size: int = 32,
                       bn_affine: bool = False) -> ModelSpec:
    """Fig. 4A: 2-state ResNet, first state unrolled N = readout_time - 3 times, second state once."""
    if readout_time < 4:
        raise SpecError(f"the 2-state ResNet unrolls its first state readout_time - 3 times; "
                        f"readout_time={readout_time} gives none: use readout_time >= 4")
    return _sequential_resnet(("h1", "h2"), tuple(channels), (readout_time - 3, 1), shared=shared,
                              input_size=input_size, first_size=input_size, num_classes=num_classes,
                              bn_affine=bn_affine, prenet="conv", time_steps=time_steps,
                              name=f"resnet_2state_{_sharing(shared)}")


def resnet_3state_spec(*, shared: bool = True, blocks: int = 3, channels=(16, 32, 64),
                       time_steps: int | None = None, num_classes: int = 10, input_size: int = 32,
                       bn_affine: bool = False) -> ModelSpec:
    """Fig. 4B: the standard 3-state (3-stage) pre-activation ResNet with ``blocks`` blocks per stage
    (blocks=3 is ResNet-20's layout, 6n+2 layers); readout time = 3 * blocks + 1."""
    return _sequential_resnet(("h1", "h2", "h3"), tuple(channels), (blocks, blocks - 1, blocks - 1),
                              shared=shared, input_size=input_size, first_size=input_size,
                              num_classes=num_classes, bn_affine=bn_affine, prenet="conv",
                              time_steps=time_steps, name=f"resnet_3state_{_sharing(shared)}")


def resnet_4state_imagenet_spec(*, shared: bool = True, blocks=(2, 2, 2, 2), channels=(64, 128, 256, 512),
                                time_steps: int | None = None, num_classes: int = 1000,
                                input_size: int = 224, bn_affine: bool = True) -> ModelSpec:
    """Fig. 6: ImageNet 4-state ResNet (ResNet-18 layout by default; blocks=(3, 4, 6, 3) for
    ResNet-34's), ResNet stem as pre-net, BN affine on and shared over time (the paper's ImageNet
    setting), 56/28/14/7 state sizes at 224x224 input."""
    blocks = tuple(blocks)
    self_steps = (blocks[0],) + tuple(b - 1 for b in blocks[1:])
    return _sequential_resnet(("h1", "h2", "h3", "h4"), tuple(channels), self_steps, shared=shared,
                              input_size=input_size, first_size=input_size // 4, num_classes=num_classes,
                              bn_affine=bn_affine, prenet="stem", time_steps=time_steps,
                              name=f"resnet_4state_imagenet_{_sharing(shared)}")


def frnn_spec(names, channels, *, shared: bool = True, adjacent: bool = False, readout_time: int = 5,
              time_steps: int | None = None, num_classes: int = 10, input_size: int = 32,
              prenet: str = "conv", bn_affine: bool = False, block_depth: int = 2,
              aggregation: str = "mean", resampling: str = "stride2", name: str = "frnn") -> ModelSpec:
    """A fully recurrent network: every state to every state (or adjacent ones and itself only),
    all transitions concurrent, inputs averaged, sizes halving from state to state.
    ``resampling`` says how bypasses across several halvings resample (``visrecur.architecture.graph.RESAMPLINGS``)."""
    states = _states(names, channels, input_size)
    transitions = [Transition(a, b, depth=block_depth) for i, a in enumerate(names)
                   for j, b in enumerate(names) if not adjacent or abs(i - j) <= 1]
    graph = Graph(states, transitions, aggregation=aggregation, resampling=resampling,
                  weight_sharing="shared" if shared else "unshared")
    return ModelSpec(graph, readout_time, time_steps, name=name, num_classes=num_classes,
                     input_size=(input_size, input_size), prenet=prenet, bn_affine=bn_affine)


def frnn_2state_spec(*, shared=True, channels=(64, 128), readout_time=5, **kwargs) -> ModelSpec:
    """Fig. 4C/E: 2-state fully recurrent network (feedforward, feedback and self transitions)."""
    return frnn_spec(("h1", "h2"), tuple(channels), shared=shared, readout_time=readout_time,
                     name=f"frnn_2state_{_sharing(shared)}", **kwargs)


def frnn_3state_spec(*, shared=True, adjacent=False, channels=(64, 128, 256), readout_time=5,
                     prenet="conv3", bn_affine=None, **kwargs) -> ModelSpec:
    """Table 1 / Fig. 3: 3-state FRNN, 32x32x64, 16x16x128, 8x8x256, three-conv pre-net.
    BN affine is on for the full model (Table 1 is the paper's one CIFAR setting with BN's learnable
    parameters) and off for the adjacent-only variant, a Fig. 3 model (the paper's CIFAR default)."""
    if bn_affine is None:
        bn_affine = not adjacent
    return frnn_spec(("h1", "h2", "h3"), tuple(channels), shared=shared, adjacent=adjacent,
                     readout_time=readout_time, prenet=prenet, bn_affine=bn_affine,
                     name=f"frnn_3state{'_adjacent' if adjacent else ''}_{_sharing(shared)}", **kwargs)


def frnn_4state_spec(*, shared=True, adjacent=False, channels=(8, 16, 32, 64), readout_time=5,
                     prenet="conv3", **kwargs) -> ModelSpec:
    """Fig. 3: 4-state FRNN with states V1, V2, V4, IT (32x32x8, 16x16x16, 8x8x32, 4x4x64)."""
    return frnn_spec(VENTRAL_STREAM_STATES, tuple(channels), shared=shared, adjacent=adjacent,
                     readout_time=readout_time, prenet=prenet,
                     name=f"frnn_4state{'_adjacent' if adjacent else ''}_{_sharing(shared)}", **kwargs)


def _sharing(shared: bool) -> str:
    return "shared" if shared else "unshared"


def _registry() -> dict[str, Callable[..., ModelSpec]]:
    names = {}
    for shared in (True, False):
        s = _sharing(shared)
        names[f"resnet_1state_{s}"] = partial(resnet_1state_spec, shared=shared)
        names[f"resnet_2state_{s}"] = partial(resnet_2state_spec, shared=shared)
        names[f"resnet_3state_{s}"] = partial(resnet_3state_spec, shared=shared)
        names[f"resnet_4state_imagenet_{s}"] = partial(resnet_4state_imagenet_spec, shared=shared)
        names[f"frnn_2state_{s}"] = partial(frnn_2state_spec, shared=shared)
        for adjacent in (False, True):
            a = "_adjacent" if adjacent else ""
            names[f"frnn_3state{a}_{s}"] = partial(frnn_3state_spec, shared=shared, adjacent=adjacent)
            names[f"frnn_4state{a}_{s}"] = partial(frnn_4state_spec, shared=shared, adjacent=adjacent)
    return names


MODELS = _registry()


def register_model(name: str):
    """Register a spec builder (keyword arguments -> ``ModelSpec``) under ``name``, as a decorator: then
    ``build(name)``, ``python -m visrecur.train --model NAME`` and the zoo table know it."""
    def register(builder: Callable[..., ModelSpec]):
        if name in MODELS and MODELS[name] is not builder:
            raise SpecError(f"a zoo model named {name!r} exists already; choose another name")
        MODELS[name] = builder
        return builder
    return register


def list_models() -> list[str]:
    """Names accepted by ``build`` and ``spec``."""
    return sorted(MODELS)


# ModelSpec fields any zoo model takes as overrides, beside its builder's own arguments
SPEC_FIELDS = ("beyond_trained", "time_specific_bn")


def spec(name: str, **overrides) -> ModelSpec:
    """The ModelSpec of a zoo model, with keyword overrides (e.g. readout_time=10, channels=...,
    beyond_trained="error")."""
    if not isinstance(name, str):
        raise SpecError(f"a zoo model name must be a str (see visrecur.list_models()), not "
                        f"{type(name).__name__} {name!r:.40}")
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=3)
        hint = f"did you mean {close}?" if close else "see visrecur.list_models()"
        raise SpecError(f"unknown model {name!r}; {hint}")
    builder = MODELS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("shared", "adjacent")]
    if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(builder).parameters.values()):
        accepted = sorted(set(accepted) | set(inspect.signature(frnn_spec).parameters) -
                          {"names", "channels", "shared", "adjacent", "name", "kwargs"}) + ["channels"]
    accepted = sorted(set(accepted) - {"kwargs"} | set(SPEC_FIELDS) | {"max_steps"})
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise SpecError(f"{name} does not take {unknown}; it accepts {accepted}")
    fields = {k: overrides.pop(k) for k in SPEC_FIELDS if k in overrides}
    try:
        with allowing_steps(overrides.pop("max_steps", None)):  # checked as the builder makes the spec
            built = builder(**overrides)
    except VisrecurError:
        raise
    except (TypeError, ValueError) as err:  # a value of the wrong type deep in a builder
        raise SpecError(f"{name}: an override has the wrong type ({err}); see visrecur.spec({name!r}) "
                        "for the defaults") from None
    return dataclasses.replace(built, **fields) if fields else built


def build(name: str, **overrides):
    """Build a zoo model by name, e.g. ``build('frnn_4state_shared', readout_time=8)``."""
    from visrecur.nn.model import FRNN

    return FRNN(spec(name, **overrides))
