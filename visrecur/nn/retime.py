"""A multi-state ResNet re-unrolled for another readout time (the paper's Fig. 5A).

In a sequential graph (a multi-state ResNet) the readout time fixes how often the first state is
unrolled: the 2-state ResNet trained at t = 13 unrolls its first state N = t - 3 = 10 times. Testing
it at t = 7 or t = 23 means unrolling it N = 4 or 20 times with the same shared weights; the later
states still run once each, just earlier or later. ``retime`` builds that model.

Time-specific batch norm is carried over by *run*, not by clock step: a transition's k-th execution
normalises with the statistics of its k-th execution in training, and the post-net's readout with the
trained readout's. Runs past those seen in training (the first state's self-transition beyond N) have no
trained statistics: they follow the model's ``beyond_trained`` policy (the last trained run's statistics)
until ``FRNN.recalibrate`` estimates them. Fully recurrent (concurrent) models need
none of this: they read out at any t from the same unrolling (``model(x, readout_time=t)``).
"""
from __future__ import annotations

import copy
import dataclasses


from visrecur.nn.blocks import TimeSpecificBatchNorm
from visrecur.errors import SpecError
from visrecur.architecture.graph import Graph
from visrecur.nn.model import FRNN


def first_state_unrolls(graph: Graph, readout_time: int) -> int:
    """How often a sequential graph's first state runs its self-transition to read out at ``readout_time``
    (the paper's N; t - 3 for the 2-state ResNet)."""
    others = sum(n for name, n in graph.self_steps.items() if name != graph.first.name)
    return readout_time - others - len(graph.states)


def retime(model: FRNN, readout_time: int) -> FRNN:
    """A copy of the sequential, weight-shared ``model`` unrolled to read out at ``readout_time``, with
    its weights and its TSBN statistics matched run by run (module docstring)."""
    spec, graph = model.spec, model.spec.graph
    if graph.execution != "sequential":
        raise SpecError(f"{spec.name} is fully recurrent (execution={graph.execution!r}): it reads out at any "
                        f"readout time without retiming; call model(images, readout_time={readout_time})")
    if graph.weight_sharing != "shared":
        raise SpecError(f"{spec.name} has unshared weights: unrolling its first state more often needs weights "
                        "it never had; retime works on models with weight_sharing='shared'")
    trained_readout = spec.readout_time
    unrolls = first_state_unrolls(graph, readout_time)
    if unrolls < 1:
        earliest = readout_time - unrolls + 1
        raise SpecError(f"readout_time={readout_time} leaves the first state {graph.first.name!r} of {spec.name} "
                        f"no self-transition (N = {unrolls}); use readout_time >= {earliest}")
    data = graph.to_dict()
    data["self_steps"] = {**graph.self_steps, graph.first.name: unrolls}
    new_spec = dataclasses.replace(spec, graph=Graph.from_dict(data), readout_time=readout_time,
                                   time_steps=readout_time)
    new = FRNN(new_spec).to(next(model.parameters()).device)
    # weights: identical keys in a shared graph; TSBN statistics are placed below
    weights = {k: v for k, v in model.state_dict().items() if ".stats." not in k}
    missing, unexpected = new.load_state_dict(weights, strict=False)
    if unexpected or any(".stats." not in k for k in missing):
        raise SpecError(f"retiming {spec.name} changed its weights ({unexpected or missing}); this is a bug")
    for key, norms in model.norms.items():
        tr = next(tr for tr in graph.transitions if tr.key == key)
        old_runs = [t for t in range(1, trained_readout) if graph.runs(tr, t)]
        new_runs = [t for t in range(1, readout_time) if new_spec.graph.runs(tr, t)]
        for old_norm, new_norm in zip(norms, new.norms[key]):
            _carry(old_norm, new_norm, list(zip(old_runs, new_runs)))
    _carry(model.postnet.norm, new.postnet.norm, [(trained_readout, readout_time)])
    new.train(model.training)
    if hasattr(model, "preprocess"):
        new.preprocess = copy.deepcopy(model.preprocess)
    return new


def _carry(old: TimeSpecificBatchNorm, new: TimeSpecificBatchNorm, pairs) -> None:
    """Copy old step -> new step statistics; every other step of ``new`` stays untrained."""
    for t in range(new.num_steps + 1):
        new.forget(t)
    if not old.time_specific:
        new.stats[0].load_state_dict(old.stats[0].state_dict())
        return
    for old_t, new_t in pairs:
        if old_t <= old.num_steps:
            new.stats[new_t].load_state_dict(old.stats[old_t].state_dict())
    new._trained = None
